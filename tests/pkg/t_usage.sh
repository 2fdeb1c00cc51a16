#!/bin/sh
# t_usage.sh: what smrelayd and smrelayctl say about themselves: --version
# (configure's version), -h on stdout with exit 0, the default
# configuration path, a usage error with exit 2, and smrelayctl with an
# object but no verb, or an unknown verb, listing that object's verbs.
set -u

BUILD=${abs_top_builddir:-$PWD}
D=${SMRELAYD:-$BUILD/smrelayd}
CTL=${SMRELAYCTL:-$BUILD/smrelayctl}
FAILS=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; FAILS=$((FAILS + 1)); }

T=$(mktemp -d "${TMPDIR:-/tmp}/smrelay-t_usage.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT

# run NAME WANT-RC PROG ARGS...: the exit status; stdout in T/out, stderr
# in T/err.
run() {
	name=$1 want=$2
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ $rc -ne "$want" ]; then
		fail "$name" "exit $rc, expected $want: $(head -n 2 "$T/err")"
		return 1
	fi
	return 0
}

# has NAME FILE REGEX: FILE has a line matching REGEX.
has() {
	if grep -q -e "$3" "$T/$2"; then pass "$1"; else
		fail "$1" "no \"$3\" in $2: $(head -n 3 "$T/$2")"; fi
}

version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' \
    "$BUILD/autoconfig.h" 2>/dev/null)
[ -n "$version" ] || version='[0-9][0-9.]*'

for p in smrelayd smrelayctl; do
	if [ $p = smrelayd ]; then prog=$D; else prog=$CTL; fi
	run "$p --version" 0 "$prog" --version &&
	    has "$p --version" out "^$p $version\$"
	run "$p -h" 0 "$prog" -h && has "$p -h" out "^usage: $p"
	run "$p --help" 0 "$prog" --help && has "$p --help" out "^usage: $p"
	run "$p -h default config" 0 "$prog" -h &&
	    has "$p -h default config" out "^default config: /.*/smrelay/smrelay.conf\$"
	run "$p bad option" 2 "$prog" --no-such-option &&
	    has "$p bad option" err "^usage: $p"
done

# Both name the same default configuration.
"$D" -h >"$T/d" 2>&1
"$CTL" -h >"$T/c" 2>&1
if [ "$(grep '^default config' "$T/d")" = "$(grep '^default config' "$T/c")" ]; then
	pass "one default config"
else
	fail "one default config" "$(grep '^default config' "$T/d" "$T/c")"
fi

# smrelayd without -c reads the default file: its name is in the error.
conf=$(sed -n 's/^default config: //p' "$T/d")
if [ ! -e "$conf" ]; then
	run "smrelayd -n default path" 1 "$D" -n &&
	    has "smrelayd -n default path" err "$conf"
fi

run "smrelayctl alone" 2 "$CTL" && has "smrelayctl alone" err "^usage: smrelayctl"

run "policy without verb" 2 "$CTL" policy &&
    has "policy without verb" err "policy: a verb is needed"
has "policy verbs: add" err "smrelayctl policy add "
has "policy verbs: test" err "smrelayctl policy test "
if grep -q "smrelayctl queue" "$T/err"; then
	fail "policy verbs only" "other objects listed"
else
	pass "policy verbs only"
fi

run "policy unknown verb" 2 "$CTL" policy frobnicate &&
    has "policy unknown verb" err 'unknown verb "frobnicate"'
has "policy unknown verb lists" err "smrelayctl policy list"

run "unknown object" 2 "$CTL" frobnicate &&
    has "unknown object" err 'unknown command "frobnicate"'
has "unknown object lists all" err "smrelayctl queue list"

run "queue without verb" 2 "$CTL" queue && has "queue verbs" err "smrelayctl queue flush"

[ $FAILS -eq 0 ]
