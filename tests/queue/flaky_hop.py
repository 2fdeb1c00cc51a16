#!/usr/bin/env python3
"""flaky_hop.py: a next-hop SMTP server that fails on purpose, for the queue
tests (tests/queue/t_queue.sh): tests/integration/py/nexthop.py (all its
options) with transaction numbers and the failures below.

Transactions are numbered from 1 in the order their MAIL command arrives
(over all connections); MAIL, RCPT, DATA and STORED events name them
("conn=C txn=N").  Accepted messages are stored as nexthop.py stores them
(Maildir DIR/new/, the layout of `smrelayctl sink`), with "X-Hop-Txn: N"
after its trace lines.  Every event goes to --events (one line each).

Misbehaviours:
  --fail-every N      transactions 1, 1+N, 1+2N, ... fail with a 451
  --fail-where W      where they fail: rcpt (every RCPT 451), data (451 at
                      end of DATA, nothing stored) or alternate (rcpt, then
                      data, then rcpt, ...; the default)
  --drop-after-dot K  the first K transactions that reach the end of DATA:
                      read the whole message, then close the connection
                      without a reply
  --store-dropped     ... but store the message first (a reply lost on the
                      wire, rather than a hop that died before committing)
  --rcpt-reply S=R    reply R to RCPT addresses containing S (repeatable)
"""
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration", "py"))
import nexthop  # noqa: E402
from nexthop import LOCK, event  # noqa: E402

STATE = {"txn": 0, "dropped": 0}


class FlakySession(nexthop.Session):
    NAME = "flaky_hop.py"
    SUFFIX = "flaky"

    def __init__(self, *args):
        super().__init__(*args)
        self.txn = 0

    def tag(self):
        return "conn=%d txn=%d" % (self.num, self.txn)

    def failing(self):
        """None, 'rcpt' or 'data': how the current transaction fails."""
        a, txn = self.args, self.txn
        if a.fail_every <= 0 or (txn - 1) % a.fail_every != 0:
            return None
        if a.fail_where != "alternate":
            return a.fail_where
        return "rcpt" if ((txn - 1) // a.fail_every) % 2 == 0 else "data"

    def on_mail(self, arg):
        with LOCK:
            STATE["txn"] += 1
            self.txn = STATE["txn"]
        event(self.args, "MAIL %s %s fail=%s" % (self.tag(), arg, self.failing()))

    def rcpt_reply(self, addr):
        if self.failing() == "rcpt":
            return "451 4.3.2 <%s>: flaky: try again later (txn %d)" % (addr, self.txn)
        return super().rcpt_reply(addr)

    def end_of_data(self, mail, mail_args, rcpts, rcpt_args, helo, body):
        drop = False
        with LOCK:
            if STATE["dropped"] < self.args.drop_after_dot:
                STATE["dropped"] += 1
                drop = True
        if drop:
            name = self.store(mail, mail_args, rcpts, rcpt_args, helo, body) \
                if self.args.store_dropped else "-"
            event(self.args, "DROP %s stored=%s" % (self.tag(), name))
            self.sock.shutdown(socket.SHUT_RDWR)
            return False
        if self.failing() == "data":
            event(self.args, "DATA %s -> 451" % self.tag())
            self.send("451 4.3.0 flaky: queue file write error (txn %d)" % self.txn)
        else:
            self.store(mail, mail_args, rcpts, rcpt_args, helo, body)
            self.send("250 2.0.0 Ok: stored as T%d" % self.txn)
        return True

    def extra_headers(self):
        return ["X-Hop-Txn: %d" % self.txn]


def main():
    p = nexthop.parser(__doc__)
    p.set_defaults(hostname="flaky.test")
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--fail-where", choices=("rcpt", "data", "alternate"), default="alternate")
    p.add_argument("--drop-after-dot", type=int, default=0)
    p.add_argument("--store-dropped", action="store_true")
    nexthop.run(p.parse_args(), FlakySession)


if __name__ == "__main__":
    main()
