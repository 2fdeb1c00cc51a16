#!/bin/sh
# t_man.sh: the man pages made by make (man/*.[58]): mandoc -T lint finds
# nothing at warning level or above, each renders (mandoc -T utf8, and man -l
# with groff when man is installed) with its NAME and no unsubstituted
# @VARIABLE@.  Skips without mandoc (Debian package mandoc).
set -u

BUILD=${abs_top_builddir:-$PWD}
FAILS=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; FAILS=$((FAILS + 1)); }

if ! command -v mandoc >/dev/null 2>&1; then
	echo "SKIP t_man: no mandoc"
	exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/smrelay-t_man.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
BS=$(printf '\b')

for page in smrelayd.8 smrelayctl.8 smrelay.conf.5; do
	f=$BUILD/man/$page
	name=${page%.*}
	if [ ! -f "$f" ]; then
		fail "$page" "$f missing (make builds it)"
		continue
	fi
	if mandoc -T lint -W warning "$f" >"$T/lint" 2>&1; then
		pass "$page lint"
	else
		fail "$page lint" "$(head -n 5 "$T/lint")"
	fi
	# without the overstriking of bold and underline
	if mandoc -T utf8 "$f" 2>"$T/err" | sed "s/.$BS//g" >"$T/out" &&
	    ! grep -q . "$T/err" && grep -q "^NAME" "$T/out" &&
	    grep -q "$name" "$T/out"; then
		pass "$page renders"
	else
		fail "$page renders" "$(head -n 3 "$T/err")"
	fi
	if grep -n '@[A-Za-z_]*@' "$f" >"$T/subst"; then
		fail "$page substituted" "$(head -n 3 "$T/subst")"
	else
		pass "$page substituted"
	fi
	if command -v man >/dev/null 2>&1 && command -v groff >/dev/null 2>&1; then
		# groff's warnings (a long path that cannot be broken) are
		# mandoc lint's business; errors are not
		if MANWIDTH=80 man -l "$f" >"$T/man" 2>"$T/manerr" &&
		    grep -q "$name" "$T/man" &&
		    ! grep -v ': warning' "$T/manerr" | grep -q .; then
			pass "$page man -l"
		else
			fail "$page man -l" "$(head -n 3 "$T/manerr")"
		fi
	fi
done

[ $FAILS -eq 0 ]
