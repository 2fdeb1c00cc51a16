#!/usr/bin/env python3
"""noopflood.py: a client that pipelines NOOPs and never reads a reply.

Sends "NOOP\\r\\n" in 64 KB writes for --seconds, with a tiny receive buffer
so the server's replies back up at once.  A server with backpressure stops
reading from us (our writes then block); one without buffers the replies in
memory.  Writes "blocked sent=N" to --status the first time writes have
stalled for a second, and "done sent=N" at the end.
"""
import argparse
import os
import select
import socket
import time


def status(path, text):
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(text + "\n")
        os.rename(path + ".tmp", path)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--status")
    p.add_argument("host")
    p.add_argument("port", type=int)
    a = p.parse_args()
    s = socket.socket(socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((a.host, a.port))
    s.setblocking(False)
    chunk = b"NOOP\r\n" * (65536 // 6)
    sent, end, last_progress, blocked = 0, time.time() + a.seconds, time.time(), False
    while time.time() < end:
        _, w, _ = select.select([], [s], [], 0.2)
        if w:
            try:
                n = s.send(chunk)
                sent += n
                last_progress = time.time()
                continue
            except BlockingIOError:
                pass
            except OSError as e:
                status(a.status, "closed sent=%d error=%s" % (sent, e))
                return
        if not blocked and time.time() - last_progress > 1.0:
            blocked = True
            status(a.status, "blocked sent=%d" % sent)
    status(a.status, "done sent=%d blocked=%d" % (sent, int(blocked)))


if __name__ == "__main__":
    main()
