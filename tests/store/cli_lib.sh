# shellcheck shell=sh
# tests/store/cli_lib.sh: the prelude of the smrelayctl CLI tests (t_cli.sh,
# t_policy_cli.sh), sourced after they set CLI_NAME (the test's name) and
# srcdir.  Skips without openssl; T, a work directory removed on exit, with
# T/smrelay.conf meant for our config; `PASS name` / `FAIL name: reason`
# lines counted in FAILS; cli_done exits 1 if any failed.
BUILD=${abs_top_builddir:-$PWD}
CTL=${SMRELAYCTL:-$BUILD/smrelayctl}
if ! command -v openssl >/dev/null 2>&1; then
	echo "SKIP $CLI_NAME: no openssl program"
	exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/smrelay-$CLI_NAME.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
FAILS=0
OUT= ERR= RC=

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; FAILS=$((FAILS + 1)); }

# ctl ARGS...: run smrelayctl on our config; sets OUT, ERR and RC.
ctl() {
	"$CTL" -c "$T/smrelay.conf" "$@" >"$T/out" 2>"$T/err"
	RC=$?
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}

# sanitizer NAME: a sanitizer report on the last stderr is a failure.
sanitizer() {
	if grep -q 'Sanitizer\|runtime error:' "$T/err"; then
		fail "$1" "$(grep -m1 'SUMMARY\|runtime error:' "$T/err")"
		return 1
	fi
	return 0
}

# expect_ok NAME ARGS...: exit 0 and no sanitizer report.
expect_ok() {
	name=$1; shift
	ctl "$@"
	sanitizer "$name" || return 1
	if [ "$RC" -ne 0 ]; then
		fail "$name" "exit $RC: $(echo "$ERR" | head -3 | tr '\n' ' ')"
		return 1
	fi
	return 0
}

# expect_err NAME PATTERN ARGS...: non-zero exit, PATTERN on stderr.
expect_err() {
	name=$1; pat=$2; shift 2
	ctl "$@"
	if ! sanitizer "$name"; then
		:
	elif [ "$RC" -eq 0 ]; then
		fail "$name" "exit 0, expected an error ($pat)"
	elif ! grep -q -- "$pat" "$T/err"; then
		fail "$name" "stderr lacks '$pat': $(head -3 "$T/err" | tr '\n' ' ')"
	else
		pass "$name"
	fi
}

# out_has NAME PATTERN: the last stdout matches PATTERN.
out_has() {
	if grep -q -- "$2" "$T/out"; then
		pass "$1"
	else
		fail "$1" "stdout lacks '$2': $(tr '\n' '|' <"$T/out" | head -c 600)"
	fi
}

# out_lacks NAME PATTERN: the last stdout does not match PATTERN.
out_lacks() {
	if grep -q -- "$2" "$T/out"; then
		fail "$1" "stdout has '$2': $(grep -m1 -- "$2" "$T/out")"
	else
		pass "$1"
	fi
}

# cli_done: the summary and the exit status.
cli_done() {
	[ "$FAILS" -eq 0 ] || { echo "$CLI_NAME: $FAILS failure(s)"; exit 1; }
	exit 0
}
