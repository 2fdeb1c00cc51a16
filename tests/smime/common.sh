# tests/smime/common.sh: sourced by the S/MIME test scripts after they set
# W (their work directory) and G (its GnuPG home): cleanup on exit, and the
# PASS/FAIL/SKIP reporting that counts failures in $fails, and ctl/ar for
# the scripts that run smrelayctl.
fails=0

cleanup() {
	if [ -d "$G" ]; then
		GNUPGHOME=$G gpgconf --kill all >/dev/null 2>&1
	fi
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1${2:+ ($2)}"; fails=$((fails + 1)); }
skip() { echo "SKIP: $1"; }
lastline() { tail -n 1 "$1" 2>/dev/null | tr -d '\r'; }
# ctl NAME ARGS... < IN > OUT: smrelayctl ($CTL) on $W/smrelay.conf,
# stderr to NAME.err; a sanitizer report is a failure of its own.
ctl() {
	_n=$1
	shift
	"$CTL" -c "$W/smrelay.conf" "$@" 2> "$_n.err"
	_rc=$?
	if grep -q 'Sanitizer\|runtime error:' "$_n.err"; then
		fail "$_n: sanitizer" "$(grep -m1 'SUMMARY\|runtime error:' "$_n.err")"
	fi
	return $_rc
}
# ar FILE: its first line (our Authentication-Results).
ar() { head -n 1 "$1" | tr -d '\r'; }

# Where der.py is, for the scripts' python (absolute: they cd into $W).
SMIME_PY=$(cd "$srcdir/tests/smime" && pwd)

# make_pki: the test PKI (pki.sh) in $W/pki as $P, then into $W; exits
# with FAIL when it cannot be made.
make_pki() {
	sh "$srcdir/tests/smime/pki.sh" "$W/pki" >/dev/null 2>"$W/pki.err" ||
		{ echo "FAIL: pki.sh ($(lastline "$W/pki.err"))"; exit 1; }
	P=$W/pki
	cd "$W" || exit 1
}
# wrap_p7m TYPE DER: a message around a CMS object, under the header
# fields $HDR (printf escapes).
wrap_p7m() {
	printf "$HDR"
	printf 'MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=%s; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n' "$1"
	base64 -w 76 < "$2" | sed 's/$/\r/'
}
