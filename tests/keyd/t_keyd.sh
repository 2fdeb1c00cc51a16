#!/bin/sh
# tests/keyd/t_keyd.sh: `make check` entry for keyd_test (the key process's
# server against a normal and a hostile client) with the PKI of
# tests/smime/pki.sh.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
T=./tests/keyd/keyd_test
[ -x "$T" ] || { echo "keyd_test not built" >&2; exit 99; }
command -v openssl >/dev/null 2>&1 || { echo "SKIP: no openssl program"; exit 77; }
W=$(mktemp -d "${TMPDIR:-/tmp}/keyd.XXXXXX") || exit 99
trap 'rm -rf "$W"' EXIT
trap 'exit 1' INT TERM
sh "$srcdir/tests/smime/pki.sh" "$W/pki" >/dev/null 2>"$W/pki.err" ||
	{ echo "FAIL: pki.sh: $(tail -n 1 "$W/pki.err")"; exit 1; }
"$T" "$W/pki" 2>"$W/log"
rc=$?
# again with the operations on worker threads, as in smrelayd's key process
echo "with worker threads:"
KEYD_TEST_WORKERS=1 "$T" "$W/pki" 2>>"$W/log" || rc=1
# the server's log lines, for the test log
grep -c 'error=' "$W/log" | sed 's/^/keyd error answers logged: /'
if grep -q 'Sanitizer\|runtime error:' "$W/log"; then
	grep -m3 'SUMMARY\|runtime error:' "$W/log"
	rc=1
fi
[ $rc -eq 0 ] || tail -n 40 "$W/log"
exit $rc
