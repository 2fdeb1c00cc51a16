#!/usr/bin/env python3
"""mailfile.py: look inside captured message files.

  mailfile.py header FILE NAME   print each NAME: header value, unfolded, one a line
  mailfile.py bodyhash FILE      sha256 of the body (after the first empty line),
                                 line ends normalised to \\n, trailing empty
                                 lines dropped: equal for the same body whether
                                 stored with CRLF or LF
  mailfile.py count-headers FILE NAME   how many NAME: headers
"""
import hashlib
import sys


def split(path):
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    lines = [l[:-1] if l.endswith(b"\r") else l for l in lines]
    try:
        i = lines.index(b"")
    except ValueError:
        return lines, []
    return lines[:i], lines[i + 1:]


def headers(head):
    out = []
    for l in head:
        if l[:1] in (b" ", b"\t") and out:
            out[-1] = out[-1] + b" " + l.strip()
        else:
            out.append(l)
    return out


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    head, body = split(path)
    if cmd == "bodyhash":
        while body and body[-1] == b"":
            body.pop()
        print(hashlib.sha256(b"\n".join(body)).hexdigest())
    elif cmd in ("header", "count-headers"):
        name = sys.argv[3].lower().encode() + b":"
        vals = [h[len(name):].strip() for h in headers(head) if h.lower().startswith(name)]
        if cmd == "header":
            for v in vals:
                print(v.decode("utf-8", "replace"))
        else:
            print(len(vals))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
