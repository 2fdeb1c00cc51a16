#!/bin/bash
# tests/layout/t_layout.sh: the tree's arrows point one way.
#   1. layering.py on the source tree (#include order, folder headers,
#      no two folders or modules including each other);
#   2. symbols.py on the build (no two object files calling each other,
#      smrelayctl without relay client or queue runner);
#   3. both checks catch each kind of problem planted in a copy of the
#      tree / in small hand-made objects (so they can fail).
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${abs_top_builddir:-$PWD}
PY=${PYTHON:-python3}
fails=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_clean NAME CMD...: the command exits 0.
expect_clean() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then pass "$name"; else fail "$name"; echo "$out"; fi
}

# expect_caught NAME PATTERN CMD...: the command exits 1 and says PATTERN.
expect_caught() {
	local name=$1 pat=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc -eq 1 ] && grep -qE -- "$pat" <<<"$out"; then
		pass "$name"
	else
		fail "$name (exit $rc, wanted /$pat/)"
		echo "$out"
	fi
}

expect_clean "the source tree keeps the layer order" \
	"$PY" "$srcdir/tests/layout/layering.py" "$srcdir"
expect_clean "no two objects call each other; smrelayctl has no relay or queue runner" \
	"$PY" "$srcdir/tests/layout/symbols.py" "$builddir"

# plant PROBLEM-NAME FILE LINE: a copy of the tree with LINE added to FILE.
plant() {
	rm -rf "$work/tree"
	mkdir -p "$work/tree"
	(cd "$srcdir" && tar cf - lib proto policy store daemon) | (cd "$work/tree" && tar xf -)
	printf '%s\n' "$2" >>"$work/tree/$1"
}

plant store/store_ops.c '#include "daemon/base/base.h"'
expect_caught "caught: a lower folder using a higher one" \
	'store/store_ops.c:[0-9]+: includes daemon/base/base.h: store may not use daemon/base' \
	"$PY" "$srcdir/tests/layout/layering.py" "$work/tree"
plant daemon/smime/gateway.c '#include "daemon/relay/relay_conn.h"'
expect_caught "caught: another folder's private header" \
	'use daemon/relay/relay.h, the folder.s header' \
	"$PY" "$srcdir/tests/layout/layering.py" "$work/tree"
plant policy/policy.c '#include "store/store.h"'
expect_caught "caught: two folders including each other" \
	'folders policy and store include each other' \
	"$PY" "$srcdir/tests/layout/layering.py" "$work/tree"
plant daemon/queue/spool.c '#include "queue.h"'
expect_caught "caught: two modules including each other's headers" \
	'modules daemon/queue/queue and daemon/queue/spool include each other' \
	"$PY" "$srcdir/tests/layout/layering.py" "$work/tree"
plant proto/mime.c '#include "proto/no_such.h"'
expect_caught "caught: an include of a file that does not exist" \
	'proto/no_such.h: no such file' \
	"$PY" "$srcdir/tests/layout/layering.py" "$work/tree"
plant daemon/base/base.h ''
rm -f "$work/tree/daemon/sink/sink.h"
expect_caught "caught: a folder without its header" \
	'daemon/sink: no daemon/sink/sink.h' \
	"$PY" "$srcdir/tests/layout/layering.py" "$work/tree"

# Hand-made objects: an upcall between two objects, and a CLI that links
# the relay client.
fake="$work/fake"
mkdir -p "$fake"
(
	cd "$fake" || exit 1
	for l in libsmlib libproto libpolicy libstore libbase libkeyd libsmtpd libqueue libsmime libsink; do
		ar rc "$l.a"
	done
	printf 'void conn_go(void);\nvoid txn_up(void) {}\nvoid relay_go(void) { conn_go(); }\n' >relay.c
	printf 'void txn_up(void);\nvoid conn_go(void) { txn_up(); }\n' >relay_conn.c
	printf 'void relay_go(void);\nint main(void) { relay_go(); return 0; }\n' >main.c
	${CC:-cc} -c relay.c relay_conn.c main.c &&
		ar rc librelay.a relay.o relay_conn.o &&
		${CC:-cc} -o smrelayctl main.o librelay.a &&
		${CC:-cc} -o smrelayd main.o librelay.a
) >"$work/fake.log" 2>&1 || { fail "hand-made objects built"; cat "$work/fake.log"; }
expect_caught "caught: two objects calling each other" \
	'librelay.a/relay.o and librelay.a/relay_conn.o call each other' \
	"$PY" "$srcdir/tests/layout/symbols.py" "$fake"
expect_caught "caught: relay client code in smrelayctl" \
	'smrelayctl contains relay_go \(from librelay.a/relay.o\)' \
	"$PY" "$srcdir/tests/layout/symbols.py" "$fake"

echo "t_layout: $fails failure(s)"
[ $fails -eq 0 ]
