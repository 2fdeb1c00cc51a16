#!/bin/sh
# tests/pkits/t_pkits.sh: certification path validation of the CMS engine
# (proto/cms.c) checked against the NIST PKITS S/MIME messages shipped in
# Debian's python3-cryptography-vectors (PKITS_data/smime, certs, crls).
#
# pkits_verify verifies every message with the PKITS trust anchor, all PKITS
# certificates as known certificates, all CRLs with CRL checking on the
# whole chain, at a fixed time inside the PKITS validity window, and with
# the store set up for RFC 5280 validation with PKITS's default settings
# (initial-policy-set anyPolicy, no explicit policy required, mapping and
# anyPolicy not inhibited; see pkits_store_params()).  Signed*Valid* must
# pass, Signed*Invalid* must fail, the other names follow expected() below.
# Prints PASS/FAIL per message and KNOWN for the listed exceptions; a known
# exception that passes is reported (NOTE) but does not fail the test.
# A second, informational run counts what OpenSSL's default verification
# parameters (a store nobody configured) would get wrong.  Exits 77 (skip)
# without the data, 1 on any unexpected result.
set -u
P=${PKITS_DATA:-/usr/lib/python3/dist-packages/cryptography_vectors/x509/PKITS_data}
V=${PKITS_VERIFY:-$PWD/tests/pkits/pkits_verify}

. "$(cd "$(dirname "$0")" && pwd)/expect.sh"

if [ ! -d "$P/smime" ]; then
	echo "SKIP: no PKITS data at $P (apt-get install python3-cryptography-vectors)"
	exit 77
fi
[ -x "$V" ] || { echo "FAIL: pkits_verify not built at $V"; exit 1; }
W=$(mktemp -d /tmp/pkits.XXXXXX)
trap 'rm -rf "$W"' EXIT
trap 'exit 1' INT TERM

"$V" "$P" "$P"/smime/*.eml >"$W/out" 2>"$W/err" ||
	{ echo "FAIL: pkits_verify: $(tail -n 1 "$W/err")"; exit 1; }
total=$(ls "$P"/smime/*.eml | wc -l)
lines=$(wc -l <"$W/out")
if [ "$lines" -ne "$total" ] || [ "$total" -lt 200 ]; then
	echo "FAIL: $lines results for $total messages"
	exit 1
fi

fails=0 valid=0 invalid=0 nknown=0
while read -r name outcome reason; do
	want=$(expected "$name")
	got=fail
	[ "$outcome" = pass ] && got=pass
	if why=$(known "$name"); then
		if [ "$got" = "$want" ]; then
			echo "NOTE $name: known exception ($why) now gives" \
			    "$got as expected; take it off the list"
		else
			echo "KNOWN $name: $why ($outcome${reason:+: $reason})"
		fi
		nknown=$((nknown + 1))
	elif [ "$want" = unknown ]; then
		echo "FAIL $name: no expected outcome for this name"
		fails=$((fails + 1))
	elif [ "$got" != "$want" ]; then
		echo "FAIL $name: $outcome${reason:+ ($reason)}, expected $want"
		fails=$((fails + 1))
	else
		echo "PASS $name${reason:+ ($reason)}"
		if [ "$want" = pass ]; then
			valid=$((valid + 1))
		else
			invalid=$((invalid + 1))
		fi
	fi
done <"$W/out"

# The same messages through a trust store left at OpenSSL's defaults, as the
# daemon and smrelayctl build it: the engine itself must turn on policy
# processing, indirect and delta CRLs, so the results must not change.
if "$V" -D "$P" "$P"/smime/*.eml >"$W/def" 2>/dev/null; then
	off=0
	while read -r name outcome reason; do
		got=fail
		[ "$outcome" = pass ] && got=pass
		known "$name" >/dev/null && continue
		if [ "$got" != "$(expected "$name")" ]; then
			off=$((off + 1))
			echo "FAIL default-store $name: got $got ($reason)"
		fi
	done <"$W/def"
	echo "default store: $off cases differ"
	fails=$((fails + off))
else
	echo "FAIL default-store: pkits_verify -D could not run"
	fails=$((fails + 1))
fi

echo "pkits: $valid valid passed, $invalid invalid rejected," \
    "$nknown known exceptions"
[ "$fails" -eq 0 ] || { echo "pkits: $fails unexpected results"; exit 1; }
exit 0
