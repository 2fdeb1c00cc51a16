#!/usr/bin/env python3
"""flaky_hop.py: a next-hop SMTP server that fails on purpose, for the queue
tests (tests/queue/t_queue.sh).

Transactions are numbered from 1 in the order their MAIL command arrives
(over all connections).  Accepted messages are stored as one Maildir file
each (DIR/new/), in the layout of `smrelayctl sink` and nexthop.py:
"Return-Path: <FROM>", one "Delivered-To: RCPT" per accepted recipient,
"X-Mail-Args:", "X-Rcpt-Args:", then "X-Hop-Txn: N", then the message as
received (dot-unstuffed).  Every event goes to --events (one line each).

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
import argparse
import os
import re
import socket
import sys
import threading
import time

LOCK = threading.Lock()
STATE = {"txn": 0, "dropped": 0, "stored": 0}


def event(args, text):
    with LOCK:
        with open(args.events, "a") as f:
            f.write(text + "\n")


class Session(threading.Thread):
    def __init__(self, args, sock, num):
        super().__init__(daemon=True)
        self.a, self.sock, self.num = args, sock, num
        self.buf = b""

    def send(self, text):
        self.sock.sendall(text.encode("utf-8") + b"\r\n")

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line.rstrip(b"\r\n").decode("utf-8", "replace")
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def read_data(self):
        data = bytearray(b"\r\n") + self.buf
        self.buf = b""
        start = 0
        while True:
            i = data.find(b"\r\n.\r\n", start)
            if i >= 0:
                self.buf = bytes(data[i + 5:])
                body = bytes(data[2:i + 2])
                break
            start = max(0, len(data) - 4)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        if body.startswith(b".."):
            body = body[1:]
        return body.replace(b"\r\n..", b"\r\n.")

    def run(self):
        try:
            self.serve()
        except OSError as e:
            event(self.a, "ERROR conn=%d %s" % (self.num, e))
        finally:
            event(self.a, "CLOSE conn=%d" % self.num)
            try:
                self.sock.close()
            except OSError:
                pass

    def failing(self, txn):
        """None, 'rcpt' or 'data': how transaction txn fails."""
        a = self.a
        if a.fail_every <= 0 or (txn - 1) % a.fail_every != 0:
            return None
        if a.fail_where != "alternate":
            return a.fail_where
        return "rcpt" if ((txn - 1) // a.fail_every) % 2 == 0 else "data"

    def serve(self):
        a = self.a
        event(a, "CONNECT conn=%d" % self.num)
        self.send("220 flaky.test ESMTP flaky_hop.py")
        mail, mail_args, rcpts, rcpt_args, txn = None, "", [], [], 0
        while True:
            line = self.readline()
            if line is None:
                return
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb) + 1:] if " " in line else ""
            if verb in ("EHLO", "HELO"):
                mail, rcpts, rcpt_args = None, [], []
                ext = ["flaky.test", "PIPELINING", "SIZE 104857600", "8BITMIME",
                       "ENHANCEDSTATUSCODES", "DSN", "SMTPUTF8"]
                for e in ext[:-1]:
                    self.sock.sendall(("250-%s\r\n" % e).encode())
                self.send("250 %s" % ext[-1])
            elif verb == "MAIL":
                m = re.match(r"(?i)FROM:\s*<([^>]*)>\s*(.*)", arg)
                if not m:
                    self.send("501 5.5.4 Syntax: MAIL FROM:<address>")
                    continue
                with LOCK:
                    STATE["txn"] += 1
                    txn = STATE["txn"]
                mail, rcpts, rcpt_args = m.group(1), [], []
                mail_args = ("<%s> %s" % (m.group(1), m.group(2))).strip()
                event(a, "MAIL conn=%d txn=%d %s fail=%s" % (self.num, txn, arg,
                                                            self.failing(txn)))
                self.send("250 2.1.0 Ok")
            elif verb == "RCPT":
                m = re.match(r"(?i)TO:\s*<([^>]*)>\s*(.*)", arg)
                if mail is None:
                    self.send("503 5.5.1 Error: need MAIL command")
                    continue
                if not m:
                    self.send("501 5.5.4 Syntax: RCPT TO:<address>")
                    continue
                reply = "250 2.1.5 Ok"
                for rule in a.rcpt_reply:
                    pat, _, r = rule.partition("=")
                    if pat.lower() in m.group(1).lower():
                        reply = r
                        break
                if self.failing(txn) == "rcpt":
                    reply = "451 4.3.2 <%s>: flaky: try again later (txn %d)" % (
                        m.group(1), txn)
                event(a, "RCPT conn=%d txn=%d %s -> %s" % (self.num, txn, arg, reply[:3]))
                if reply.startswith("2"):
                    rcpts.append(m.group(1))
                    rcpt_args.append(("<%s> %s" % (m.group(1), m.group(2))).strip())
                self.send(reply)
            elif verb == "DATA":
                if not rcpts:
                    self.send("554 5.5.1 Error: no valid recipients")
                    continue
                self.send("354 End data with <CR><LF>.<CR><LF>")
                body = self.read_data()
                if body is None:
                    return
                drop = False
                with LOCK:
                    if STATE["dropped"] < a.drop_after_dot:
                        STATE["dropped"] += 1
                        drop = True
                if drop:
                    name = self.store(mail, mail_args, rcpts, rcpt_args, txn, body) \
                        if a.store_dropped else "-"
                    event(a, "DROP conn=%d txn=%d stored=%s" % (self.num, txn, name))
                    self.sock.shutdown(socket.SHUT_RDWR)
                    return
                if self.failing(txn) == "data":
                    event(a, "DATA conn=%d txn=%d -> 451" % (self.num, txn))
                    self.send("451 4.3.0 flaky: queue file write error (txn %d)" % txn)
                else:
                    name = self.store(mail, mail_args, rcpts, rcpt_args, txn, body)
                    event(a, "STORED conn=%d txn=%d %s" % (self.num, txn, name))
                    self.send("250 2.0.0 Ok: stored as T%d" % txn)
                mail, rcpts, rcpt_args = None, [], []
            elif verb == "RSET":
                mail, rcpts, rcpt_args = None, [], []
                self.send("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 Error: command not recognized")

    def store(self, mail, mail_args, rcpts, rcpt_args, txn, body):
        with LOCK:
            STATE["stored"] += 1
            n = STATE["stored"]
        name = "%d.%d_%d.flaky" % (int(time.time()), os.getpid(), n)
        head = ["Return-Path: <%s>" % mail]
        head += ["Delivered-To: %s" % r for r in rcpts]
        head.append("X-Mail-Args: %s" % mail_args)
        head += ["X-Rcpt-Args: %s" % r for r in rcpt_args]
        head.append("X-Hop-Txn: %d" % txn)
        tmp = os.path.join(self.a.maildir, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(("\r\n".join(head) + "\r\n").encode("utf-8"))
            f.write(body)
        os.rename(tmp, os.path.join(self.a.maildir, "new", name))
        return name


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True, help="ADDR:PORT")
    p.add_argument("--maildir", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--fail-where", choices=("rcpt", "data", "alternate"), default="alternate")
    p.add_argument("--drop-after-dot", type=int, default=0)
    p.add_argument("--store-dropped", action="store_true")
    p.add_argument("--rcpt-reply", action="append", default=[])
    a = p.parse_args()
    for d in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(a.maildir, d), exist_ok=True)
    host, _, port = a.listen.rpartition(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(128)
    sys.stderr.write("flaky_hop.py listening on %s\n" % a.listen)
    sys.stderr.flush()
    num = 0
    while True:
        c, _ = s.accept()
        num += 1
        Session(a, c, num).start()


if __name__ == "__main__":
    main()
