#!/bin/sh
# tests/keyd/t_keyd_client.sh: keys that are only handles (keyd_client_test
# against its own small key server) with the test PKI of tests/smime/pki.sh.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
T=${KEYD_CLIENT_TEST:-$PWD/tests/keyd/keyd_client_test}
W=$(mktemp -d "${TMPDIR:-/tmp}/keyd-client.XXXXXX") || exit 99
trap 'rm -rf "$W"' EXIT
trap 'exit 1' INT TERM

command -v openssl >/dev/null 2>&1 || { echo "SKIP: no openssl program"; exit 77; }
[ -x "$T" ] || { echo "FAIL: keyd_client_test not built at $T"; exit 1; }
sh "$srcdir/tests/smime/pki.sh" "$W/pki" >/dev/null 2>"$W/pki.err" ||
	{ echo "FAIL: pki.sh ($(tail -n 1 "$W/pki.err"))"; exit 1; }
"$T" "$W/pki"
