#!/bin/sh
# t_install.sh: make install into a DESTDIR puts the programs, the three man
# pages, the sample as smrelay.conf, the systemd unit (pointing at the
# installed smrelayd, the man pages and the README) and the docs in place;
# a second install keeps an edited smrelay.conf; make uninstall removes
# every file it installed except that edited configuration.
set -u

BUILD=${abs_top_builddir:-$PWD}
FAILS=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; FAILS=$((FAILS + 1)); }

T=$(mktemp -d "${TMPDIR:-/tmp}/smrelay-t_install.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
DEST=$T/dest

# The test runs under make check, whose command-line variables (TESTS=...)
# must not reach these makes.
minstall() {
	MAKEFLAGS= MFLAGS= make -s -C "$BUILD" "$@" DESTDIR="$DEST" >>"$T/make.out" 2>&1
}

if ! minstall install; then
	fail "make install" "$(tail -n 5 "$T/make.out")"
	exit 1
fi
pass "make install"
find "$DEST" -type f | sed "s|^$DEST||" | sort >"$T/files"

# one NAME PATTERN: exactly one installed file matches the path pattern.
one() {
	n=$(grep -c -e "$2" "$T/files")
	if [ "$n" -eq 1 ]; then pass "$1"; else
		fail "$1" "$n files match $2"; fi
}
one "sbin/smrelayd" '/sbin/smrelayd$'
one "sbin/smrelayctl" '/sbin/smrelayctl$'
one "smrelayd.8" '/man/man8/smrelayd\.8$'
one "smrelayctl.8" '/man/man8/smrelayctl\.8$'
one "smrelay.conf.5" '/man/man5/smrelay\.conf\.5$'
one "smrelay.conf" '/smrelay/smrelay\.conf$'
one "unit" '/lib/systemd/system/smrelayd\.service$'
for doc in README.md OPERATIONS.md ARCHITECTURE.md BENCHMARKS.md \
    smrelay.conf.sample; do
	one "doc $doc" "/doc/smrelay/$doc\$"
done

conf=$DEST$(grep '/smrelay/smrelay\.conf$' "$T/files")
unit=$DEST$(grep '/smrelayd\.service$' "$T/files")
sbin=$(grep '/sbin/smrelayd$' "$T/files")
readme=$(grep '/doc/smrelay/README\.md$' "$T/files")
if grep -q "^ExecStart=$sbin -c" "$unit" 2>/dev/null; then
	pass "unit ExecStart"
else
	fail "unit ExecStart" "$(grep '^ExecStart=' "$unit")"
fi
if grep -q '^Documentation=man:smrelayd(8)' "$unit" &&
    grep -q "^Documentation=file:$readme\$" "$unit"; then
	pass "unit Documentation"
else
	fail "unit Documentation" "$(grep '^Documentation' "$unit")"
fi
if grep -q '@[A-Za-z_]*@' "$unit"; then
	fail "unit substituted" "$(grep '@[A-Za-z_]*@' "$unit")"
else
	pass "unit substituted"
fi
# The installed smrelayd names the installed configuration as its default.
if "$BUILD/smrelayd" -h | grep -q "^default config: ${conf#"$DEST"}\$"; then
	pass "default config is the installed one"
else
	fail "default config is the installed one" "$("$BUILD/smrelayd" -h | tail -n 1)"
fi

echo "# edited" >>"$conf"
minstall install || fail "second make install" "$(tail -n 5 "$T/make.out")"
if tail -n 1 "$conf" | grep -q '^# edited$'; then
	pass "install keeps the configuration"
else
	fail "install keeps the configuration" "overwritten"
fi

if ! minstall uninstall; then
	fail "make uninstall" "$(tail -n 5 "$T/make.out")"
else
	left=$(find "$DEST" -type f | sed "s|^$DEST||")
	if [ "$left" = "${conf#"$DEST"}" ]; then
		pass "make uninstall"
	else
		fail "make uninstall" "left: $left"
	fi
fi

[ $FAILS -eq 0 ]
