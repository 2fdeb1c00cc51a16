# tests/smime/common.sh: sourced by the S/MIME test scripts after they set
# W (their work directory) and G (its GnuPG home): cleanup on exit, and the
# PASS/FAIL/SKIP reporting that counts failures in $fails.
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
