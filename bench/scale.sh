#!/bin/bash
# bench/scale.sh: what `processes` and `database` do to smrelayd's rate, on
# this machine (issue 18; docs/BENCHMARKS.md "Scaling").
#
# For every database in DBS (sqlite: data_dir/smrelay.db; pg: a throwaway
# PostgreSQL cluster from tests/lib/pgcluster.sh), every value of processes
# in PROCS (1 2 auto) and every mode in MODES:
#   pass          no policy rule: relayed unchanged
#   sign+encrypt  one rule: mail from @example.com to @partner.example is
#                 signed by alice (RSA-2048) and encrypted to bob
# the run is the one of bench/relay.sh: smtp-source -s SESSIONS -m M -l SIZE
# from alice@example.com to bob@partner.example -> smrelayd (no TLS) ->
# smtp-sink (counters), the clock stopping when smtp-sink has counted all M.
# Before the timed runs of a mode, VERIFY_N messages go to `smrelayctl sink`
# and every one must have the mode's structure (one is opened with openssl
# cms), and WARM messages warm the caches (policy, certificates, the
# database connection) before each timed run: "warm caches" is what is
# compared between SQLite and PostgreSQL.  ROUNDS runs of each; the median
# is reported with smrelayd's CPU time per message (all its processes) and
# the ratio to processes = 1 of the same database and mode, and PostgreSQL
# against SQLite.  Targets (issue 18): sign+encrypt with 2 processes >= 1.6x
# one on a 2-core machine; PostgreSQL within 10 % of SQLite.
#
# A combination this smrelayd cannot run (`smrelayd -n` refuses `processes`
# or `database = postgresql://`, or no pgcluster.sh) is reported as n/a with
# the reason, not fatal.
#
# Environment: M (5000), SESSIONS (20), SIZE (4096), ROUNDS (1), WARM (200),
# VERIFY_N (20), PROCS ("1 2 auto"), DBS ("sqlite pg"), MODES ("pass
# sign+encrypt"), SMRELAYD (default: build in build-bench/, -O2),
# SMRELAYCTL.  Ports are picked free on 127.0.0.1.  A smoke run:
#   M=300 ROUNDS=1 PROCS=1 bash bench/scale.sh
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
M=${M:-5000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
ROUNDS=${ROUNDS:-1}
WARM=${WARM:-200}
VERIFY_N=${VERIFY_N:-20}
PROCS=${PROCS:-1 2 auto}
DBS=${DBS:-sqlite pg}
MODES=${MODES:-pass sign+encrypt}
work=$(mktemp -d /tmp/smrelay-scale.XXXXXX)
chmod 755 "$work"   # the network process (user smrelay) reaches data_dir
pids=()
pg_up=0

die() { echo "scale.sh: $*" >&2; exit 1; }
. "$root/bench/lib.sh"

cleanup() {
	local p
	for p in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" 2>/dev/null; done
	pids=()
}
trap 'cleanup; [ $pg_up = 1 ] && pg_cleanup >/dev/null 2>&1; echo "work directory: $work"' EXIT
trap 'exit 130' INT TERM

. "$root/tests/lib/free_port.sh"
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
median() { sort -n | awk '{ v[++n] = $1 } END { if (n) print (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2) }'; }

# pid_tree PID: PID and every process under it.
pid_tree() {
	local c
	# cat opens the files: mawk stops at one that is gone
	for c in $(cat /proc/[0-9]*/stat 2>/dev/null | awk -v pp="$1" '$4 == pp { print $1 }'); do
		pid_tree "$c"
	done
	echo "$1"
}
# tree_cpu PID: CPU seconds of PID and all its processes so far (with
# processes = N there are N network processes).
tree_cpu() {
	local t=0 p c
	for p in $(pid_tree "$1"); do
		c=$(proc_cpu "$p") && t=$(awk -v a="$t" -v b="$c" 'BEGIN { printf "%.2f", a + b }')
	done
	echo "$t"
}

# ------------------------------------------------------------- preparation
PATH=$PATH:/usr/sbin
for p in smtp-source smtp-sink python3 openssl; do
	command -v "$p" >/dev/null 2>&1 || die "$p not installed (bash contrib/install-deps.sh)"
done
bench_binaries
[ -x "$SMRELAYCTL" ] || die "$SMRELAYCTL not found (SMRELAYCTL=...)"
SINK_PORT=$(free_port)
RELAY_PORT=$(free_port)
NCPU=$(nproc)
pki=$work/pki
sh "$root/tests/smime/pki.sh" "$pki" >"$work/pki.out" 2>&1 || die "tests/smime/pki.sh failed"

# conf DB PROCS: $work/smrelayd.conf for a run.
conf() {
	mkdir -p "$work/data-$1"
	{
		echo "listen = 127.0.0.1:$RELAY_PORT tls=none"
		echo "hostname = bench.smrelay.test"
		echo "relay = 127.0.0.1:$SINK_PORT"
		echo "relay_tls = none"
		echo "data_dir = $work/data-$1"
		echo "log_level = warn"
		[ "$2" != 1 ] && echo "processes = $2"
		[ "$1" = pg ] && echo "database = $PG_URL"
	} >"$work/smrelayd.conf"
}
ctl() { "$SMRELAYCTL" -c "$work/smrelayd.conf" "$@"; }

# can_run DB PROCS: smrelayd -n takes the configuration; else WHY.
can_run() {
	local out
	if [ "$1" = pg ] && [ $pg_up = 0 ]; then
		WHY=$PG_WHY
		return 1
	fi
	conf "$1" "$2"
	out=$("$SMRELAYD" -c "$work/smrelayd.conf" -n 2>&1) && return 0
	WHY=$(echo "$out" | tail -n 1)
	return 1
}

# The PostgreSQL cluster, if there is one to be had.
PG_WHY=""
case " $DBS " in
*" pg "*)
	if [ ! -f "$root/tests/lib/pgcluster.sh" ]; then
		PG_WHY="no tests/lib/pgcluster.sh"
	else
		. "$root/tests/lib/pgcluster.sh"
		# (ours again, should pgcluster.sh have set one)
		trap 'cleanup; [ $pg_up = 1 ] && pg_cleanup >/dev/null 2>&1; echo "work directory: $work"' EXIT
		if pg_start "$work/pg" >"$work/pg.out" 2>&1; then
			pg_up=1
		else
			PG_WHY="pg_start failed: $(tail -n 1 "$work/pg.out")"
		fi
	fi ;;
esac

# store_init DB: trust anchor, alice's key, bob's certificate (once per DB).
store_init() {
	conf "$1" 1
	ctl trust import "$pki/trust.pem" >/dev/null &&
		ctl key import "$pki/alice.p12" >/dev/null &&
		ctl cert import "$pki/bob.pem" >/dev/null
}

# set_rule MODE: the store holds exactly the rule for MODE.
set_rule() {
	local id
	for id in $(ctl policy list | cut -f1); do
		ctl policy remove "$id" >/dev/null || die "policy remove $id failed"
	done
	case $1 in
	pass) ;;
	sign+encrypt) ctl policy add --sender @example.com --recipient @partner.example \
		--action sign,encrypt >/dev/null || die "policy add failed" ;;
	esac
}

start_sink() {
	local user=()
	[ "$(id -u)" = 0 ] && user=(-u nobody)
	smtp-sink "${user[@]}" -c -m 1000 "127.0.0.1:$SINK_PORT" 4096 >"$work/sink.out" 2>&1 &
	SINK_PID=$!
	pids+=("$SINK_PID")
	wait_port "$SINK_PORT" 10 || die "smtp-sink did not start: $(cat "$work/sink.out")"
}
sink_count() {
	tr '\r' '\n' <"$work/sink.out" | grep -o 'mesg=[0-9]*' | tail -n 1 | cut -d= -f2
}
wait_sink() {   # N SECONDS
	local n=0 c
	while :; do
		c=$(sink_count)
		[ "${c:-0}" -ge "$1" ] && return 0
		n=$((n + 1))
		[ $n -gt $(($2 * 10)) ] && { echo "only ${c:-0} of $1 messages reached the sink" >&2; return 1; }
		sleep 0.1
	done
}
stop_pid() {
	local p keep=()
	kill -TERM "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	for p in "${pids[@]+"${pids[@]}"}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]+"${keep[@]}"}")
}
start_smrelayd() {
	"$SMRELAYD" -c "$work/smrelayd.conf" -f >"$work/smrelayd.log" 2>&1 &
	SMRELAYD_PID=$!
	pids+=("$SMRELAYD_PID")
	wait_port "$RELAY_PORT" 30 || die "smrelayd did not start: $(tail -n 5 "$work/smrelayd.log")"
}
load() {   # COUNT
	smtp-source -s "$SESSIONS" -m "$1" -l "$SIZE" -f alice@example.com -t bob@partner.example \
		"127.0.0.1:$RELAY_PORT" >"$work/source.out" 2>&1 ||
		die "smtp-source failed: $(tail -n 3 "$work/source.out")"
}

# The first Content-Type of a message's header section, lower case.
toptype() {
	awk 'BEGIN { IGNORECASE = 1 } { sub(/\r$/, "") } /^$/ { exit }
	     tolower($0) ~ /^content-type:/ { v = tolower($0); sub(/^content-type:[ \t]*/, "", v);
	         sub(/;.*/, "", v); print v; exit }' "$1"
}

# verify MODE: VERIFY_N messages into smrelayctl sink, each of the mode's
# structure; one sign+encrypt message decrypts with bob's key and verifies.
verify() {
	local dir=$work/verify-$1-$2-$3 want f bad=0 n=0 one cpid
	rm -rf "$dir"
	"$SMRELAYCTL" sink --listen "127.0.0.1:$SINK_PORT" --maildir "$dir" >"$work/capture.out" 2>&1 &
	cpid=$!
	pids+=("$cpid")
	wait_port "$SINK_PORT" 10 || die "smrelayctl sink did not start: $(cat "$work/capture.out")"
	load "$VERIFY_N"
	until [ "$(find "$dir/new" -type f 2>/dev/null | wc -l)" -ge "$VERIFY_N" ]; do
		n=$((n + 1))
		[ $n -gt 300 ] && die "$*: only $(find "$dir/new" -type f | wc -l) of $VERIFY_N captured"
		sleep 0.1
	done
	stop_pid "$cpid"
	case $1 in
	pass) want=text/plain ;;
	*) want=application/pkcs7-mime ;;
	esac
	for f in "$dir"/new/*; do
		[ "$(toptype "$f")" = "$want" ] || { [ $want = text/plain ] && [ -z "$(toptype "$f")" ]; } ||
			bad=$((bad + 1))
	done
	[ $bad = 0 ] || die "$*: $bad of $VERIFY_N messages are not $want (see $dir)"
	if [ "$1" = sign+encrypt ]; then
		one=$(find "$dir/new" -type f | head -n 1)
		openssl cms -decrypt -recip "$pki/bob.pem" -inkey "$pki/bob.key" -in "$one" \
			-out "$dir/inner" >/dev/null 2>&1 && [ "$(toptype "$dir/inner")" = multipart/signed ] &&
			openssl cms -verify -CAfile "$pki/trust.pem" -in "$dir/inner" -out /dev/null >/dev/null 2>&1 ||
			die "$*: openssl cms -decrypt + -verify failed (see $dir)"
	fi
}

# run DB PROCS MODE: ROUNDS timed runs; sets RATE and CPU (medians).
run() {
	local r t0 s c0 rates=() cpus=()
	conf "$1" "$2"
	start_smrelayd
	verify "$3" "$1" "$2"
	for ((r = 1; r <= ROUNDS; r++)); do
		start_sink
		load "$WARM"
		wait_sink "$WARM" 120 || die "$*: warm-up messages missing"
		c0=$(tree_cpu "$SMRELAYD_PID")
		t0=$(now)
		load "$M"
		wait_sink $((WARM + M)) 600 || die "$*: messages missing (log: $work/smrelayd.log)"
		s=$(elapsed "$t0" "$(now)")
		rates+=("$(rate "$M" "$s")")
		cpus+=("$(awk -v a="$c0" -v b="$(tree_cpu "$SMRELAYD_PID")" -v n="$M" \
			'BEGIN { printf "%.0f", (b - a) * 1e6 / n }')")
		echo "   round $r: $M messages in $s s, ${rates[-1]} msgs/s, ${cpus[-1]} us CPU/msg"
		stop_pid "$SINK_PID"
	done
	cp "$work/smrelayd.log" "$work/smrelayd-$1-$2-$3.log"
	stop_pid "$SMRELAYD_PID"
	RATE=$(printf '%s\n' "${rates[@]}" | median)
	CPU=$(printf '%s\n' "${cpus[@]}" | median)
}

# ------------------------------------------------------------- runs
declare -A res cpu why
echo "== scale: $M messages a run, $ROUNDS round(s), $SESSIONS sessions, $SIZE bytes, $NCPU CPUs, load $(loadavg)"
for db in $DBS; do
	inited=0
	for pr in $PROCS; do
		if ! can_run "$db" "$pr"; then
			why[$db/$pr]=$WHY
			echo "-- $db, processes = $pr: n/a ($WHY)"
			continue
		fi
		if [ $inited = 0 ]; then
			store_init "$db" || die "store setup ($db) failed"
			inited=1
		fi
		for mode in $MODES; do
			echo "-- $db, processes = $pr, $mode"
			conf "$db" 1
			set_rule "$mode"
			run "$db" "$pr" "$mode"
			res[$db/$pr/$mode]=$RATE
			cpu[$db/$pr/$mode]=$CPU
		done
	done
done

# ------------------------------------------------------------- results
{
	echo
	echo "== results (median of $ROUNDS; $M messages, $SESSIONS sessions, $SIZE bytes, $NCPU CPUs)"
	printf '| %-8s | %-9s | %-12s | %8s | %12s | %12s | %12s |\n' database processes mode "msgs/s" \
		"CPU us/msg" "vs 1 process" "pg vs sqlite"
	printf '|%s|%s|%s|%s|%s|%s|%s|\n' "----------" "-----------" "--------------" "----------" \
		"--------------" "--------------" "--------------"
	for db in $DBS; do
		for pr in $PROCS; do
			if [ -n "${why[$db/$pr]:-}" ]; then
				printf '| %-8s | %-9s | %-12s | %8s | %12s | %12s | %12s |\n' "$db" "$pr" "-" n/a - - -
				continue
			fi
			for mode in $MODES; do
				v=${res[$db/$pr/$mode]:-}
				one=${res[$db/1/$mode]:-}
				sq=${res[sqlite/$pr/$mode]:-}
				printf '| %-8s | %-9s | %-12s | %8s | %12s | %12s | %12s |\n' "$db" "$pr" "$mode" \
					"${v:-n/a}" "${cpu[$db/$pr/$mode]:-n/a}" \
					"$([ -n "$one" ] && [ -n "$v" ] && ratio "$v" "$one" || echo n/a)" \
					"$([ "$db" = pg ] && [ -n "$sq" ] && [ -n "$v" ] && ratio "$v" "$sq" || echo -)"
			done
		done
	done
	for k in "${!why[@]}"; do
		echo "n/a $k: ${why[$k]}"
	done
	echo "(auto = $NCPU processes here)"
} | tee "$work/results.txt"
