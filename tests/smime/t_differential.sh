#!/bin/sh
# tests/smime/t_differential.sh: our smime=pass against what a real mail
# reader shows.  A valid signature by bob (openssl cms) is put under N
# variants of its header section, Content-Type and framing
# (tests/smime/mutate.py gen), most adding a text part "MALLORY" where some
# reader could show it.  `smrelayctl smime verify` of each: wherever it says
# smime=pass, Python's email parser (compat32 and default policy) must see
# the same message: multipart/signed, two parts, no MALLORY anywhere, one
# From (mutate.py seen).  Whatever we cannot be sure of must be permerror
# or policy, never pass.  Prints PASS/FAIL per check; exits 1 on a failure.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
CTL=${SMRELAYCTL:-$PWD/smrelayctl}
N=${DIFF_N:-400}
SEED=${DIFF_SEED:-20261207}
W=$(mktemp -d "${TMPDIR:-/tmp}/smime-diff.XXXXXX") || exit 99
G=$W/gnupg
. "$srcdir/tests/smime/common.sh"

command -v openssl >/dev/null 2>&1 || { echo "SKIP: no openssl program"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
[ -x "$CTL" ] || { echo "FAIL: smrelayctl not built at $CTL"; exit 1; }
make_pki
printf 'relay = 127.0.0.1:2525\ndata_dir = %s/data\nhostname = gw.example\n' "$W" > smrelay.conf
ctl setup-trust trust import "$P/trust.pem" > /dev/null ||
	{ echo "FAIL: store setup ($(lastline setup-trust.err))"; exit 1; }

printf 'Content-Type: text/plain; charset=us-ascii\n\nPay invoice 1 to account A.\n' > ent.txt
openssl cms -sign -in ent.txt -signer "$P/bob.pem" -inkey "$P/bob.key" \
	-certfile "$P/chain.pem" -from 'Bob <bob@partner.example>' \
	-to alice@example.com -subject invoice > signed.eml 2> sign.err ||
	{ echo "FAIL: openssl cms -sign ($(lastline sign.err))"; exit 1; }
verdict() { "$CTL" -c "$W/smrelay.conf" smime verify < "$1" 2>> verify.err |
	head -n 1 | sed -n 's/^Authentication-Results: [^;]*; smime=\([a-z]*\).*/\1/p'; }

# The message as signed: pass, and the reader agrees.
if [ "$(verdict signed.eml)" = pass ] && [ -z "$(python3 "$SMIME_PY/mutate.py" seen signed.eml)" ]; then
	pass "the signed message: smime=pass, and Python's reader sees it the same"
else
	fail "the signed message: smime=pass, and Python's reader sees it the same" "$(verdict signed.eml)"
fi

mkdir mut
python3 "$SMIME_PY/mutate.py" gen signed.eml mut "$N" "$SEED" ||
	{ echo "FAIL: mutate.py gen"; exit 1; }
npass=0 nother=0 ndiff=0
for f in mut/*.eml; do
	v=$(verdict "$f")
	case $v in
	pass)
		npass=$((npass + 1))
		why=$(python3 "$SMIME_PY/mutate.py" seen "$f")
		if [ -n "$why" ]; then
			ndiff=$((ndiff + 1))
			[ $ndiff -le 5 ] && fail "$(basename "$f"): smime=pass, but Python's reader $why"
			[ $ndiff -le 5 ] && cp "$f" "${TMPDIR:-/tmp}/smime-diff-$(basename "$f")"
		fi ;;
	fail|permerror|policy|none) nother=$((nother + 1)) ;;
	*) fail "$(basename "$f"): no verdict" "$(tail -n 1 verify.err)" ;;
	esac
done
if grep -q 'Sanitizer\|runtime error:' verify.err; then
	fail "sanitizer" "$(grep -m1 'SUMMARY\|runtime error:' verify.err)"
fi
echo "# $N variants (seed $SEED): $npass pass, $nother other, $ndiff pass that the reader sees otherwise"
[ $ndiff -eq 0 ] && pass "no variant passes that Python's reader shows otherwise" ||
	fail "no variant passes that Python's reader shows otherwise" "$ndiff of $npass (the first kept as ${TMPDIR:-/tmp}/smime-diff-*)"
# The check above cannot pass by refusing everything: harmless variants
# (a trailing ";", a header field moved) must still pass.
[ $npass -ge $((N / 8)) ] && pass "harmless variants still pass ($npass of $N)" ||
	fail "harmless variants still pass" "only $npass of $N"
[ $fails -eq 0 ]
