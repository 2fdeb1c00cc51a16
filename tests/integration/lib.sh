# shellcheck shell=bash
# tests/integration/lib.sh: harness for the end-to-end tests of smrelayd.
#
# Each t_*.sh script sources this file, defines one function per case and
# calls `run_case NAME FUNCTION` for each, then `it_finish`.  A case function
# returns 0 on success; on failure it calls `fail_because "reason"` (the
# assert_* helpers do) and returns non-zero.  Every case prints exactly one
# line: `PASS name`, `FAIL name: reason` or `SKIP name: reason`.  The script
# exits 0 when nothing failed, 1 otherwise (77 when everything was skipped),
# which is what automake's test driver counts.
#
# Environment:
#   abs_top_builddir  where smrelayd and smrelayctl are (default: $PWD, which
#                     is the top build directory when run by `make check`)
#   SMRELAYD, SMRELAYCTL  override the binaries
#   IT_ONLY           a regular expression: run only the matching cases
#   IT_KEEP=1         keep the temporary directory (printed at the end)
#   IT_SINK=py        capture with tests/integration/py/nexthop.py instead of
#                     `smrelayctl sink` (to tell sink bugs from relay bugs)
#   IT_TIMEOUT        seconds before the whole script is killed (default 900)
#
# Only loopback addresses are used; every port is picked free at run time so
# scripts can run in parallel (make -j2 check).  All background processes are
# tracked and killed by traps.

set -u
# shellcheck disable=SC2119,SC2120,SC2034

IT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IT_PY=$IT_DIR/py
IT_BUILD=${abs_top_builddir:-$PWD}
SMRELAYD=${SMRELAYD:-$IT_BUILD/smrelayd}
SMRELAYCTL=${SMRELAYCTL:-$IT_BUILD/smrelayctl}
PYTHON=${PYTHON:-python3}
export PYTHONDONTWRITEBYTECODE=1

IT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/smrelay-it.XXXXXX") || exit 99
chmod 755 "$IT_TMP"        # smtp-sink drops privileges to nobody
IT_SCRIPT=$(basename "$0" .sh)
IT_PIDS=()
IT_PASSES=0
IT_FAILS=0
IT_SKIPS=0
IT_FAILED_NAMES=()
IT_REASON=""
CASE=""
CASE_DIR=$IT_TMP
SMRELAYD_PID=""
SINK_PID=""
IT_WATCHDOG=""

# ---------------------------------------------------------------- plumbing

# Kill every tracked background process: TERM, then KILL after 5 seconds.
it_kill_all() {
	local pid n
	for pid in "${IT_PIDS[@]+"${IT_PIDS[@]}"}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${IT_PIDS[@]+"${IT_PIDS[@]}"}"; do
		n=0
		while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	IT_PIDS=()
	SMRELAYD_PID=""
	SINK_PID=""
}

# EXIT trap: stop everything, remove the temporary directory.
it_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$IT_WATCHDOG" ] && kill "$IT_WATCHDOG" 2>/dev/null
	it_kill_all
	if [ "${IT_KEEP:-0}" = 1 ]; then
		echo "# kept $IT_TMP"
	else
		rm -rf "$IT_TMP"
	fi
	exit $rc
}
trap it_cleanup EXIT
trap 'echo "FAIL ${CASE:-setup}: interrupted (signal, or IT_TIMEOUT=${IT_TIMEOUT:-900} s passed)"; it_show_logs; exit 99' INT TERM

# Kill the script (and so, through the trap, everything) after IT_TIMEOUT.
# (Its stdio is closed so that it never holds a pipe of the caller open.)
(
	exec </dev/null >/dev/null 2>&1
	sleep "${IT_TIMEOUT:-900}" &
	s=$!
	trap 'kill $s; exit 0' TERM
	# TERM the script first (its trap runs as soon as the foreground child
	# is gone), then its children, so a hung command cannot hold it.
	wait $s && kill -TERM $$ && pkill -TERM -P $$
) &
IT_WATCHDOG=$!

# bg NAME CMD...: start CMD in the background, output in $CASE_DIR/NAME.log,
# pid in BG_PID, remembered for cleanup.
bg() {
	local name=$1
	shift
	"$@" >"$CASE_DIR/$name.log" 2>&1 &
	BG_PID=$!
	IT_PIDS+=("$BG_PID")
}

# Forget a process we stopped ourselves.
untrack() {
	local pid keep=()
	for pid in "${IT_PIDS[@]+"${IT_PIDS[@]}"}"; do
		[ "$pid" = "$1" ] || keep+=("$pid")
	done
	IT_PIDS=("${keep[@]+"${keep[@]}"}")
}

fail_because() {
	IT_REASON=$*
	return 1
}

# run_case NAME FUNCTION: run one case and print its result line.
run_case() {
	local name=$1 fn=$2 rc
	if [ -n "${IT_ONLY:-}" ] && ! [[ $name =~ $IT_ONLY ]]; then
		return 0
	fi
	CASE=$name
	CASE_DIR=$IT_TMP/$name
	mkdir -p "$CASE_DIR"
	chmod 755 "$CASE_DIR"
	IT_REASON=""
	IT_SKIP_REASON=""
	echo "# ---- $name"
	"$fn"
	rc=$?
	if [ $rc -eq 0 ] && [ -n "$SMRELAYD_PID" ]; then
		# Every case ends with SIGTERM: it must exit 0 (sanitizer reports,
		# leaks included, make it exit non-zero).
		stop_smrelayd || rc=1
	fi
	if [ -n "$IT_SKIP_REASON" ]; then
		echo "SKIP $name: $IT_SKIP_REASON"
		IT_SKIPS=$((IT_SKIPS + 1))
	elif [ $rc -eq 0 ]; then
		echo "PASS $name"
		IT_PASSES=$((IT_PASSES + 1))
	else
		echo "FAIL $name: ${IT_REASON:-exit status $rc}"
		IT_FAILS=$((IT_FAILS + 1))
		IT_FAILED_NAMES+=("$name")
		it_show_logs
	fi
	it_kill_all
	CASE_DIR=$IT_TMP
	return 0
}

# skip REASON: mark the current case skipped (return 0 after calling it).
skip() {
	IT_SKIP_REASON=$*
}

# Print the logs of the current case, for the .log file of a failed test.
it_show_logs() {
	local f
	for f in "$CASE_DIR"/*.log "$CASE_DIR"/*.events; do
		[ -s "$f" ] || continue
		echo "#   --- $(basename "$f") (last 40 lines)"
		tail -n 40 "$f" | sed 's/^/#   /'
	done
}

# it_finish: summary line and exit status for automake.
it_finish() {
	echo "# $IT_SCRIPT: $IT_PASSES passed, $IT_FAILS failed, $IT_SKIPS skipped"
	[ $IT_FAILS -gt 0 ] && echo "# failed: ${IT_FAILED_NAMES[*]}"
	if [ $IT_FAILS -gt 0 ]; then
		exit 1
	fi
	if [ $IT_PASSES -eq 0 ] && [ $IT_SKIPS -gt 0 ]; then
		exit 77
	fi
	exit 0
}

# need_bins: the binaries must exist (a missing one is a hard error: 99).
need_bins() {
	local b
	for b in "$SMRELAYD" "$SMRELAYCTL"; do
		if [ ! -x "$b" ]; then
			echo "ERROR: $b not found (set abs_top_builddir or run from the build directory)"
			exit 99
		fi
	done
}

# have PROGRAM: true when PROGRAM is installed.
have() {
	command -v "$1" >/dev/null 2>&1
}

# True when smrelayd was built with AddressSanitizer (RSS limits are
# meaningless there: shadow memory and the quarantine).
smrelayd_has_asan() {
	grep -q -a -m1 '__asan_init' "$SMRELAYD" 2>/dev/null
}

# health_is CODE: GET /healthz of the smrelayd with metrics_listen on
# 127.0.0.1:$MPORT answers CODE; HEALTH is the answer (status line first).
health_is() {
	local out
	out=$("$PYTHON" "$IT_DIR/../metrics/httpc.py" get "http://127.0.0.1:$MPORT/healthz") || return 1
	HEALTH=$out
	[ "${out%%$'\n'*}" = "$1" ]
}

# stopped_then_replaced PID REASON REPLACED LOGLINE [POKE]: kill -STOP
# PID (a process of smrelayd that stops: a wedged loop, a key process that
# hangs), run POKE if given (what makes it noticed), then /healthz (on
# $MPORT) must answer 503 with REASON, `REPLACED PID` become true within
# 60 s (the parent killed and replaced it), the log show LOGLINE (an ERE)
# and /healthz answer 200 again.
stopped_then_replaced() {
	local pid=$1 reason=$2 replaced=$3 logline=$4 poke=${5:-}
	kill -STOP "$pid"
	if [ -n "$poke" ]; then
		"$poke" || { kill -CONT "$pid"; return 1; }
	fi
	wait_for 15 health_is 503 ||
		{ kill -CONT "$pid"; fail_because "/healthz not 503 with $pid stopped: $HEALTH"; return 1; }
	[[ $HEALTH == *"$reason"* ]] ||
		{ kill -CONT "$pid"; fail_because "503 without '$reason': $HEALTH"; return 1; }
	echo "# /healthz: ${HEALTH//$'\n'/ }"
	wait_for 60 "$replaced" "$pid" ||
		{ kill -CONT "$pid"; fail_because "$pid (stopped) was not replaced"; return 1; }
	grep -q -E "$logline" "$CASE_DIR/smrelayd.log" ||
		{ fail_because "no '$logline' in the log"; return 1; }
	wait_for 15 health_is 200 || { fail_because "/healthz not 200 after the restart: $HEALTH"; return 1; }
}

# ---------------------------------------------------------------- waiting

# free_port: print a TCP port that is free on 127.0.0.1 right now.
# free_port: see tests/lib/free_port.sh.
# shellcheck source=tests/lib/free_port.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/free_port.sh"

# is_listening PORT: some socket listens on PORT (IPv4 or IPv6).
is_listening() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

port_free() { ! is_listening "$1"; }

# smrelayd_child PID NAME: the pid of smrelayd PID's child process NAME
# (smrelayd-net: sessions and S/MIME work; smrelayd-keyd: the keys).
smrelayd_child() {
	local f st
	for f in /proc/[0-9]*/stat; do
		st=$(cat "$f" 2>/dev/null) || continue
		# pid (comm) state ppid ...
		set -- "$1" "$2" "$st"
		[[ $3 =~ ^([0-9]+)\ \((.*)\)\ .\ ([0-9]+)\  ]] || continue
		if [ "${BASH_REMATCH[2]}" = "$2" ] && [ "${BASH_REMATCH[3]}" = "$1" ]; then
			echo "${BASH_REMATCH[1]}"
			return 0
		fi
	done
	return 1
}

# wait_listen PORT PID [SECONDS]: wait until PORT listens; fail if PID dies.
wait_listen() {
	local port=$1 pid=$2 secs=${3:-15} n=0
	while ! is_listening "$port"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		n=$((n + 1))
		[ $n -gt $((secs * 10)) ] && return 1
		sleep 0.1
	done
	return 0
}

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
	local secs=$1 n=0
	shift
	until "$@"; do
		n=$((n + 1))
		[ $n -gt $((secs * 10)) ] && return 1
		sleep 0.1
	done
	return 0
}

# ---------------------------------------------------------------- certificates

# it_certs: a test CA and certificates in $IT_TMP/pki (made once per script):
#   ca.pem/ca.key      the test CA
#   srv.pem/srv.key    CA-signed, names localhost, relay.test, 127.0.0.1, ::1
#   wrong.pem/.key     CA-signed, for wrong.example only
#   self.pem/.key      self-signed, for localhost
PKI=$IT_TMP/pki
it_certs() {
	[ -s "$PKI/self.pem" ] && return 0
	mkdir -p "$PKI"
	local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
	(
		cd "$PKI" || exit 1
		openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 30 \
			-subj "/CN=smrelay test CA" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" || exit 1
		leaf() {   # leaf NAME CN SAN
			printf '%s\n' "basicConstraints=CA:FALSE" \
				"keyUsage=critical,digitalSignature,keyEncipherment" \
				"extendedKeyUsage=serverAuth" "subjectAltName=$3" >"$1.ext"
			openssl req -new "${ec[@]}" -keyout "$1.key" -out "$1.csr" \
				-subj "/CN=$2" || exit 1
			openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key \
				-CAcreateserial -days 30 -extfile "$1.ext" -out "$1.pem" || exit 1
		}
		leaf srv localhost "DNS:localhost,DNS:relay.test,IP:127.0.0.1,IP:::1"
		leaf wrong wrong.example "DNS:wrong.example"
		openssl req -x509 "${ec[@]}" -keyout self.key -out self.pem -days 30 \
			-subj "/CN=localhost" \
			-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" || exit 1
	) >"$IT_TMP/pki.log" 2>&1 || { cat "$IT_TMP/pki.log"; return 1; }
	chmod 644 "$PKI"/*
}

# ---------------------------------------------------------------- smrelayd

# write_conf FILE [KEY=VALUE | KEY= | listen+=VALUE]...: a smrelayd config.
# Defaults: listen on $PORT with STARTTLS, hostname relay.test, relay to
# 127.0.0.1:$NH_PORT without TLS, data_dir in the case directory, debug logs,
# the CA-signed server certificate.  KEY= removes a key, listen+= adds a
# listener.  The strings $PORT, $NH_PORT and $PKI in values are replaced
# (so callers can write listen='127.0.0.1:$PORT tls=implicit' before PORT is
# picked).
write_conf() {
	local file=$1 kv k v i
	shift
	local keys=(listen hostname tls_cert_file tls_key_file relay relay_tls data_dir log_level)
	local vals=("127.0.0.1:$PORT tls=starttls" relay.test "$PKI/srv.pem" "$PKI/srv.key"
		"127.0.0.1:${NH_PORT:-1}" none "$CASE_DIR/data" debug)
	local extra_listen=()
	for kv in "$@"; do
		k=${kv%%=*}
		v=${kv#*=}
		v=${v//\$PORT/$PORT}
		v=${v//\$NH_PORT/${NH_PORT:-1}}
		v=${v//\$PKI/$PKI}
		if [ "$k" = "listen+" ]; then
			extra_listen+=("$v")
			continue
		fi
		for i in "${!keys[@]}"; do
			if [ "${keys[$i]}" = "$k" ]; then
				vals[$i]=$v
				continue 2
			fi
		done
		keys+=("$k")
		vals+=("$v")
	done
	{
		echo "# generated by $IT_SCRIPT for case $CASE"
		for i in "${!keys[@]}"; do
			[ -n "${vals[$i]}" ] && echo "${keys[$i]} = ${vals[$i]}"
			if [ "${keys[$i]}" = listen ]; then
				for v in "${extra_listen[@]+"${extra_listen[@]}"}"; do
					echo "listen = $v"
				done
			fi
		done
	} >"$file"
}

# start_relay [write_conf args]: pick PORT, write $CASE_DIR/smrelayd.conf,
# start `smrelayd -c CONF -f -v` and wait for it to listen on PORT.
# Needs NH_PORT (start a sink first).  Sets SMRELAYD_PID and CONF.
start_relay() {
	local try
	it_certs || return 1
	CONF=$CASE_DIR/smrelayd.conf
	mkdir -p "$CASE_DIR/data"
	# free_port's port may be taken by a test running beside this one
	# before smrelayd binds it: then once more with another
	for try in 1 2 3; do
		PORT=$(free_port)
		write_conf "$CONF" "$@"
		start_smrelayd "$CONF" "$PORT" && return 0
		grep -q 'Address already in use' "$CASE_DIR/smrelayd.log" ||
			return 1
		echo "# port $PORT taken meanwhile: another one (try $try)"
	done
	return 1
}

# start_smrelayd CONF PORT...: start the daemon on an existing config.
start_smrelayd() {
	local conf=$1 p
	shift
	bg smrelayd "$SMRELAYD" -c "$conf" -f -v
	SMRELAYD_PID=$BG_PID
	for p in "$@"; do
		if ! wait_listen "$p" "$SMRELAYD_PID" 15; then
			if kill -0 "$SMRELAYD_PID" 2>/dev/null; then
				fail_because "smrelayd not listening on 127.0.0.1:$p after 15 s"
			else
				wait "$SMRELAYD_PID"
				fail_because "smrelayd exited (status $?) before listening on port $p: $(tail -n 3 "$CASE_DIR/smrelayd.log" | tr '\n' ' ')"
			fi
			return 1
		fi
	done
}

# stop_smrelayd: SIGTERM; it must exit 0 within 20 s.
stop_smrelayd() {
	local pid=$SMRELAYD_PID n=0 rc
	[ -n "$pid" ] || return 0
	SMRELAYD_PID=""
	kill -TERM "$pid" 2>/dev/null
	while kill -0 "$pid" 2>/dev/null; do
		n=$((n + 1))
		if [ $n -gt 200 ]; then
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			untrack "$pid"
			fail_because "smrelayd did not exit within 20 s of SIGTERM"
			return 1
		fi
		sleep 0.1
	done
	wait "$pid"
	rc=$?
	untrack "$pid"
	if [ $rc -ne 0 ]; then
		fail_because "smrelayd exited with status $rc after SIGTERM (sanitizer report or crash? see smrelayd.log)"
		return 1
	fi
	return 0
}

# rss_kb PID [FIELD]: VmRSS (or VmHWM, the peak) of PID in KiB.
rss_kb() {
	awk -v f="${2:-VmRSS}:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null
}

# ---------------------------------------------------------------- next hops

# start_sink [--tls-cert F --tls-key F] [--implicit-tls]: the capture server
# (`smrelayctl sink`, or nexthop.py with IT_SINK=py) on NH_PORT, Maildir in
# SINK_DIR.
start_sink() {
	NH_PORT=$(free_port)
	SINK_DIR=$CASE_DIR/maildir
	mkdir -p "$SINK_DIR/new" "$SINK_DIR/cur" "$SINK_DIR/tmp"
	if [ "${IT_SINK:-ctl}" = py ]; then
		local a=() cert="" key=""
		while [ $# -gt 0 ]; do
			case $1 in
			--tls-cert) cert=$2; shift ;;
			--tls-key) key=$2; shift ;;
			esac
			shift
		done
		[ -n "$cert" ] && a=(--tls-cert "$cert" --tls-key "$key")
		bg sink "$PYTHON" "$IT_PY/nexthop.py" --listen "127.0.0.1:$NH_PORT" \
			--maildir "$SINK_DIR" --events "$CASE_DIR/nexthop.events" "${a[@]+"${a[@]}"}"
	else
		bg sink "$SMRELAYCTL" sink --listen "127.0.0.1:$NH_PORT" --maildir "$SINK_DIR" "$@"
	fi
	SINK_PID=$BG_PID
	wait_listen "$NH_PORT" "$SINK_PID" 15 ||
		fail_because "sink did not start: $(tail -n 3 "$CASE_DIR/sink.log" | tr '\n' ' ')"
}

# start_nexthop [nexthop.py options]: the scriptable next hop on NH_PORT
# (127.0.0.1, and ::1 when --dual is the first option), Maildir SINK_DIR,
# events in NH_EVENTS.
start_nexthop() {
	local listen=(--listen "127.0.0.1:$(free_port)")
	NH_PORT=${listen[1]##*:}
	if [ "${1:-}" = --dual ]; then
		shift
		[ -e /proc/net/if_inet6 ] && grep -q '^0*1 ' /proc/net/if_inet6 &&
			listen+=(--listen "[::1]:$NH_PORT")
	fi
	SINK_DIR=$CASE_DIR/maildir
	NH_EVENTS=$CASE_DIR/nexthop.events
	: >"$NH_EVENTS"
	bg nexthop "$PYTHON" "$IT_PY/nexthop.py" "${listen[@]}" --maildir "$SINK_DIR" \
		--events "$NH_EVENTS" "$@"
	SINK_PID=$BG_PID
	wait_listen "$NH_PORT" "$SINK_PID" 15 ||
		fail_because "nexthop.py did not start: $(tail -n 3 "$CASE_DIR/nexthop.log" | tr '\n' ' ')"
}

# start_smtp_sink [smtp-sink options]: Postfix's smtp-sink on NH_PORT, each
# transaction dumped as one file under $SINK_DIR (see `man smtp-sink`, -d).
start_smtp_sink() {
	have smtp-sink || { fail_because "smtp-sink not installed"; return 1; }
	NH_PORT=$(free_port)
	SINK_DIR=$CASE_DIR/dumps
	mkdir -p "$SINK_DIR"
	chmod 777 "$SINK_DIR"
	local user=()
	[ "$(id -u)" = 0 ] && user=(-u nobody)
	bg smtp-sink smtp-sink "${user[@]+"${user[@]}"}" -d "$SINK_DIR/%H%M%S." "$@" "127.0.0.1:$NH_PORT" 100
	SINK_PID=$BG_PID
	wait_listen "$NH_PORT" "$SINK_PID" 15 ||
		fail_because "smtp-sink did not start: $(tail -n 3 "$CASE_DIR/smtp-sink.log" | tr '\n' ' ')"
}

# Number of message files in a Maildir (new/ and cur/) or a dump directory.
sink_count() {
	local d=${1:-$SINK_DIR}
	if [ -d "$d/new" ]; then
		find "$d/new" "$d/cur" -type f 2>/dev/null | wc -l
	else
		find "$d" -type f 2>/dev/null | wc -l
	fi
}

sink_files() {
	local d=${1:-$SINK_DIR}
	if [ -d "$d/new" ]; then
		find "$d/new" "$d/cur" -type f 2>/dev/null | sort
	else
		find "$d" -type f 2>/dev/null | sort
	fi
}

# wait_delivered N [SECONDS]: wait until the sink holds at least N messages.
wait_delivered() {
	local n=$1 secs=${2:-20}
	wait_for "$secs" _count_ge "$n" ||
		fail_because "expected $n message(s) at the next hop, found $(sink_count)"
}
_count_ge() { [ "$(sink_count)" -ge "$1" ]; }

# sink_file_for RCPT: the (first) captured file delivered to RCPT.
sink_file_for() {
	local f cr=$'\r'
	for f in $(sink_files); do
		if grep -q -i -E "^(Delivered-To: <?|X-Rcpt-Args: <)$1>?([ $cr]|\$)" "$f"; then
			echo "$f"
			return 0
		fi
	done
	return 1
}

# ---------------------------------------------------------------- clients

# chat [chat.py options] STEP...: a raw conversation with smrelayd on PORT.
# The transcript is appended to $CASE_DIR/chat.log; on failure the reason is
# the failed step.
CHAT_N=0
chat() {
	local opts=() out rc
	while [ $# -gt 0 ] && [[ $1 == --* ]]; do
		case $1 in
		--implicit-tls) opts+=("$1") ;;
		*) opts+=("$1" "$2"); shift ;;
		esac
		shift
	done
	CHAT_N=$((CHAT_N + 1))
	echo "== chat $CHAT_N" >>"$CASE_DIR/chat.log"
	out=$(timeout 300 "$PYTHON" "$IT_PY/chat.py" "${opts[@]+"${opts[@]}"}" \
		"${CHAT_HOST:-127.0.0.1}" "${CHAT_PORT:-$PORT}" "$@" 2>>"$CASE_DIR/chat.log")
	rc=$?
	[ $rc -eq 0 ] && return 0
	fail_because "chat $CHAT_N: ${out:-exit status $rc}"
	return 1
}

# swaks_send [swaks options]: send one message to smrelayd on PORT; the
# transcript goes to $CASE_DIR/swaks.N.log.  Fails on a non-zero exit.
SWAKS_N=0
swaks_send() {
	local rc
	have swaks || { fail_because "swaks not installed"; return 1; }
	SWAKS_N=$((SWAKS_N + 1))
	SWAKS_LOG=$CASE_DIR/swaks.$SWAKS_N.log
	timeout 120 swaks --server "127.0.0.1:$PORT" --helo client.test \
		--from sender@example.com "$@" >"$SWAKS_LOG" 2>&1
	rc=$?
	[ $rc -eq 0 ] && return 0
	fail_because "swaks $* exited $rc: $(grep -E '^ *(<~?\*\*|\*\*\*)' "$SWAKS_LOG" | tail -n 2 | tr '\n' ' ')"
	return 1
}

# swaks_expect_reject CLASS [swaks options]: the transaction must fail, with
# at least one CLASSxx reply (4 or 5) and no error reply of another class.
swaks_expect_reject() {
	local class=$1 rc errs
	shift
	have swaks || { fail_because "swaks not installed"; return 1; }
	SWAKS_N=$((SWAKS_N + 1))
	SWAKS_LOG=$CASE_DIR/swaks.$SWAKS_N.log
	timeout 120 swaks --server "127.0.0.1:$PORT" --helo client.test \
		--from sender@example.com "$@" >"$SWAKS_LOG" 2>&1
	rc=$?
	errs=$(grep -E '^ *<\*\* *[0-9]{3}' "$SWAKS_LOG" | tr '\n' ' ')
	if [ $rc -eq 0 ]; then
		fail_because "swaks $*: the message was accepted, expected a ${class}xx reply"
		return 1
	fi
	if ! grep -q -E "^ *<\\*\\* *${class}[0-9]{2}" "$SWAKS_LOG"; then
		fail_because "swaks $*: exit $rc without a ${class}xx reply (errors: ${errs:-none}; $(grep -E '^\*\*\*' "$SWAKS_LOG" | head -n 1))"
		return 1
	fi
	if grep -E '^ *<\*\* *[0-9]{3}' "$SWAKS_LOG" | grep -q -v -E "<\\*\\* *${class}"; then
		fail_because "swaks $*: expected only ${class}xx errors, got: $errs"
		return 1
	fi
	return 0
}

# swaks_expect_queued [swaks options]: the client gets 250 for a message
# the next hop could not take now: "queued as ID", and the spool has ID.
swaks_expect_queued() {
	swaks_send "$@" || return 1
	if ! grep -q -E '^ *<[-~] *250 .*queued as [0-9a-f]{16}' "$SWAKS_LOG"; then
		fail_because "swaks $*: accepted, but not queued: $(grep -E '^ *<[-~] *250 ' "$SWAKS_LOG" | tail -n 1)"
		return 1
	fi
	QUEUE_ID=$(grep -o -E 'queued as [0-9a-f]{16}' "$SWAKS_LOG" | tail -n 1 | cut -c11-)
	# every 250 names its queue ID: the spool must really have this one
	"$SMRELAYCTL" -c "$CONF" queue show "$QUEUE_ID" >/dev/null 2>&1 || {
		fail_because "swaks $*: replied 'queued as $QUEUE_ID', but the spool does not have it"
		return 1
	}
	return 0
}

# assert_queued RCPT [ERE]: smrelayctl queue list shows a message for RCPT
# still pending (and its last error matching ERE).
assert_queued() {
	local out
	out=$("$SMRELAYCTL" -c "$CONF" queue list 2>&1) ||
		{ fail_because "queue list failed: $out"; return 1; }
	if ! printf '%s\n' "$out" | awk -F '\t' -v r="$1" '{ n = split($8, a, ","); for (i = 1; i <= n; i++) if (a[i] == r) f = 1 } END { exit !f }'; then
		fail_because "queue list has nothing pending for $1: $out"
		return 1
	fi
	if [ -n "${2:-}" ] && ! printf '%s\n' "$out" | grep -F "$1" | grep -q -E "$2"; then
		fail_because "queue list entry for $1 does not match /$2/: $out"
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------- asserts

assert_eq() {   # assert_eq EXPECTED ACTUAL WHAT
	[ "$1" = "$2" ] || fail_because "$3: expected '$1', got '$2'"
}

assert_file_matches() {   # FILE ERE WHAT
	grep -q -E -- "$2" "$1" 2>/dev/null || fail_because "$3: /$2/ not found in $(basename "$1")"
}

assert_file_lacks() {   # FILE ERE WHAT
	! grep -q -E -- "$2" "$1" 2>/dev/null || fail_because "$3: /$2/ found in $(basename "$1")"
}

# assert_nothing_for RCPT [envelope]: no message at the next hop is for RCPT,
# no Received header names it, and (unless "envelope") no text mentions it.
assert_nothing_for() {
	local f
	if f=$(sink_file_for "$1"); then
		fail_because "a message for $1 reached the next hop ($(basename "$f"))"
		return 1
	fi
	if grep -r -q -i -E -- "^(Received|[[:space:]]).*for <$1>" "$SINK_DIR" 2>/dev/null; then
		fail_because "a Received header at the next hop names $1 (a recipient that was not relayed)"
		return 1
	fi
	if [ "${2:-}" != envelope ] && grep -r -q -i -F -- "$1" "$SINK_DIR" 2>/dev/null; then
		fail_because "'$1' appears in a message at the next hop"
		return 1
	fi
	return 0
}

# assert_sink_count N: exactly N messages at the next hop.
assert_sink_count() {
	local n
	n=$(sink_count)
	[ "$n" -eq "$1" ] || fail_because "expected $1 message(s) at the next hop, found $n"
}

# assert_delivered_to RCPT: a message for RCPT is at the next hop; sets MSG.
assert_delivered_to() {
	MSG=$(sink_file_for "$1") || fail_because "no message for $1 at the next hop ($(sink_count) message(s) there)"
}

# assert_header FILE NAME ERE: some NAME: header (unfolded) matches ERE.
assert_header() {
	"$PYTHON" "$IT_PY/mailfile.py" header "$1" "$2" | grep -q -E -- "$3" ||
		fail_because "no '$2:' header matching /$3/ in $(basename "$1"): $("$PYTHON" "$IT_PY/mailfile.py" header "$1" "$2" | head -n 3 | tr '\n' '|')"
}

# assert_body FILE SHA: the body of FILE hashes to SHA (see genmsg.py).
assert_body() {
	local got
	got=$("$PYTHON" "$IT_PY/mailfile.py" bodyhash "$1")
	[ "$got" = "$2" ] || fail_because "body of $(basename "$1") differs from what was sent (sha256 $got, want $2)"
}

# assert_rss_below PID KIB WHAT: peak RSS (VmHWM) below KIB; skipped (with a
# note) for ASan builds.
assert_rss_below() {
	local peak pid
	if smrelayd_has_asan; then
		echo "# $3: RSS not checked (AddressSanitizer build)"
		return 0
	fi
	# smrelayd's parent only supervises: the sessions live in smrelayd-net
	pid=$(smrelayd_child "$1" smrelayd-net) || pid=$1
	peak=$(rss_kb "$pid" VmHWM)
	echo "# $3: peak RSS ${peak:-?} KiB (limit $2 KiB)"
	[ -n "$peak" ] || { fail_because "$3: cannot read /proc/$1/status"; return 1; }
	[ "$peak" -lt "$2" ] || fail_because "$3: smrelayd peak RSS ${peak} KiB >= $2 KiB"
}

# gen_msg NAME [genmsg.py options]: write $CASE_DIR/NAME.wire; sets MSG_HASH.
gen_msg() {
	local name=$1
	shift
	MSG_WIRE=$CASE_DIR/$name.wire
	MSG_HASH=$("$PYTHON" "$IT_PY/genmsg.py" --wire "$MSG_WIRE" "$@")
}

# send_wire FROM RCPT... : one transaction on a fresh connection with the
# message in MSG_WIRE; expects 250 everywhere.
send_wire() {
	local from=$1 r steps=()
	shift
	steps=(expect:220 line:"EHLO client.test" expect:250 line:"MAIL FROM:<$from>" expect:250)
	for r in "$@"; do
		steps+=(line:"RCPT TO:<$r>" expect:250)
	done
	steps+=(line:DATA expect:354 sendfile:"$MSG_WIRE" expect:250 line:QUIT expect:221)
	chat "${steps[@]}"
}
