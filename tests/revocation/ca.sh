# tests/revocation/ca.sh: sourced by the revocation tests after they set
# srcdir and T (their name): a work directory W (the current directory from
# here on, removed on exit with every server whose pid is in $pids), the
# PASS/FAIL reporting of tests/smime/common.sh, helpers to wait for servers
# without fixed sleeps, to check a `crl fetch` and to start smrelayd, and
# the CA hierarchy of tests/revocation/pki.sh.
CTL=${SMRELAYCTL:-$PWD/smrelayctl}
DAEMON=${SMRELAYD:-$PWD/smrelayd}
W=$(mktemp -d "${TMPDIR:-/tmp}/$T.XXXXXX") || exit 99
# smrelayd's network process runs as `user` (smrelay): it must reach data_dir
chmod 755 "$W"
G=$W/gnupg
pids=""
. "$srcdir/tests/smime/common.sh"
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; cleanup' EXIT

command -v openssl >/dev/null 2>&1 || { echo "SKIP: no openssl"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
[ -x "$CTL" ] || { echo "FAIL: smrelayctl not built at $CTL"; exit 1; }
cd "$W" || exit 1
O="openssl"

# shellcheck source=tests/lib/free_port.sh
. "$srcdir/tests/lib/free_port.sh"
# wait_port PORT: until something accepts on it (at most 10 s).
wait_port() {
	python3 - "$1" <<'PY'
import socket, sys, time
end = time.time() + 10
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}
# wait_log FILE TEXT: until FILE has TEXT (at most 10 s).
wait_log() {
	python3 - "$1" "$2" <<'PY'
import sys, time
end = time.time() + 10
while time.time() < end:
    try:
        if sys.argv[2] in open(sys.argv[1]).read():
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(1)
PY
}
# fetch_bounded OUT MAX WHAT NOTE CMD...: CMD, a crl fetch (its stdout to
# OUT, its exit status in $rc), timed: "crl fetch: exit 1 when WHAT
# failed" and, within MAX seconds, "crl fetch: bounded (<N>sNOTE)".
fetch_bounded() {
	_out=$1 _max=$2 _what=$3 _note=$4
	shift 4
	_start=$(date +%s)
	"$@" > "$_out"
	rc=$?
	_took=$(( $(date +%s) - _start ))
	[ $rc -eq 1 ] && pass "crl fetch: exit 1 when $_what failed" ||
		fail "crl fetch: exit 1 when $_what failed" "exit $rc"
	[ "$_took" -le "$_max" ] && pass "crl fetch: bounded (${_took}s$_note)" ||
		fail "crl fetch: bounded" "${_took}s"
}
# expect_err ERR NAME URL-TAIL PATTERN: the fetch of that URL failed, saying
# so in ERR (the fetch's stderr)
expect_err() {
	grep -F "$3: " "$1" | grep -q -E "$4" && pass "crl fetch, $2: $4" ||
		fail "crl fetch, $2: /$4/" "$(grep -F "$3" "$1")"
}
# daemon_greets CONF WHAT: smrelayd started on CONF, listening on $LPORT
# (its log d.log, its pid in $dpid and $pids); "smrelayd greets WHAT" when
# its SMTP greeting comes (at once, whatever it is fetching meanwhile).
daemon_greets() {
	"$DAEMON" -c "$1" -f > d.log 2>&1 &
	dpid=$!
	pids="$pids $dpid"
	wait_port "$LPORT" || fail "smrelayd did not start" "$(tail -n 3 d.log | tr '\n' ' ')"
	_banner=$(python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),3); s.settimeout(3); print(s.recv(200).decode(errors="replace").strip())' "$LPORT" 2>&1)
	case "$_banner" in
	220*) pass "smrelayd greets $2" ;;
	*) fail "smrelayd greets $2" "$_banner" ;;
	esac
}

. "$srcdir/tests/revocation/pki.sh"
