#!/usr/bin/env python3
"""holdconns.py: open N idle SMTP connections and hold them.

Reads the banner of each connection and writes one status line to --status
(or stdout): "ready opened=N codes=220:N[,421:M]".  Then holds every
connection open until killed (SIGTERM) or --hold seconds pass.
Used for max_connections and for the idle-connection memory benchmark.
With --starttls each connection says EHLO, STARTTLS (no certificate check)
and EHLO again before it idles, and counts "tls" instead of the banner code.
"""
import argparse
import resource
import signal
import socket
import ssl
import sys
import time
from collections import Counter


def reply(s):
    """One whole SMTP reply (the last line has a space after the code)."""
    buf = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
        lines = buf.split(b"\r\n")
        if any(len(l) > 3 and l[3:4] == b" " for l in lines):
            return buf


def starttls(s, ctx):
    """EHLO, STARTTLS, the handshake, EHLO: the TLS socket."""
    s.sendall(b"EHLO hold.test\r\n")
    reply(s)
    s.sendall(b"STARTTLS\r\n")
    if not reply(s).startswith(b"220"):
        raise OSError("STARTTLS refused")
    t = ctx.wrap_socket(s)
    t.sendall(b"EHLO hold.test\r\n")
    reply(t)
    return t


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--status")
    p.add_argument("--hold", type=float, default=600)
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--bind")
    p.add_argument("--starttls", action="store_true")
    p.add_argument("host")
    p.add_argument("port", type=int)
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.count + 64
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))
        except (ValueError, OSError):
            pass
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    socks, codes = [], Counter()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for _ in range(a.count):
        s = socket.socket(socket.AF_INET6 if ":" in a.host else socket.AF_INET)
        if a.bind:
            s.bind((a.bind, 0))
        s.settimeout(a.timeout)
        try:
            s.connect((a.host, a.port))
            banner = s.recv(512)
            if a.starttls and banner[:3] == b"220":
                s = starttls(s, ctx)
                banner = b"tls"
            codes[banner[:3].decode("ascii", "replace") or "EOF"] += 1
        except OSError as e:
            codes["ERR-%s" % type(e).__name__] += 1
        socks.append(s)
    line = "ready opened=%d codes=%s\n" % (len(socks), ",".join("%s:%d" % kv for kv in sorted(codes.items())))
    if a.status:
        with open(a.status + ".tmp", "w") as f:
            f.write(line)
        import os
        os.rename(a.status + ".tmp", a.status)
    else:
        sys.stdout.write(line)
        sys.stdout.flush()
    time.sleep(a.hold)


if __name__ == "__main__":
    main()
