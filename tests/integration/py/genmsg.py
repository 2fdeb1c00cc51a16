#!/usr/bin/env python3
"""genmsg.py: make a test message of a given size.

Writes the DATA payload as it goes on the wire (dot-stuffed, CRLF, ending in
".\\r\\n") to --wire, optionally the plain message to --plain, and prints the
body hash (see mailfile.py bodyhash) of the message on stdout.  Every 50th
body line starts with a dot so transparency is exercised.  --eightbit puts
UTF-8 text in the body.
"""
import argparse
import hashlib
import random


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=2000, help="approximate body bytes")
    p.add_argument("--wire", required=True)
    p.add_argument("--plain")
    p.add_argument("--from", dest="mfrom", default="sender@example.com")
    p.add_argument("--to", default="rcpt@example.net")
    p.add_argument("--subject", default="integration test")
    p.add_argument("--eightbit", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rnd = random.Random(a.seed)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    headers = ["From: <%s>" % a.mfrom, "To: <%s>" % a.to, "Subject: %s" % a.subject,
               "Message-ID: <genmsg.%d.%d@example.com>" % (a.seed, a.size),
               "MIME-Version: 1.0",
               "Content-Type: text/plain; charset=%s" % ("utf-8" if a.eightbit else "us-ascii"),
               "Content-Transfer-Encoding: %s" % ("8bit" if a.eightbit else "7bit")]
    lines, total, n = [], 0, 0
    while total < a.size:
        n += 1
        if n % 50 == 0:
            line = "." + "".join(rnd.choice(alphabet) for _ in range(40))
        elif a.eightbit and n % 7 == 0:
            line = "gr\u00fc\u00dfe \u00e0 tous \u2014 \u65e5\u672c line %d" % n
        else:
            line = "".join(rnd.choice(alphabet) for _ in range(76))
        lines.append(line)
        total += len(line.encode("utf-8")) + 2
    h = hashlib.sha256()
    h.update("\n".join(lines).encode("utf-8"))
    with open(a.wire, "wb") as f:
        f.write(("\r\n".join(headers) + "\r\n\r\n").encode("utf-8"))
        for line in lines:
            b = line.encode("utf-8")
            if b.startswith(b"."):
                b = b"." + b
            f.write(b + b"\r\n")
        f.write(b".\r\n")
    if a.plain:
        with open(a.plain, "wb") as f:
            f.write(("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    print(h.hexdigest())


if __name__ == "__main__":
    main()
