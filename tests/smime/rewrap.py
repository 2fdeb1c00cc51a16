"""rewrap.py: an envelope with one recipient's encrypted key replaced, for
the padding-oracle tests (t_interop.sh, t_privsep.sh).

  rewrap.py badpad
      255 random bytes starting 00 02, no zero after: no valid PKCS#1
      v1.5 padding under a 2048-bit modulus (the padding check, not the
      size check, is what fails)
  rewrap.py IN.der EKFILE OUT.der [--serial HEX] [--respell-issuer]
      IN's (Auth)EnvelopedData with the encrypted key of the recipient
      whose serial is HEX (without --serial: the only recipient) set to
      EKFILE's bytes; --respell-issuer turns the issuer name's
      UTF8Strings into PrintableStrings (the same name to X.509)."""

import os
import sys

import der


def badpad():
    return b"\x00\x02" + bytes(b | 1 for b in os.urandom(254))


def rewrap(src, ek, serial=None, respell=False):
    root, _ = der.parse(src, 0)
    ed = root[1][1][1][0][1]            # (Auth)EnvelopedData's fields
    ris = [f for f in ed if f[0] == 0x31][0][1]
    if serial is None:
        assert len(ris) == 1, "more than one RecipientInfo"
        hit = ris
    else:
        hit = [ri for ri in ris if ri[1][1][0] == 0x30 and
               int.from_bytes(ri[1][1][1][1][1], "big") == serial]
        assert len(hit) == 1, "no RecipientInfo for serial %x" % serial
    ri = hit[0]
    ri[1][3][1] = ek
    if respell:
        n = 0
        for rdn in ri[1][1][1][0][1]:
            for atv in rdn[1]:
                if atv[1][1][0] == 0x0c:
                    atv[1][1][0] = 0x13
                    n += 1
        assert n > 0, "no UTF8String in the issuer"
    return der.enc(root)


def main(argv):
    if argv[1:] == ["badpad"]:
        sys.stdout.buffer.write(badpad())
        return 0
    args = argv[1:]
    serial, respell = None, False
    if "--respell-issuer" in args:
        args.remove("--respell-issuer")
        respell = True
    if "--serial" in args:
        i = args.index("--serial")
        serial = int(args[i + 1], 16)
        del args[i:i + 2]
    if len(args) != 3:
        sys.stderr.write(__doc__)
        return 2
    with open(args[0], "rb") as f:
        src = f.read()
    with open(args[1], "rb") as f:
        ek = f.read()
    out = rewrap(src, ek, serial, respell)
    with open(args[2], "wb") as f:
        f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
