#!/usr/bin/env python3
"""tamper_ticket.py IN OUT: copy an `openssl s_client -sess_out` session
(PEM, SSL SESSION PARAMETERS) with one byte of its session ticket flipped,
in the middle of the encrypted part, so that the ticket's MAC no longer
matches.  Exit 1 when the session holds no ticket."""
import base64
import sys


def length(der, i):
    """(length, offset of the contents) of the DER element whose length
    octets start at i."""
    n = der[i]
    if n < 0x80:
        return n, i + 1
    k = n & 0x7F
    return int.from_bytes(der[i + 1:i + 1 + k], "big"), i + 1 + k


def main():
    text = open(sys.argv[1]).read()
    body = text.split("-----")[2]
    der = bytearray(base64.b64decode("".join(body.split())))
    if der[0] != 0x30:
        sys.exit("not a SEQUENCE")
    end_len, i = length(der, 1)
    end = i + end_len
    while i < end:
        tag = der[i]
        n, c = length(der, i + 1)
        if tag == 0xAA:                      # [10] EXPLICIT: the ticket
            if der[c] != 0x04:
                sys.exit("ticket is not an OCTET STRING")
            tn, tc = length(der, c + 1)
            der[tc + tn // 2] ^= 0x5A
            b64 = base64.b64encode(bytes(der)).decode()
            with open(sys.argv[2], "w") as f:
                f.write("-----BEGIN SSL SESSION PARAMETERS-----\n")
                for k in range(0, len(b64), 64):
                    f.write(b64[k:k + 64] + "\n")
                f.write("-----END SSL SESSION PARAMETERS-----\n")
            return
        i = c + n
    sys.exit("no ticket in the session")


if __name__ == "__main__":
    main()
