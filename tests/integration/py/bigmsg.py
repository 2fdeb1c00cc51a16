#!/usr/bin/env python3
"""bigmsg.py: write big test messages fast (no shell loops).

  bigmsg.py plain --size N --from A --to B OUT
      a text/plain message of N bytes of 76-character base64-alphabet lines
      (random), as it goes on the wire: CRLF, ending in ".\\r\\n".
  bigmsg.py entity --size N OUT
      a text/plain MIME entity (Content-Type, blank line, N bytes of such
      lines), CRLF, for openssl cms to sign.
  bigmsg.py wire IN OUT
      an RFC 5322 file (LF or CRLF) as DATA payload: CRLF, dot-stuffed,
      ending in ".\\r\\n".
  bigmsg.py bad KIND --size N OUT
      a hostile message on the wire: longhdr (one header line of N bytes),
      longb64 (one base64 body line of N bytes), parts (N/40 tiny MIME parts),
      deep (multiparts nested N levels).
"""
import base64
import os
import sys

HDR = ("From: <%s>\r\nTo: <%s>\r\nSubject: big message\r\n"
       "Message-ID: <big.%d@example.com>\r\nMIME-Version: 1.0\r\n")


def plain(size, mfrom, to, out):
    with open(out, "wb") as f:
        f.write((HDR % (mfrom, to, size)).encode())
        f.write(b"Content-Type: text/plain; charset=us-ascii\r\n\r\n")
        lines(f, size)
        f.write(b".\r\n")


def lines(f, size):
    raw = base64.b64encode(os.urandom(57 * 20000))  # 76 chars per line
    block = b"".join(raw[i:i + 76] + b"\r\n" for i in range(0, len(raw), 76))
    done = 0
    while done < size:
        n = min(len(block), (size - done + 77) // 78 * 78)
        f.write(block[:n])
        done += n


def entity(size, out):
    with open(out, "wb") as f:
        f.write(b"Content-Type: text/plain; charset=us-ascii\r\n\r\n")
        lines(f, size)


def wire(src, out):
    with open(src, "rb") as f:
        data = f.read().replace(b"\r\n", b"\n").split(b"\n")
    if data and data[-1] == b"":
        data.pop()
    with open(out, "wb") as f:
        for line in data:
            if line.startswith(b"."):
                line = b"." + line
            f.write(line + b"\r\n")
        f.write(b".\r\n")


def bad(kind, size, out):
    with open(out, "wb") as f:
        f.write((HDR % ("alice@example.com", "bob@partner.example", size)).encode())
        if kind == "longhdr":
            f.write(b"X-Long: " + b"a" * size + b"\r\n")
            f.write(b"Content-Type: text/plain\r\n\r\nshort body\r\n")
        elif kind == "longb64":
            f.write(b"Content-Type: application/octet-stream\r\n"
                    b"Content-Transfer-Encoding: base64\r\n\r\n")
            f.write(b"QUJD" * (size // 4) + b"\r\n")
        elif kind == "parts":
            f.write(b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n')
            part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
            f.write(part * (size // len(part)))
            f.write(b"--b--\r\n")
        elif kind == "deep":
            f.write(b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n')
            for i in range(1, size):
                f.write(b"--b%d\r\nContent-Type: multipart/mixed; "
                        b"boundary=\"b%d\"\r\n\r\n" % (i - 1, i))
            f.write(b"--b%d\r\nContent-Type: text/plain\r\n\r\ndeep\r\n" % (size - 1))
            for i in range(size - 1, -1, -1):
                f.write(b"--b%d--\r\n" % i)
        f.write(b".\r\n")


def main():
    a = sys.argv[1:]
    opt = {}
    pos = []
    i = 0
    while i < len(a):
        if a[i].startswith("--"):
            opt[a[i][2:]] = a[i + 1]
            i += 2
        else:
            pos.append(a[i])
            i += 1
    if pos[0] == "plain":
        plain(int(opt["size"]), opt["from"], opt["to"], pos[1])
    elif pos[0] == "entity":
        entity(int(opt["size"]), pos[1])
    elif pos[0] == "wire":
        wire(pos[1], pos[2])
    elif pos[0] == "bad":
        bad(pos[1], int(opt["size"]), pos[2])
    else:
        sys.exit("usage: see the docstring")


if __name__ == "__main__":
    main()
