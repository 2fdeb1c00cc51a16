#!/bin/bash
# bench/relay.sh: relay throughput and memory of smrelayd, on this machine, in
# one go (see docs/BENCHMARKS.md).
#
#   1. ceiling   smtp-source -s 20 -m M -l 4096 straight into smtp-sink
#   2. smrelayd  the same through smrelayd (relay_tls = none, no inbound TLS)
#   3. postfix   the same through the stock Postfix relay that
#                shared/peers/postfix-relay.sh sets up; Postfix queues, so the
#                clock stops when the last message reached smtp-sink
#   4. memory    RSS growth per idle inbound connection (IDLE_CONNS of them),
#                and RSS before/after a MEM_M-message run (should stay flat)
#
# Needs root (Postfix, ulimit -n), smtp-source/smtp-sink (postfix package),
# python3.  Environment: M (default 20000), SESSIONS (20), SIZE (4096),
# MEM_M (100000), IDLE_CONNS (2000), SMRELAYD (default: build in build-bench/
# with the default -O2), SKIP_POSTFIX=1, ports SINK_PORT (2700),
# RELAY_PORT (2601), POSTFIX_PORT (2600).  The default run takes a few
# minutes; everything is on 127.0.0.1.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
M=${M:-20000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
MEM_M=${MEM_M:-100000}
IDLE_CONNS=${IDLE_CONNS:-2000}
SINK_PORT=${SINK_PORT:-2700}
RELAY_PORT=${RELAY_PORT:-2601}
POSTFIX_PORT=${POSTFIX_PORT:-2600}
PEER_SCRIPT=${PEER_SCRIPT:-$root/../shared/peers/postfix-relay.sh}
HOLDCONNS=$root/tests/integration/py/holdconns.py
work=$(mktemp -d /tmp/smrelay-bench.XXXXXX)
chmod 755 "$work"
pids=()
postfix_started=0

cleanup() {
	local p
	for p in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" 2>/dev/null; done
	pids=()
	[ $postfix_started = 1 ] && postfix stop >/dev/null 2>&1
	postfix_started=0
}
trap 'cleanup; echo "work directory: $work"' EXIT
trap 'exit 130' INT TERM

die() { echo "relay.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }

listening() {
	local hex
	hex=$(printf ':%04X' "$1")
	awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
		/proc/net/tcp /proc/net/tcp6
}

wait_port() {   # PORT SECONDS
	local n=0
	until listening "$1"; do
		n=$((n + 1))
		[ $n -gt $(($2 * 10)) ] && return 1
		sleep 0.1
	done
}

# ------------------------------------------------------------- preparation
[ "$(id -u)" = 0 ] || die "run as root (Postfix peer, ulimit -n)"
for p in smtp-source smtp-sink python3; do
	command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || die "$p not installed (bash contrib/install-deps.sh)"
done
PATH=$PATH:/usr/sbin
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard" 2>/dev/null
[ "$(ulimit -n)" -ge $((IDLE_CONNS + 200)) ] ||
	die "open files limit $(ulimit -n) too low for $IDLE_CONNS idle connections"
for p in "$SINK_PORT" "$RELAY_PORT"; do
	listening "$p" && die "port $p is in use"
done

if [ -z "${SMRELAYD:-}" ]; then
	SMRELAYD=$root/build-bench/smrelayd
	echo "building smrelayd in build-bench/ ..."
	[ -x "$root/configure" ] || (cd "$root" && ./autogen.sh) >/dev/null 2>&1 || die "autogen failed"
	mkdir -p "$root/build-bench"
	(cd "$root/build-bench" && { [ -f Makefile ] || ../configure --quiet; } && make -j"$(nproc)" >make.out 2>&1) ||
		die "build failed (see build-bench/make.out)"
fi
[ -x "$SMRELAYD" ] || die "$SMRELAYD not found"

# The sink: smtp-sink with running counters (-c), no dump files.
start_sink() {
	local user=()
	[ "$(id -u)" = 0 ] && user=(-u nobody)
	smtp-sink "${user[@]}" -c -m 1000 "127.0.0.1:$SINK_PORT" 4096 >"$work/sink.out" 2>&1 &
	pids+=($!)

	wait_port "$SINK_PORT" 10 || die "smtp-sink did not start: $(cat "$work/sink.out")"
}

sink_count() {
	tr '\r' '\n' <"$work/sink.out" | grep -o 'mesg=[0-9]*' | tail -n 1 | cut -d= -f2
}

# wait_sink N SECONDS: until smtp-sink counted N messages.
wait_sink() {
	local n=0 c
	while :; do
		c=$(sink_count)
		[ "${c:-0}" -ge "$1" ] && return 0
		n=$((n + 1))
		[ $n -gt $(($2 * 10)) ] && { echo "only ${c:-0} of $1 messages reached the sink" >&2; return 1; }
		sleep 0.1
	done
}

stop_all() { cleanup; }

start_smrelayd() {
	mkdir -p "$work/data"
	cat >"$work/smrelayd.conf" <<EOF
listen = 127.0.0.1:$RELAY_PORT tls=none
hostname = bench.smrelay.test
relay = 127.0.0.1:$SINK_PORT
relay_tls = none
data_dir = $work/data
max_connections = $((IDLE_CONNS + 1000))
max_message_size = 52428800
log_level = warn
EOF
	"$SMRELAYD" -c "$work/smrelayd.conf" -f >"$work/smrelayd.log" 2>&1 &
	pids+=($!)
	SMRELAYD_PID=$!
	wait_port "$RELAY_PORT" 15 || die "smrelayd did not start: $(tail -n 5 "$work/smrelayd.log")"
}

# source PORT COUNT: run smtp-source; prints seconds taken by smtp-source.
source_run() {
	local t0 t1
	t0=$(now)
	smtp-source -s "$SESSIONS" -m "$2" -l "$SIZE" -f bench@example.com -t sink@example.net \
		"127.0.0.1:$1" >"$work/source.out" 2>&1 || { echo "smtp-source failed: $(tail -n 3 "$work/source.out")" >&2; return 1; }
	t1=$(now)
	elapsed "$t0" "$t1"
}

declare -A secs

# ------------------------------------------------------------- throughput
echo "== 1. ceiling: smtp-source -> smtp-sink ($M messages, $SESSIONS sessions, $SIZE bytes)"
start_sink
t0=$(now)
source_run "$SINK_PORT" "$M" >/dev/null || die "ceiling run failed"
wait_sink "$M" 60 || die "ceiling: messages missing"
secs[ceiling]=$(elapsed "$t0" "$(now)")
stop_all

echo "== 2. smtp-source -> smrelayd -> smtp-sink"
start_sink
start_smrelayd
t0=$(now)
source_run "$RELAY_PORT" "$M" >/dev/null || die "smrelayd run failed (log: $work/smrelayd.log)"
wait_sink "$M" 120 || die "smrelayd: messages missing"
secs[smrelayd]=$(elapsed "$t0" "$(now)")
stop_all

if [ "${SKIP_POSTFIX:-0}" != 1 ]; then
	echo "== 3. smtp-source -> Postfix ($PEER_SCRIPT) -> smtp-sink"
	[ -f "$PEER_SCRIPT" ] || die "$PEER_SCRIPT not found"
	listening "$POSTFIX_PORT" && postfix stop >/dev/null 2>&1
	start_sink
	sh "$PEER_SCRIPT" "$POSTFIX_PORT" "$SINK_PORT" >"$work/postfix-setup.out" 2>&1 ||
		die "postfix-relay.sh failed: $(tail -n 5 "$work/postfix-setup.out")"
	postfix_started=1
	wait_port "$POSTFIX_PORT" 30 || die "Postfix is not listening on $POSTFIX_PORT"
	t0=$(now)
	source_run "$POSTFIX_PORT" "$M" >/dev/null || die "Postfix run failed"
	wait_sink "$M" 1800 || die "Postfix: messages missing (mailq?)"
	secs[postfix]=$(elapsed "$t0" "$(now)")
	stop_all
fi

# ------------------------------------------------------------- memory
echo "== 4a. memory: $IDLE_CONNS idle inbound connections"
start_sink
start_smrelayd
smtp-source -m 10 -l "$SIZE" "127.0.0.1:$RELAY_PORT" >/dev/null 2>&1   # warm up
sleep 1
rss_idle0=$(rss_kb "$SMRELAYD_PID")
python3 "$HOLDCONNS" --count "$IDLE_CONNS" --status "$work/hold.status" 127.0.0.1 "$RELAY_PORT" \
	>"$work/hold.out" 2>&1 &
pids+=($!)
hold_pid=$!
n=0
until [ -s "$work/hold.status" ] || [ $n -gt 1200 ]; do sleep 0.1; n=$((n + 1)); done
[ -s "$work/hold.status" ] || die "holdconns did not finish opening connections"
sleep 1
rss_idle1=$(rss_kb "$SMRELAYD_PID")
hold_status=$(cat "$work/hold.status")
kill "$hold_pid" 2>/dev/null
per_conn=$(awk -v a="$rss_idle0" -v b="$rss_idle1" -v n="$IDLE_CONNS" 'BEGIN { printf "%.1f", (b - a) / n }')

echo "== 4b. memory: RSS before/after $MEM_M messages"
sleep 2
smtp-source -s "$SESSIONS" -m 1000 -l "$SIZE" "127.0.0.1:$RELAY_PORT" >/dev/null 2>&1   # warm up
rss_run0=$(rss_kb "$SMRELAYD_PID")
t0=$(now)
source_run "$RELAY_PORT" "$MEM_M" >/dev/null || die "memory run failed"
mem_secs=$(elapsed "$t0" "$(now)")
sleep 2
rss_run1=$(rss_kb "$SMRELAYD_PID")
stop_all

# ------------------------------------------------------------- report
{
	echo
	echo "smrelay relay benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPU(s), $(uname -r)"
	echo "smtp-source -s $SESSIONS -m $M -l $SIZE; smrelayd$(cd "$root" && git describe --always --dirty 2>/dev/null | sed 's/^/ at /')"
	echo
	printf '| %-34s | %8s | %8s | %8s | %10s |\n' run messages seconds "msgs/s" "vs ceiling"
	printf '|%s|%s|%s|%s|%s|\n' "------------------------------------" "----------" "----------" "----------" "------------"
	for k in ceiling smrelayd postfix; do
		[ -n "${secs[$k]:-}" ] || continue
		case $k in
		ceiling) name="smtp-sink direct (ceiling)" ;;
		smrelayd) name="through smrelayd" ;;
		postfix) name="through Postfix $(postconf -h mail_version 2>/dev/null)" ;;
		esac
		printf '| %-34s | %8s | %8s | %8s | %10s |\n' "$name" "$M" "${secs[$k]}" \
			"$(rate "$M" "${secs[$k]}")" \
			"$(ratio "$(rate "$M" "${secs[$k]}")" "$(rate "$M" "${secs[ceiling]}")")"
	done
	if [ -n "${secs[postfix]:-}" ]; then
		echo
		echo "smrelayd / Postfix throughput: $(ratio "$(rate "$M" "${secs[smrelayd]}")" "$(rate "$M" "${secs[postfix]}")")"
	fi
	echo
	printf '| %-44s | %12s |\n' "memory" value
	printf '|%s|%s|\n' "----------------------------------------------" "--------------"
	printf '| %-44s | %9s KiB |\n' "RSS before $IDLE_CONNS idle connections" "$rss_idle0"
	printf '| %-44s | %9s KiB |\n' "RSS with $IDLE_CONNS idle connections" "$rss_idle1"
	printf '| %-44s | %9s KiB |\n' "per idle connection (target < 32 KiB)" "$per_conn"
	printf '| %-44s | %9s KiB |\n' "RSS before $MEM_M messages" "$rss_run0"
	printf '| %-44s | %9s KiB |\n' "RSS after $MEM_M messages ($mem_secs s)" "$rss_run1"
	printf '| %-44s | %9s KiB |\n' "growth over $MEM_M messages" "$((rss_run1 - rss_run0))"
	echo
	echo "holdconns: $hold_status"
} | tee "$work/results.txt"
