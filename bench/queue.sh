#!/bin/bash
# bench/queue.sh: the durable spool of smrelayd (issue 5), on this machine, in
# one go (see docs/BENCHMARKS.md, "Spool (issue 5)").
#
#   1. in-line   smtp-source -s 20 -m M -l 4096 -> smrelayd -> smtp-sink: the
#                in-line relay rate, the yardstick for the drain
#   2. postfix   the same load into the stock Postfix relay that
#                shared/peers/postfix-relay.sh sets up, its relayhost a
#                closed port, so it queues everything; its queue must then
#                hold M messages (postqueue -j).  msgs/s while smtp-source
#                runs.
#   3. spool     the same load into smrelayd with the next hop down (relay =
#                the same closed port): every message is fsync'ed into the
#                spool before its 250.  `smrelayctl queue list` must then
#                hold M entries.
#   4. drain     smtp-sink comes up on the next-hop port, `smrelayctl queue
#                flush`; the clock stops when smtp-sink has counted all M
#                and `queue list` is empty.  If the flush moves nothing
#                within FLUSH_GRACE seconds, that is reported and smrelayd
#                is restarted instead (start-up makes the whole spool due);
#                the clock then starts at the restart.
#
# Runs 2 and 3 record fsync(2)/fdatasync(2)/openat(2) entries and exits
# with perf tracepoints (when perf works), so fsyncs per message, the
# spool's group-commit batch size and the time its thread spends inside
# those calls are measured, not guessed; Postfix's count shows that it
# syncs each queue file as stock.  Load average and the machine's busy
# share are printed for every run (other load included).  Before runs 2 and
# 3 the script waits until creating a file in its work directory is cheap
# again (see create_probe, fs_settle).
#
# Needs root (Postfix), smtp-source/smtp-sink (postfix package), python3;
# perf (optional).  Environment: M (20000), SESSIONS (20), SIZE (4096),
# SMRELAYD (default: build in build-bench/ with the default -O2), SMRELAYCTL
# (next to SMRELAYD), SKIP_POSTFIX=1, FLUSH_GRACE (10), SETTLE_US (100),
# SETTLE_MAX (180), ports SINK_PORT
# (2710, closed during runs 2 and 3), RELAY_PORT (2611), POSTFIX_PORT
# (2600).  Everything is on 127.0.0.1.  Postfix's queue is emptied
# (postsuper -d ALL) before run 2 and at the end, and Postfix is stopped.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
M=${M:-20000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
FLUSH_GRACE=${FLUSH_GRACE:-10}
SETTLE_US=${SETTLE_US:-100}
SETTLE_MAX=${SETTLE_MAX:-180}
SINK_PORT=${SINK_PORT:-2710}
RELAY_PORT=${RELAY_PORT:-2611}
POSTFIX_PORT=${POSTFIX_PORT:-2600}
PEER_SCRIPT=${PEER_SCRIPT:-$root/../shared/peers/postfix-relay.sh}
work=$(mktemp -d /tmp/smrelay-qbench.XXXXXX)
chmod 755 "$work"   # smrelayd's network process (user smrelay) reaches data_dir
chmod 755 "$work"
pids=()
postfix_started=0

cleanup() {
	local p
	for p in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" 2>/dev/null; done
	pids=()
	if [ $postfix_started = 1 ]; then
		postfix stop >/dev/null 2>&1
		postsuper -d ALL >/dev/null 2>&1
	fi
	postfix_started=0
}
trap 'cleanup; echo "work directory: $work"' EXIT
trap 'exit 130' INT TERM

die() { echo "queue.sh: $*" >&2; exit 1; }
. "$(dirname "$0")/lib.sh"
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
met() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "n/a" && a >= b ? "yes" : "NO") }'; }


declare -A secs load busy dcpu note

# mark KEY / done_run KEY: load average at the start, the machine's busy
# share and smrelayd's CPU seconds over the run.
mark() {
	load[$1]=$(loadavg)
	read -r m0_b m0_i < <(machine_cpu)
	d0=$( [ -n "${SMRELAYD_PID:-}" ] && daemon_cpu "$SMRELAYD_PID")
}
done_run() {
	local b i
	read -r b i < <(machine_cpu)
	busy[$1]=$(awk -v b0="$m0_b" -v i0="$m0_i" -v b="$b" -v i="$i" \
		'BEGIN { t = (b - b0) + (i - i0); printf "%.0f", (t > 0 ? 100 * (b - b0) / t : 0) }')
	if [ -n "${d0:-}" ] && [ -n "${SMRELAYD_PID:-}" ]; then
		dcpu[$1]=$(awk -v a="$d0" -v b="$(daemon_cpu "$SMRELAYD_PID")" 'BEGIN { printf "%.2f", b - a }')
	fi
}

# ------------------------------------------------------------- preparation
[ "$(id -u)" = 0 ] || die "run as root (Postfix peer)"
PATH=$PATH:/usr/sbin
for p in smtp-source smtp-sink python3; do
	command -v "$p" >/dev/null 2>&1 || die "$p not installed (bash contrib/install-deps.sh)"
done
for p in "$SINK_PORT" "$RELAY_PORT"; do
	listening "$p" && die "port $p is in use"
done
bench_binaries
[ -x "$SMRELAYCTL" ] || die "$SMRELAYCTL not found (SMRELAYCTL=...)"
PERF=0
if command -v perf >/dev/null 2>&1 &&
	perf stat -e syscalls:sys_enter_fsync -a true >/dev/null 2>&1; then
	PERF=1
fi

# smtp-sink with running counters (-c), no dump files, on the next-hop port.
start_sink() {
	smtp-sink -u nobody -c -m 1000 "127.0.0.1:$SINK_PORT" 4096 >"$work/sink.out" 2>&1 &
	pids+=($!)
	SINK_PID=$!
	wait_port "$SINK_PORT" 10 || die "smtp-sink did not start: $(cat "$work/sink.out")"
}
sink_count() {
	tr '\r' '\n' <"$work/sink.out" | grep -o 'mesg=[0-9]*' | tail -n 1 | cut -d= -f2
}

stop_pid() {
	local p keep=()
	kill -TERM "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	for p in "${pids[@]+"${pids[@]}"}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]+"${keep[@]}"}")
}

# start_smrelayd DATA_DIR: the relay points at SINK_PORT (down or up).
start_smrelayd() {
	mkdir -p "$1"
	cat >"$work/smrelayd.conf" <<EOF
listen = 127.0.0.1:$RELAY_PORT tls=none
hostname = bench.smrelay.test
relay = 127.0.0.1:$SINK_PORT
relay_tls = none
data_dir = $1
max_connections = 1000
max_message_size = 52428800
log_level = warn
EOF
	"$SMRELAYD" -c "$work/smrelayd.conf" -f >>"$work/smrelayd.log" 2>&1 &
	pids+=($!)
	SMRELAYD_PID=$!
	wait_port "$RELAY_PORT" 60 || die "smrelayd did not start: $(tail -n 5 "$work/smrelayd.log")"
	NET_PID=$(smrelayd_net "$SMRELAYD_PID") || die "smrelayd has no network process"
}

ctl() { "$SMRELAYCTL" -c "$work/smrelayd.conf" "$@"; }
queue_len() { ctl queue list 2>/dev/null | wc -l; }

# source_run PORT: smtp-source, prints the seconds it took.
source_run() {
	local t0 t1
	t0=$(now)
	smtp-source -s "$SESSIONS" -m "$M" -l "$SIZE" -f bench@example.com -t sink@example.net \
		"127.0.0.1:$1" >"$work/source.out" 2>&1 || { echo "smtp-source failed: $(tail -n 3 "$work/source.out")" >&2; return 1; }
	t1=$(now)
	elapsed "$t0" "$t1"
}

# fsync_start NAME [-p PID]: record fsync/fdatasync (and openat: file
# creation) entries and exits with perf tracepoints until fsync_stop NAME,
# which writes "COMM TID SYSCALL CALLS SECONDS" lines (time inside the
# call) to fsync-NAME.txt.  Without perf: nothing.
fsync_start() {
	[ $PERF = 1 ] || return 0
	local name=$1 ev=() sc
	shift
	for sc in fsync fdatasync openat; do
		ev+=(-e "syscalls:sys_enter_$sc" -e "syscalls:sys_exit_$sc")
	done
	perf record -q "${ev[@]}" "${@:--a}" -o "$work/fsync-$name.data" >"$work/perf-$name.out" 2>&1 &
	PERF_PID=$!
	sleep 1
}
fsync_stop() {
	[ $PERF = 1 ] || return 0
	kill -INT "$PERF_PID" 2>/dev/null
	wait "$PERF_PID" 2>/dev/null
	perf script -i "$work/fsync-$1.data" -F comm,tid,time,event 2>/dev/null |
		awk '{ ev = $NF; t = $(NF - 1); tid = $(NF - 2); comm = $1
		       for (i = 2; i < NF - 2; i++) comm = comm "_" $i
		       sub(/:$/, "", t); sub(/:$/, "", ev); sub(/.*sys_/, "", ev)
		       if (ev ~ /^enter_/) { st[tid] = t; sc[tid] = substr(ev, 7); next }
		       if (!(tid in st)) next
		       k = comm " " tid " " sc[tid]; n[k]++; d[k] += t - st[tid]; delete st[tid] }
		     END { for (k in n) printf "%s %d %.3f\n", k, n[k], d[k] }' | sort >"$work/fsync-$1.txt"
}
fsync_total() {   # NAME SYSCALL [COMM-REGEX]: calls
	awk -v s="$2" -v re="${3:-.}" '$3 == s && $1 ~ re { n += $4 } END { print n + 0 }' "$work/fsync-$1.txt" 2>/dev/null
}
# fsync_by_comm NAME: "COMM SYSCALL CALLS SECONDS" summed over threads.
fsync_by_comm() {
	awk '{ k = $1 " " $3; n[k] += $4; d[k] += $5 } END { for (k in n) printf "%s %d %.2f\n", k, n[k], d[k] }' \
		"$work/fsync-$1.txt" 2>/dev/null | sort
}

# create_probe KEY: microseconds per file creation (open O_CREAT, close) in
# the work directory, 2,000 empty files kept until the end.  Both the spool
# and Postfix create one file per message, and on the reference VM that
# costs anything from 20 to 800 us depending on what else the disk has just
# done (mass deletes, other people's test runs; ext4 without a journal,
# where inode allocation walks recently deleted inodes); this shows it.
PROBES=0
create_probe() {
	PROBES=$((PROBES + 1))
	mkdir -p "$work/probe-$PROBES"
	probe[$1]=$(python3 -c 'import os, sys, time
d = sys.argv[1]
t = time.monotonic()
for i in range(2000):
    os.close(os.open("%s/%d" % (d, i), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
print("%.0f" % ((time.monotonic() - t) / 2000 * 1e6))' "$work/probe-$PROBES")
}
declare -A probe

# fs_settle KEY: before an accept run, wait (SETTLE_MAX seconds at most)
# until creating a file costs less than SETTLE_US microseconds again.
fs_settle() {
	local t0 waited
	t0=$(now)
	create_probe "$1"
	while [ "${probe[$1]}" -gt "$SETTLE_US" ]; do
		waited=$(elapsed "$t0" "$(now)")
		awk -v w="$waited" -v m="$SETTLE_MAX" 'BEGIN { exit !(w > m) }' && break
		sleep 5
		create_probe "$1"
	done
	settled[$1]=$(elapsed "$t0" "$(now)")
}
declare -A settled

# thread_cpu PID: "TID CPU-SECONDS" per thread, sorted for join.
thread_cpu() {
	local t
	for t in /proc/"$1"/task/*; do
		awk -v t="${t##*/}" -v hz="$(getconf CLK_TCK)" '{ printf "%s %.2f\n", t, ($14 + $15) / hz }' "$t/stat"
	done | sort
}

echo "smtp-source -s $SESSIONS -m $M -l $SIZE; $SMRELAYD; load average $(loadavg)"

# ------------------------------------------------------------- 1. in-line
echo "== 1. in-line: smtp-source -> smrelayd -> smtp-sink"
start_sink
start_smrelayd "$work/data-inline"
mark inline
t0=$(now)
source_run "$RELAY_PORT" >/dev/null || die "in-line run failed (log: $work/smrelayd.log)"
n=0
until [ "$(sink_count)" -ge "$M" ] 2>/dev/null; do
	n=$((n + 1)); [ $n -gt 1200 ] && die "in-line: only $(sink_count) of $M at the sink"
	sleep 0.1
done
secs[inline]=$(elapsed "$t0" "$(now)")
done_run inline
inline_q=$(queue_len)
stop_pid "$SMRELAYD_PID"
stop_pid "$SINK_PID"
SMRELAYD_PID=""
echo "   ${secs[inline]} s, $(rate "$M" "${secs[inline]}") msgs/s (queue afterwards: $inline_q)"

# ------------------------------------------------------------- 2. Postfix
# Its queue is kept (Postfix stopped) until the end: deleting 20,000 files
# right before the spool run would slow that run's file creation (see
# create_probe), and the same holds the other way round.
if [ "${SKIP_POSTFIX:-0}" != 1 ]; then
	echo "== 2. postfix: smtp-source -> Postfix ($PEER_SCRIPT), relayhost [127.0.0.1]:$SINK_PORT down"
	[ -f "$PEER_SCRIPT" ] || die "$PEER_SCRIPT not found"
	listening "$SINK_PORT" && die "port $SINK_PORT is in use"
	listening "$POSTFIX_PORT" && postfix stop >/dev/null 2>&1
	sh "$PEER_SCRIPT" "$POSTFIX_PORT" "$SINK_PORT" >"$work/postfix-setup.out" 2>&1 ||
		die "postfix-relay.sh failed: $(tail -n 5 "$work/postfix-setup.out")"
	postfix_started=1
	wait_port "$POSTFIX_PORT" 30 || die "Postfix is not listening on $POSTFIX_PORT"
	pf_queue0=$(postqueue -j 2>/dev/null | wc -l)
	[ "$pf_queue0" = 0 ] || { postsuper -d ALL >/dev/null 2>&1; pf_queue0=$(postqueue -j 2>/dev/null | wc -l); }
	fs_settle postfix
	fsync_start postfix -a
	mark postfix
	secs[postfix]=$(source_run "$POSTFIX_PORT") || die "Postfix run failed"
	done_run postfix
	fsync_stop postfix
	postqueue -j >"$work/postqueue.json" 2>/dev/null
	# showq may list a message twice when qmgr moves it during the scan:
	# count distinct queue ids, and only ours (from smtp-source).
	pf_queued=$(grep -o '"queue_id": *"[^"]*"' "$work/postqueue.json" | sort -u | wc -l)
	pf_ours=$(grep '"sender": *"bench@example.com"' "$work/postqueue.json" |
		grep -o '"queue_id": *"[^"]*"' | sort -u | wc -l)
	pf_version=$(postconf -h mail_version 2>/dev/null)
	pf_queue_dir=$(postconf -h queue_directory)
	echo "   ${secs[postfix]} s, $(rate "$M" "${secs[postfix]}") msgs/s; postqueue -j: $pf_queued distinct queue ids, $pf_ours from smtp-source (before: $pf_queue0)"
	[ "$pf_ours" -ge "$M" ] || die "Postfix: only $pf_ours of $M messages in its queue"
	postfix stop >/dev/null 2>&1
	sleep 2
fi

# ------------------------------------------------------------- 3. spool
echo "== 3. spool: smtp-source -> smrelayd, next hop down (127.0.0.1:$SINK_PORT closed)"
listening "$SINK_PORT" && die "port $SINK_PORT is in use"
spool_data=$work/data-spool
start_smrelayd "$spool_data"
spool_pid=$NET_PID
fs_settle spool
fsync_start spool -p "$NET_PID"
thread_cpu "$NET_PID" >"$work/threads0"
mark spool
secs[spool]=$(source_run "$RELAY_PORT") || die "spool run failed (log: $work/smrelayd.log)"
done_run spool
thread_cpu "$NET_PID" >"$work/threads1"
fsync_stop spool
# CPU seconds per thread over the run; the main (event loop) thread's id
# is the process id; the spool thread is the other busy one.
threads=$(join "$work/threads0" "$work/threads1" | awk -v main="$NET_PID" -v s="${secs[spool]}" '
	{ d = $3 - $2; if (d < 0.05) next
	  printf "%s%s %.2f s (%.0f %% of the run)", sep, ($1 == main ? "main" : "tid " $1), d, 100 * d / s; sep = ", " }')
spooled=$(queue_len)
spool_kb=$(du -sk "$spool_data/spool" | cut -f1)
echo "   ${secs[spool]} s, $(rate "$M" "${secs[spool]}") msgs/s; queue list: $spooled entries; spool ${spool_kb} KiB; threads: $threads"
[ "$spooled" -eq "$M" ] || die "spool: $spooled of $M messages in the queue"

# ------------------------------------------------------------- 4. drain
echo "== 4. drain: smtp-sink up on $SINK_PORT, smrelayctl queue flush"
# The earliest retry the queue runner has planned by itself (backoff).
first_due=$(ctl queue list | awk -F'\t' '{ print $5 }' | sort | head -n 1)
start_sink
mark drain
t0=$(now)
flushed=$(ctl queue flush 2>&1)
drain_how="queue flush ($flushed)"
n=0
while [ "$(sink_count)" = "" ] || [ "$(sink_count)" = 0 ]; do
	n=$((n + 1))
	if [ $n -gt $((FLUSH_GRACE * 10)) ]; then
		note[drain]="queue flush ($flushed) moved nothing in $FLUSH_GRACE s (the earliest retry planned: $first_due); smrelayd restarted (start-up makes every entry due), timed from the restart"
		echo "   ${note[drain]}"
		stop_pid "$SMRELAYD_PID"
		t0=$(now)
		start_smrelayd "$spool_data"
		mark drain
		drain_how="a restart of smrelayd"
		break
	fi
	sleep 0.1
done
first=$(elapsed "$t0" "$(now)")
n=0
while :; do
	if [ "$(sink_count)" -ge "$M" ] 2>/dev/null && [ "$(queue_len)" = 0 ]; then break; fi
	n=$((n + 1)); [ $n -gt 6000 ] && die "drain: $(sink_count) of $M at the sink after 600 s, $(queue_len) queued"
	sleep 0.1
done
secs[drain]=$(elapsed "$t0" "$(now)")
done_run drain
drain_sink=$(sink_count)
echo "   ${secs[drain]} s, $(rate "$M" "${secs[drain]}") msgs/s (sink: $drain_sink; first delivery after $first s) via $drain_how"
stop_pid "$SMRELAYD_PID"
stop_pid "$SINK_PID"

# ------------------------------------------------------------- report
{
	echo
	echo "smrelay spool benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPU(s), $(uname -r)"
	echo "smtp-source -s $SESSIONS -m $M -l $SIZE; $SMRELAYD (built $(date -u -r "$SMRELAYD" "+%H:%M UTC"), tree at $(cd "$root" && git describe --always --dirty 2>/dev/null)); data_dir and Postfix's queue on $(df -T "$work" | awk 'NR == 2 { print $2 }')"
	echo
	printf '| %-44s | %8s | %8s | %8s | %16s | %6s | %12s |\n' run messages seconds "msgs/s" "load at start" busy "smrelayd CPU"
	printf '|%s|%s|%s|%s|%s|%s|%s|\n' "----------------------------------------------" "----------" "----------" "----------" "------------------" "--------" "--------------"
	for k in inline postfix spool drain; do
		[ -n "${secs[$k]:-}" ] || continue
		case $k in
		inline) name="1. in-line relay (hop up)" ;;
		postfix) name="2. Postfix $pf_version accept, hop down" ;;
		spool) name="3. smrelayd accept, hop down (spool)" ;;
		drain) name="4. drain of the spool (MAX_ACTIVE 20)" ;;
		esac
		printf '| %-44s | %8s | %8s | %8s | %16s | %4s %% | %10s s |\n' "$name" "$M" "${secs[$k]}" \
			"$(rate "$M" "${secs[$k]}")" "${load[$k]}" "${busy[$k]}" "${dcpu[$k]:--}"
	done
	echo "(busy: share of all $(nproc) CPUs over the run, other load included; smrelayd CPU: user + system seconds)"
	echo "drain: first delivery $first s after $drain_how"
	[ -n "${note[drain]:-}" ] && echo "drain: ${note[drain]}"
	echo "smrelayd threads during run 3 (CPU seconds): $threads"
	echo "file create probe just before the accept runs (2000 empty files, us/file; waited for < $SETTLE_US us): postfix ${probe[postfix]:-n/a} after ${settled[postfix]:-0} s, spool ${probe[spool]:-n/a} after ${settled[spool]:-0} s"
	echo
	sp=$(rate "$M" "${secs[spool]}")
	printf '| %-52s | %10s | %6s | %4s |\n' target measured ratio met
	printf '|%s|%s|%s|%s|\n' "------------------------------------------------------" "------------" "--------" "------"
	if [ -n "${secs[postfix]:-}" ]; then
		pf=$(rate "$M" "${secs[postfix]}")
		printf '| %-52s | %10s | %6s | %4s |\n' "spool accept >= 2 x Postfix accept ($pf/s)" "$sp/s" "$(ratio "$sp" "$pf")" "$(met "$(ratio "$sp" "$pf")" 2)"
	fi
	il=$(rate "$M" "${secs[inline]}")
	dr=$(rate "$M" "${secs[drain]}")
	printf '| %-52s | %10s | %6s | %4s |\n' "drain >= 0.50 x in-line relay ($il/s)" "$dr/s" "$(ratio "$dr" "$il")" "$(met "$(ratio "$dr" "$il")" 0.5)"
	if [ $PERF = 1 ]; then
		fs=$(fsync_total spool fsync)
		fd=$(fsync_total spool fdatasync)
		echo
		echo "fsync(2) / fdatasync(2) during the accept runs (perf tracepoints on entry and exit):"
		echo "  smrelayd: fsync $fs, fdatasync $fd for $M messages = $(awk -v a="$fs" -v b="$fd" -v n="$M" 'BEGIN { printf "%.2f", (a + b) / n }') per message"
		# Bodies: one fsync each; per batch: one fsync of msg/, one WAL
		# sync (fdatasync with SQLite's default build) at commit.
		if [ "$fs" -gt "$M" ]; then
			echo "    fsyncs beyond one per body: $((fs - M)) (the msg/ directory, once per batch) -> $(awk -v a="$fs" -v n="$M" 'BEGIN { printf "%.1f", n / (a - n) }') messages per group commit on average"
		fi
		echo "    per thread (calls, seconds inside the call, share of the $(printf %s "${secs[spool]}") s run):"
		awk -v s="${secs[spool]}" -v main="${spool_pid:-}" '{ printf "      %s %-6s %-10s %6d calls %7.2f s %5.1f %%\n", ($2 == main ? "main" : "tid"), $2, $3, $4, $5, 100 * $5 / s }' \
			"$work/fsync-spool.txt"
		awk -v s="${secs[spool]}" '{ t[$2] += $5 } END { for (k in t) if (t[k] > 0.5) printf "      tid %s: %.2f s in fsync + fdatasync + openat = %.0f %% of the run\n", k, t[k], 100 * t[k] / s }' \
			"$work/fsync-spool.txt"
		if [ -s "$work/fsync-postfix.txt" ]; then
			echo "  Postfix run (system-wide, by process name: other processes on the machine included):"
			fsync_by_comm postfix | awk '$2 != "openat" || $1 ~ /^(cleanup|smtpd|qmgr|bounce)$/ { printf "      %-12s %-10s %6d calls %7.2f s\n", $1, $2, $3, $4 }'
			echo "    cleanup: $(fsync_total postfix fsync '^cleanup$') fsync for $M messages (stock: one per queue file, before the 250)"
		fi
	fi
	echo
	echo "Postfix queue directory: ${pf_queue_dir:-n/a} ($(df -T "${pf_queue_dir:-/}" | awk 'NR == 2 { print $2 " on " $7 }')); spool: $spool_kb KiB for $M messages"
	echo "smrelayd log lines at warn or above: $(grep -c -i 'warn\|error' "$work/smrelayd.log")"
} | tee "$work/results.txt"
