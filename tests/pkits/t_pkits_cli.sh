#!/bin/sh
# tests/pkits/t_pkits_cli.sh: NIST PKITS through the product path, as an
# admin would run it: the trust anchor with `trust import`, every PKITS
# certificate in one `cert import` (the CAs and CRL signers that chain to
# the anchor are kept as intermediates), every CRL with `crl import` (the
# refused ones named), then each S/MIME message through `smrelayctl smime
# verify` with revocation = hard.  Expected outcomes and known exceptions
# are t_pkits.sh's (expect.sh); at least 99 % must be right and every other
# case is listed with its Authentication-Results.  Exits 77 without the data.
set -u
here=$(cd "$(dirname "$0")" && pwd)
P=${PKITS_DATA:-/usr/lib/python3/dist-packages/cryptography_vectors/x509/PKITS_data}
CTL=${SMRELAYCTL:-$PWD/smrelayctl}
. "$here/expect.sh"

if [ ! -d "$P/smime" ]; then
	echo "SKIP: no PKITS data at $P (apt-get install python3-cryptography-vectors)"
	exit 77
fi
[ -x "$CTL" ] || { echo "FAIL: smrelayctl not built at $CTL"; exit 1; }
W=$(mktemp -d /tmp/pkits-cli.XXXXXX)
trap 'rm -rf "$W"' EXIT
trap 'exit 1' INT TERM
printf 'relay = 127.0.0.1:2525\ndata_dir = %s/data\nhostname = gw.example\nrevocation = hard\n' \
	"$W" > "$W/c.conf"
ctl() { "$CTL" -c "$W/c.conf" "$@"; }

ctl trust import "$P/certs/TrustAnchorRootCertificate.crt" > /dev/null ||
	{ echo "FAIL: trust import"; exit 1; }
python3 - "$P/certs" "$W/all.pem" <<'PY' || { echo "FAIL: PEM bundle"; exit 1; }
import base64, os, sys
with open(sys.argv[2], "w") as out:
    for n in sorted(os.listdir(sys.argv[1])):
        d = open(os.path.join(sys.argv[1], n), "rb").read()
        b = base64.encodebytes(d).decode().replace("\n", "")
        out.write("-----BEGIN CERTIFICATE-----\n")
        out.write("\n".join(b[i:i + 64] for i in range(0, len(b), 64)))
        out.write("\n-----END CERTIFICATE-----\n")
PY
ctl cert import --force "$W/all.pem" > "$W/certs.out" 2> "$W/certs.err"
echo "# cert import: $(wc -l < "$W/certs.out") kept of $(ls "$P/certs" | wc -l)"
refused=0
for f in "$P"/crls/*.crl; do
	if ! ctl crl import "$f" > /dev/null 2> "$W/crl.err"; then
		refused=$((refused + 1))
		echo "# crl import $(basename "$f"): $(tail -n 1 "$W/crl.err")"
	fi
done
echo "# crl import: $refused of $(ls "$P"/crls/*.crl | wc -l) refused"

right=0 wrong=0 total=0 nknown=0
for m in "$P"/smime/*.eml; do
	name=$(basename "$m" .eml)
	total=$((total + 1))
	ar=$(ctl smime verify < "$m" 2>/dev/null | head -n 1 | tr -d '\r')
	case $ar in
	*"smime=pass"*|*"smime=policy"*) got=pass ;;	# PKITS names no address
	*) got=fail ;;
	esac
	want=$(expected "$name")
	if [ "$got" = "$want" ]; then
		right=$((right + 1))
	elif why=$(known "$name"); then
		nknown=$((nknown + 1))
		echo "KNOWN $name: $why ($ar)"
	else
		wrong=$((wrong + 1))
		echo "WRONG $name: expected $want, got: $ar"
	fi
done
pct=$((right * 1000 / total))
echo "pkits via smrelayctl: $right of $total right ($((pct / 10)).$((pct % 10)) %)," \
    "$nknown known exceptions, $wrong other"
[ "$right" -ge 200 ] && [ $((right * 100)) -ge $((total * 99)) ] && [ "$wrong" -eq 0 ] || exit 1
exit 0
