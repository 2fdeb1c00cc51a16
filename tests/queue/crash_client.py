#!/usr/bin/env python3
"""crash_client.py: the SMTP load of tests/queue/t_crash.sh.

Sends messages with unique Message-IDs over several concurrent connections
until --count of them got 250 at end of DATA (or --deadline passes), and
logs the outcome of every message that reached DATA, one line each:

    ID<TAB>CODE<TAB>reply text        CODE: the 3-digit final reply
    ID<TAB>died<TAB>why               the connection broke before the reply

Only CODE 2xx counts as accepted.  A message whose connection died after
the end of data is never retried under the same ID (it may or may not have
been accepted: it is neither required nor forbidden at the sink).  When the
relay is not listening (being restarted), connects are retried.

--progress FILE is rewritten about ten times a second with
"accepted attempted died" so the driver can time kills and next-hop
changes by progress rather than by the clock.  --rate caps the messages
started per second across all connections, so the load spans the kills.
"""
import argparse
import os
import socket
import sys
import threading
import time

LOCK = threading.Lock()


class State:
    def __init__(self, args):
        self.args = args
        self.seq = 0
        self.accepted = 0
        self.attempted = 0
        self.died = 0
        self.refused = 0
        self.stop = False
        self.log = open(args.log, "w", buffering=1)
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.deadline

    def next_id(self):
        """A new Message-ID, or None when enough were accepted.  Paced."""
        while True:
            with LOCK:
                if self.stop or self.accepted >= self.args.count or \
                        time.monotonic() > self.deadline:
                    self.stop = True
                    return None
                due = self.t0 + self.seq / self.args.rate if self.args.rate > 0 else 0
                now = time.monotonic()
                if now >= due:
                    self.seq += 1
                    self.attempted += 1
                    return "<crash-%d.%s@smrelay.test>" % (self.seq, self.args.tag)
            time.sleep(min(0.05, due - now))

    def record(self, mid, code, text):
        with LOCK:
            if code.startswith("2"):
                self.accepted += 1
            elif code == "died":
                self.died += 1
            self.log.write("%s\t%s\t%s\n" % (mid, code, text.replace("\t", " ")))


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def reply(self):
        """Read one (possibly multiline) reply: (code, last line text)."""
        lines = []
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed")
                self.buf += chunk
                continue
            line, self.buf = self.buf[:i].rstrip(b"\r"), self.buf[i + 1:]
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                break
        last = lines[-1]
        return last[:3], last[4:]

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()


def body(args, mid, n):
    filler = ("crash test line %d of message %s, " % (n, mid)).ljust(76, "x")
    lines = [
        "From: <%s>" % args.sender,
        "To: <%s>" % args.rcpt,
        "Subject: crash test %s" % mid,
        "Message-ID: %s" % mid,
        "Date: Thu, 1 Jan 2026 00:00:00 +0000",
        "",
    ]
    lines += [filler] * max(1, args.size // 78)
    return ("\r\n".join(lines) + "\r\n.\r\n").encode()


def worker(st, wid):
    args = st.args
    conn = None
    mid = None
    while True:
        if conn is None:
            try:
                s = socket.create_connection((args.host, args.port), timeout=args.timeout)
                conn = Conn(s)
                code, text = conn.reply()
                if code != "220":
                    raise ConnectionError("greeting %s %s" % (code, text))
                code, text = conn.cmd("EHLO crash%d.smrelay.test" % wid)
                if code != "250":
                    raise ConnectionError("EHLO %s %s" % (code, text))
            except (OSError, ConnectionError):
                if conn is not None:
                    conn.sock.close()
                conn = None
                with LOCK:
                    st.refused += 1
                    if st.stop or time.monotonic() > st.deadline:
                        return
                time.sleep(0.05)
                continue
        mid = st.next_id()
        if mid is None:
            try:
                conn.cmd("QUIT")
            except (OSError, ConnectionError):
                pass
            conn.sock.close()
            return
        in_data = False
        try:
            code, text = conn.cmd("MAIL FROM:<%s>" % args.sender)
            if code == "250":
                code, text = conn.cmd("RCPT TO:<%s>" % args.rcpt)
            if code == "250":
                code, text = conn.cmd("DATA")
            if code == "354":
                in_data = True
                conn.sock.sendall(body(args, mid, st.seq))
                code, text = conn.reply()
                st.record(mid, code, text)
                in_data = False
            else:
                # Refused before DATA: never accepted, nothing to check.
                st.record(mid, "pre-" + code, text)
                conn.cmd("RSET")
        except (OSError, ConnectionError) as e:
            st.record(mid, "died", "%s%s" % ("in DATA: " if in_data else "", e))
            conn.sock.close()
            conn = None


def progress(st):
    while True:
        with LOCK:
            line = "%d %d %d\n" % (st.accepted, st.attempted, st.died)
            done = st.stop
        with open(st.args.progress + ".tmp", "w") as f:
            f.write(line)
        os.replace(st.args.progress + ".tmp", st.args.progress)
        if done:
            return
        time.sleep(0.1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=2000, help="stop after this many got 250")
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--rate", type=float, default=0, help="messages started per second (0: no cap)")
    p.add_argument("--size", type=int, default=1500)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--deadline", type=float, default=600, help="give up after this many seconds")
    p.add_argument("--sender", default="load@example.com")
    p.add_argument("--rcpt", default="sink@example.net")
    p.add_argument("--tag", default="x")
    p.add_argument("--log", required=True)
    p.add_argument("--progress", required=True)
    args = p.parse_args()

    st = State(args)
    ts = [threading.Thread(target=worker, args=(st, i), daemon=True) for i in range(args.conns)]
    pt = threading.Thread(target=progress, args=(st,), daemon=True)
    for t in ts:
        t.start()
    pt.start()
    for t in ts:
        t.join()
    with LOCK:
        st.stop = True
    pt.join()
    st.log.close()
    print("accepted %d attempted %d died %d reconnects %d in %.1f s" % (
        st.accepted, st.attempted, st.died, st.refused, time.monotonic() - st.t0))
    return 0 if st.accepted >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
