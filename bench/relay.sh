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
#   5. S/MIME    the same load as 2. from alice@example.com to
#                bob@partner.example, with a store holding a test PKI
#                (tests/smime/pki.sh) and one policy rule per run: sign,
#                encrypt, sign+encrypt, decrypt+verify (the same message
#                signed by alice and encrypted to bob beforehand with
#                openssl cms, sent with smtp-source -F) (and: no rule; sign
#                with an ECDSA P-256 key instead of RSA-2048, last).  Before
#                each timed run VERIFY_N messages go to `smrelayctl sink`
#                and every one must carry the expected S/MIME structure
#                (one is checked with openssl cms); a rule that silently
#                does not apply would otherwise measure pass-through.
#                Then: `openssl cms -sign`, one process per message, PROC_N
#                times on the same 4 KB message (serial, and nproc loops in
#                parallel), and `perf record` on smrelayd during a sign run
#                (PERF_M messages) for the share of the policy lookup.
#   8. processes MODE=processes: 2. and 5. with processes = 1, 2 and auto
#                (PROCESSES_LIST; PROCESSES=N sets it for any run; issue 18)
#   7. metrics   MODE=metrics runs only this: metrics_listen on (scraped
#                twice a second) against off (bench/relay_metrics.sh)
#   6. MX mode   MODE=mx runs only this: relay = mx to 20 signed domains
#                served by NSD against the same load to one fixed next hop
#                (bench/relay_mx.sh; MX_DOMAINS, MX_ROUNDS).
#   7. TLS mode  MODE=tls runs only this: STARTTLS from the client
#                (bench/smtp_tls_source, with session resumption) and to
#                the next hop against plain, 1 and 10 messages per
#                connection, and idle TLS connection memory
#                (bench/relay_tls.sh; TLS_M, TLS_ROUNDS, TLS_IDLE, TLS_PERF).
#
# Needs root (Postfix, ulimit -n), smtp-source/smtp-sink (postfix package),
# python3, openssl; perf for 5. (optional).  Environment: M (default 20000),
# SESSIONS (20), SIZE (4096), MEM_M (100000), IDLE_CONNS (2000), SMRELAYD
# (default: build in build-bench/ with the default -O2), SMRELAYCTL (next to
# SMRELAYD), SKIP_POSTFIX=1, SKIP_MEMORY=1, SKIP_SMIME=1, SMIME_M (M),
# VERIFY_N (100), PROC_N (200), PERF_M (SMIME_M / 2, 0 skips perf), PERF_HZ
# (499, the sampling rate), PERF_MODE (sign: the mode perf records; the
# policy share is reported for sign only), ports
# SINK_PORT (2700), RELAY_PORT (2601), POSTFIX_PORT (2600).  The default run
# takes a few minutes; everything is on 127.0.0.1.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
M=${M:-20000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
MEM_M=${MEM_M:-100000}
IDLE_CONNS=${IDLE_CONNS:-2000}
SMIME_M=${SMIME_M:-$M}
VERIFY_N=${VERIFY_N:-100}
PROC_N=${PROC_N:-200}
PERF_M=${PERF_M:-$((SMIME_M / 2))}
SINK_PORT=${SINK_PORT:-2700}
RELAY_PORT=${RELAY_PORT:-2601}
POSTFIX_PORT=${POSTFIX_PORT:-2600}
PEER_SCRIPT=${PEER_SCRIPT:-$root/../shared/peers/postfix-relay.sh}
HOLDCONNS=$root/tests/integration/py/holdconns.py
work=$(mktemp -d /tmp/smrelay-bench.XXXXXX)
chmod 755 "$work"   # smrelayd's network process (user smrelay) reaches data_dir
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
. "$(dirname "$0")/lib.sh"
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
# CPU seconds of a process so far (user + system), and of the machine
# (busy, idle) from /proc/stat, for "where did the two cores go".
# CPU seconds of this shell's reaped children (smtp-source in source_run).
child_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($16 + $17) / hz }' "/proc/$$/stat"; }
declare -A dcpu mbusy sinkcpu srccpu
# cpu_mark / cpu_done KEY: CPU seconds of smrelayd, smtp-sink and smtp-source
# and the machine's busy share over a run.
cpu_mark() {
	cpu0_d=$(daemon_cpu "$SMRELAYD_PID")
	cpu0_s=$(proc_cpu "$SINK_PID")
	read -r cpu0_b cpu0_i < <(machine_cpu)
}
cpu_done() {
	local d b i
	d=$(daemon_cpu "$SMRELAYD_PID")
	sinkcpu[$1]=$(awk -v a="$cpu0_s" -v b="$(proc_cpu "$SINK_PID")" 'BEGIN { printf "%.2f", b - a }')
	srccpu[$1]=$SRC_CPU
	read -r b i < <(machine_cpu)
	dcpu[$1]=$(awk -v a="$cpu0_d" -v b="$d" 'BEGIN { printf "%.2f", b - a }')
	mbusy[$1]=$(awk -v b0="$cpu0_b" -v i0="$cpu0_i" -v b="$b" -v i="$i" \
		'BEGIN { t = (b - b0) + (i - i0); printf "%.0f", (t > 0 ? 100 * (b - b0) / t : 0) }')
}
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }


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

bench_binaries
if [ "${SKIP_SMIME:-0}" != 1 ]; then
	[ -x "$SMRELAYCTL" ] || die "$SMRELAYCTL not found (SMRELAYCTL=...)"
	command -v openssl >/dev/null 2>&1 || die "openssl not installed"
fi

# The sink: smtp-sink with running counters (-c), no dump files.
start_sink() {
	local user=()
	[ "$(id -u)" = 0 ] && user=(-u nobody)
	smtp-sink "${user[@]}" -c -m 1000 "127.0.0.1:$SINK_PORT" 4096 >"$work/sink.out" 2>&1 &
	pids+=($!)
	SINK_PID=$!

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

# stop_pid PID: stop one of ours and forget it.
stop_pid() {
	local p keep=()
	kill -TERM "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	for p in "${pids[@]+"${pids[@]}"}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]+"${keep[@]}"}")
}

# start_smrelayd [DATA_DIR]
start_smrelayd() {
	write_conf "${1:-$work/data}"
	"$SMRELAYD" -c "$work/smrelayd.conf" -f >"$work/smrelayd.log" 2>&1 &
	pids+=($!)
	SMRELAYD_PID=$!
	wait_port "$RELAY_PORT" 15 || die "smrelayd did not start: $(tail -n 5 "$work/smrelayd.log")"
	# (a daemon from before the key process is one process)
	NET_PID=$(smrelayd_net "$SMRELAYD_PID") || NET_PID=$SMRELAYD_PID
}

write_conf() {
	mkdir -p "$1"
	cat >"$work/smrelayd.conf" <<EOF
listen = 127.0.0.1:$RELAY_PORT tls=none
hostname = bench.smrelay.test
relay = 127.0.0.1:$SINK_PORT
relay_tls = none
data_dir = $1
max_connections = $((IDLE_CONNS + 1000))
max_message_size = 52428800
log_level = warn
processes = ${PROCESSES:-1}
${SMRELAYD_EXTRA_CONF:-}
EOF
}

# source PORT COUNT: run smtp-source; prints seconds taken by smtp-source.
source_run() {
	local t0 t1 c0
	c0=$(child_cpu)
	t0=$(now)
	local file=(-l "$SIZE")
	[ -n "${SRC_FILE:-}" ] && file=(-F "$SRC_FILE")
	smtp-source -s "$SESSIONS" -m "$2" -f "${SRC_FROM:-bench@example.com}" \
		-t "${SRC_TO:-sink@example.net}" "${file[@]+"${file[@]}"}" \
		"127.0.0.1:$1" >"$work/source.out" 2>&1 || { echo "smtp-source failed: $(tail -n 3 "$work/source.out")" >&2; return 1; }
	t1=$(now)
	SRC_CPU=$(awk -v a="$c0" -v b="$(child_cpu)" 'BEGIN { printf "%.2f", b - a }')
	elapsed "$t0" "$t1"
}

declare -A secs

# MODE=processes: the pass-through and S/MIME runs (2. and 5.) once per
# value of PROCESSES_LIST (default "1 2 auto"), each a run of this script
# with PROCESSES set; the figures of each are in its output.
if [ "${MODE:-}" = processes ]; then
	for p in ${PROCESSES_LIST:-1 2 auto}; do
		echo "==== processes = $p"
		MODE= PROCESSES=$p SKIP_POSTFIX=1 SKIP_MEMORY=1 PERF_M=0 \
			bash "$0" || die "processes = $p: run failed"
	done
	exit 0
fi

# MODE=metrics: only metrics on against off (bench/relay_metrics.sh)
if [ "${MODE:-}" = metrics ]; then
	. "$root/bench/relay_metrics.sh"
	exit 0
fi

# MODE=mx: only the MX comparison (bench/relay_mx.sh)
if [ "${MODE:-}" = mx ]; then
	. "$root/bench/relay_mx.sh"
	exit 0
fi
# MODE=tls: only the TLS comparison (bench/relay_tls.sh)
if [ "${MODE:-}" = tls ]; then
	. "$root/bench/relay_tls.sh"
	exit 0
fi

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
cpu_mark
t0=$(now)
source_run "$RELAY_PORT" "$M" >/dev/null || die "smrelayd run failed (log: $work/smrelayd.log)"
wait_sink "$M" 120 || die "smrelayd: messages missing"
secs[smrelayd]=$(elapsed "$t0" "$(now)")
cpu_done smrelayd
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
if [ "${SKIP_MEMORY:-0}" != 1 ]; then
echo "== 4a. memory: $IDLE_CONNS idle inbound connections"
start_sink
start_smrelayd
smtp-source -m 10 -l "$SIZE" "127.0.0.1:$RELAY_PORT" >/dev/null 2>&1   # warm up
sleep 1
rss_idle0=$(rss_kb "$NET_PID")
python3 "$HOLDCONNS" --count "$IDLE_CONNS" --status "$work/hold.status" 127.0.0.1 "$RELAY_PORT" \
	>"$work/hold.out" 2>&1 &
pids+=($!)
hold_pid=$!
n=0
until [ -s "$work/hold.status" ] || [ $n -gt 1200 ]; do sleep 0.1; n=$((n + 1)); done
[ -s "$work/hold.status" ] || die "holdconns did not finish opening connections"
sleep 1
rss_idle1=$(rss_kb "$NET_PID")
hold_status=$(cat "$work/hold.status")
kill "$hold_pid" 2>/dev/null
per_conn=$(awk -v a="$rss_idle0" -v b="$rss_idle1" -v n="$IDLE_CONNS" 'BEGIN { printf "%.1f", (b - a) / n }')

echo "== 4b. memory: RSS before/after $MEM_M messages"
sleep 2
smtp-source -s "$SESSIONS" -m 1000 -l "$SIZE" "127.0.0.1:$RELAY_PORT" >/dev/null 2>&1   # warm up
rss_run0=$(rss_kb "$NET_PID")
t0=$(now)
source_run "$RELAY_PORT" "$MEM_M" >/dev/null || die "memory run failed"
mem_secs=$(elapsed "$t0" "$(now)")
sleep 2
rss_run1=$(rss_kb "$NET_PID")
stop_all
fi

# ------------------------------------------------------------- S/MIME
if [ "${SKIP_SMIME:-0}" != 1 ]; then
smime_data=$work/smime-data
pki=$work/pki
SRC_FROM=alice@example.com
SRC_TO=bob@partner.example
declare -A smime_secs smime_ok smime_warn

ctl() { "$SMRELAYCTL" -c "$work/smrelayd.conf" "$@"; }

# The first Content-Type of a message's header section, lower case.
toptype() {
	awk 'BEGIN { IGNORECASE = 1 } { sub(/\r$/, "") } /^$/ { exit }
	     tolower($0) ~ /^content-type:/ { v = tolower($0); sub(/^content-type:[ \t]*/, "", v);
	         sub(/;.*/, "", v); print v; exit }' "$1"
}

# start_capture DIR: smrelayctl sink (one Maildir file per message) on SINK_PORT.
start_capture() {
	"$SMRELAYCTL" sink --listen "127.0.0.1:$SINK_PORT" --maildir "$1" >"$work/capture.out" 2>&1 &
	pids+=($!)
	CAPTURE_PID=$!
	wait_port "$SINK_PORT" 10 || die "smrelayctl sink did not start: $(cat "$work/capture.out")"
}

# wait_files DIR N SECONDS
wait_files() {
	local n=0
	until [ "$(find "$1/new" -type f 2>/dev/null | wc -l)" -ge "$2" ]; do
		n=$((n + 1))
		[ $n -gt $(($3 * 10)) ] && return 1
		sleep 0.1
	done
}

# set_rule MODE: the store holds exactly the rule for MODE (none: no rule).
set_rule() {
	local id
	for id in $(ctl policy list | cut -f1); do
		ctl policy remove "$id" >/dev/null || die "policy remove $id failed"
	done
	case $1 in
	pass) ;;
	sign | sign-ec) ctl policy add --sender @example.com --action sign ;;
	encrypt) ctl policy add --recipient @partner.example --action encrypt ;;
	sign+encrypt) ctl policy add --sender @example.com --recipient @partner.example \
		--action sign,encrypt ;;
	decrypt+verify) ctl policy add --recipient @partner.example --action decrypt,verify ;;
	esac >/dev/null || die "policy add for $1 failed"
}

# verify_mode MODE: VERIFY_N messages through smrelayd into smrelayctl sink;
# every one must have the S/MIME structure MODE asks for, and one of them
# must verify / decrypt with openssl.  Sets smime_ok[MODE].
verify_mode() {
	local dir=$work/verify-$1 want f bad=0 total one chk file=(-l "$SIZE")
	rm -rf "$dir"
	start_capture "$dir"
	[ -n "${SRC_FILE:-}" ] && file=(-F "$SRC_FILE")
	smtp-source -s "$SESSIONS" -m "$VERIFY_N" -f "$SRC_FROM" -t "$SRC_TO" \
		"${file[@]+"${file[@]}"}" \
		"127.0.0.1:$RELAY_PORT" >"$work/source.out" 2>&1 || die "$1: verification run failed"
	wait_files "$dir" "$VERIFY_N" 30 || die "$1: only $(find "$dir/new" -type f | wc -l) of $VERIFY_N messages captured"
	stop_pid "$CAPTURE_PID"
	case $1 in
	pass) want=text/plain ;;
	sign | sign-ec | decrypt+verify) want=multipart/signed ;;
	*) want=application/pkcs7-mime ;;
	esac
	total=0
	for f in "$dir"/new/*; do
		total=$((total + 1))
		[ "$(toptype "$f")" = "$want" ] || { [ "$want" = text/plain ] && [ -z "$(toptype "$f")" ]; } ||
			bad=$((bad + 1))
	done
	one=$(find "$dir/new" -type f | head -n 1)
	case $1 in
	pass) chk=ok ;;
	sign | sign-ec) openssl cms -verify -CAfile "$pki/trust.pem" -in "$one" -out /dev/null \
		>/dev/null 2>&1 && chk="openssl cms -verify ok" || chk="openssl cms -verify FAILED" ;;
	encrypt) openssl cms -decrypt -recip "$pki/bob.pem" -inkey "$pki/bob.key" -in "$one" \
		-out "$dir/inner" >/dev/null 2>&1 && grep -q '^1XXXX' "$dir/inner" &&
		chk="openssl cms -decrypt ok" || chk="openssl cms -decrypt FAILED" ;;
	sign+encrypt) openssl cms -decrypt -recip "$pki/bob.pem" -inkey "$pki/bob.key" -in "$one" \
		-out "$dir/inner" >/dev/null 2>&1 && [ "$(toptype "$dir/inner")" = multipart/signed ] &&
		openssl cms -verify -CAfile "$pki/trust.pem" -in "$dir/inner" -out /dev/null >/dev/null 2>&1 &&
		chk="openssl cms -decrypt + -verify ok" || chk="openssl cms -decrypt + -verify FAILED" ;;
	decrypt+verify) grep -q -i '^Authentication-Results:.*smime=pass' "$one" &&
		chk="decrypted, Authentication-Results smime=pass" ||
		chk="no Authentication-Results smime=pass: FAILED" ;;
	esac
	smime_ok[$1]="$((total - bad))/$total $want; $chk"
	echo "   verification: ${smime_ok[$1]}"
	[ "$bad" = 0 ] && [ "$total" -ge "$VERIFY_N" ] && [ "${chk%FAILED}" = "$chk" ] ||
		die "$1: the sink did not get what the rule asks for (see $dir)"
}

echo "== 5. S/MIME through smrelayd ($SMIME_M messages, $SESSIONS sessions, $SIZE bytes, $SRC_FROM -> $SRC_TO)"
sh "$root/tests/smime/pki.sh" "$pki" >"$work/pki.out" 2>&1 || die "tests/smime/pki.sh failed"
write_conf "$smime_data"
ctl trust import "$pki/trust.pem" >/dev/null || die "trust import failed"
ctl key import "$pki/alice.p12" >/dev/null || die "key import failed"
ctl key import "$pki/bob.p12" >/dev/null || die "key import (bob) failed"
ctl cert import "$pki/bob.pem" >/dev/null || die "cert import failed"

# The 4 KB message exactly as smtp-source sends it, for the openssl loops.
start_capture "$work/msg"
smtp-source -m 1 -l "$SIZE" -f "$SRC_FROM" -t "$SRC_TO" "127.0.0.1:$SINK_PORT" >/dev/null 2>&1
wait_files "$work/msg" 1 10 || die "could not capture a message"
stop_pid "$CAPTURE_PID"
cp "$(find "$work/msg/new" -type f | head -n 1)" "$work/msg4k"
# For decrypt+verify: that message signed by alice and encrypted to bob, as
# a partner's gateway would send it (LF endings: smtp-source -F adds CR).
{
	printf 'From: alice@example.com\nTo: bob@partner.example\nSubject: inbound\n'
	openssl cms -sign -signer "$pki/alice.pem" -inkey "$pki/alice.key" \
		-certfile "$pki/chain.pem" -md sha256 -in "$work/msg4k" |
		openssl cms -encrypt -aes256 "$pki/bob.pem" | tr -d '\r'
} >"$work/msg-enc" || die "cannot make the signed and encrypted message"

smime_modes="pass sign encrypt sign+encrypt decrypt+verify sign-ec"
for mode in $smime_modes; do
	echo "-- $mode"
	SRC_FILE=
	[ "$mode" = decrypt+verify ] && SRC_FILE=$work/msg-enc
	if [ "$mode" = sign-ec ]; then
		# The same with alice's ECDSA P-256 key instead of RSA-2048.
		for id in $(ctl key list | cut -f1); do ctl key remove "$id" >/dev/null; done
		cat "$pki/alice-ec.pem" "$pki/alice-ec.key" "$pki/chain.pem" >"$work/alice-ec.both"
		ctl key import "$work/alice-ec.both" >/dev/null || die "key import (EC) failed"
	fi
	set_rule "$mode"
	start_smrelayd "$smime_data"
	verify_mode "$mode"
	start_sink
	cpu_mark
	t0=$(now)
	source_run "$RELAY_PORT" "$SMIME_M" >/dev/null || die "$mode run failed (log: $work/smrelayd.log)"
	wait_sink "$SMIME_M" 300 || die "$mode: messages missing"
	smime_secs[$mode]=$(elapsed "$t0" "$(now)")
	cpu_done "$mode"
	echo "   $SMIME_M messages in ${smime_secs[$mode]} s"
	if [ "$mode" = "${PERF_MODE:-sign}" ] && [ "$PERF_M" -gt 0 ] && command -v perf >/dev/null 2>&1; then
		# A separate, untimed run under perf (sampling costs a few per cent).
		perf record -F "${PERF_HZ:-499}" --call-graph dwarf,16384 -p "$NET_PID" -o "$work/perf-$mode.data" \
			>"$work/perf-record.out" 2>&1 &
		perf_pid=$!
		sleep 1
		source_run "$RELAY_PORT" "$PERF_M" >/dev/null || die "perf run failed"
		wait_sink $((SMIME_M + PERF_M)) 300 || die "perf run: messages missing"
		kill -INT "$perf_pid"
		wait "$perf_pid" 2>/dev/null
	fi
	smime_warn[$mode]=$(grep -c -i 'warn\|error' "$work/smrelayd.log")
	cp "$work/smrelayd.log" "$work/smrelayd-$mode.log"
	stop_all
done

# Process per message, as the small gateways do it: one openssl cms each.
proc_loop() {   # N
	local i
	for ((i = 0; i < $1; i++)); do
		openssl cms -sign -signer "$pki/alice.pem" -inkey "$pki/alice.key" \
			-certfile "$pki/chain.pem" -md sha256 -in "$work/msg4k" -out "$work/proc.$BASHPID" ||
			return 1
	done
}
echo "== 6. openssl cms -sign, one process per message ($PROC_N messages, $(wc -c <"$work/msg4k") bytes)"
t0=$(now)
proc_loop "$PROC_N" || die "openssl cms -sign failed"
proc_secs=$(elapsed "$t0" "$(now)")
ncpu=$(nproc)
t0=$(now)
for ((k = 0; k < ncpu; k++)); do proc_loop $((PROC_N / ncpu)) & done
wait
proc_par_secs=$(elapsed "$t0" "$(now)")
proc_par_n=$((PROC_N / ncpu * ncpu))
openssl cms -verify -CAfile "$pki/trust.pem" -in "$work/proc.$BASHPID" -out /dev/null >/dev/null 2>&1 ||
	die "the openssl loop's output does not verify"

# Share of the policy lookup in smrelayd's profile: rule matching, the
# per-recipient decision, the certificate cache and key look-ups (signing
# key, certificates).
# Sampled with DWARF call chains; a sample counts when any frame of its
# chain is one of these, so callees (mutexes, hashing, store queries on a
# cache miss) count too and nested ones count once.
policy_share=n/a
policy_re='pipeline_decide|policy_match|policy_pattern_match|match_kind|signer_for|with_entry|certcache_(cert_for|certs_of|trust|sync)|keys_(signing|decrypting)'
if [ -s "$work/perf-sign.data" ]; then
	perf report -i "$work/perf-sign.data" --no-children --sort dso,sym --stdio -g none \
		>"$work/perf-sign-self.txt" 2>/dev/null
	perf report -i "$work/perf-sign.data" --children --sort sym --stdio -g none \
		>"$work/perf-sign-children.txt" 2>/dev/null
	perf script -i "$work/perf-sign.data" -F ip,sym 2>/dev/null >"$work/perf-sign.script"
	read -r perf_samples perf_policy policy_share < <(awk -v re="$policy_re" 'BEGIN { RS = "" }
		{ n++; for (i = 1; i <= NF; i++) if ($i ~ "^(" re ")$") { m++; break } }
		END { printf "%d %d %.2f%%\n", n, m, n ? 100 * m / n : 0 }' "$work/perf-sign.script")
	# Coarse split: the first category (in this order) any frame falls in;
	# libcrypto's stripped bignum code (0x129000-0x12afff) counts as RSA.
	awk 'BEGIN { RS = "" }
	{ n++; c = "other"
	  if ($0 ~ /RSA_sign|BN_mod_exp|ecdsa|ECDSA|[^0-9a-f]12[9a][0-9a-f][0-9a-f][0-9a-f] /) c = "private-key operation (RSA bignum / ECDSA)"
	  else if ($0 ~ /mime_smime_detect/) c = "mime_smime_detect (already-S/MIME check)"
	  else if ($0 ~ /mime_canon|mime_parse|canon_part|mime_assemble/) c = "MIME canonicalisation"
	  else if ($0 ~ /smime_write_b64/) c = "base64 of the signature"
	  else if ($0 ~ /smime_sign|CMS_|smime_msg_sign/) c = "rest of CMS signing (SHA-256, ASN.1, certs)"
	  else if ($0 ~ /pipeline_transform|job_run|msgbuf_slurp/) c = "transform glue (copies, trace header)"
	  else if ($0 ~ /worker_main|workers_/) c = "worker pool (locks, wake pipe)"
	  else if ($0 ~ /event_base_loop/) c = "event loop: SMTP in and out, TCP"
	  k[c]++ }
	END { for (c in k) printf "%6.2f %%  %s\n", 100 * k[c] / n, c }' "$work/perf-sign.script" |
		sort -rn >"$work/perf-sign.split"
fi
fi

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
	if [ "${SKIP_MEMORY:-0}" != 1 ]; then
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
	fi
	if [ "${SKIP_SMIME:-0}" != 1 ]; then
		pt=$(rate "$M" "${secs[smrelayd]}")
		echo
		echo "S/MIME: smtp-source -s $SESSIONS -m $SMIME_M -l $SIZE -f $SRC_FROM -t $SRC_TO through smrelayd;"
		echo "store: tests/smime/pki.sh trust.pem, alice.p12 (RSA-2048; sign-ec: alice-ec, P-256), bob.pem; one rule per run;"
		echo "$(openssl version); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo
		permsg() { awk -v c="$1" -v n="$2" 'BEGIN { printf "%.3f", 1000 * c / n }'; }
		printf '| %-34s | %8s | %8s | %8s | %8s | %12s | %12s | %12s | %9s |\n' run messages seconds "msgs/s" "vs run 2" \
			"smrelayd CPU" "smtp-sink" "smtp-source" "machine"
		printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "------------------------------------" "----------" "----------" "----------" "----------" \
			"--------------" "--------------" "--------------" "-----------"
		printf '| %-34s | %8s | %8s | %8s | %8s | %9s ms | %9s ms | %9s ms | %7s %% |\n' "run 2: pass-through (bench->sink)" "$M" "${secs[smrelayd]}" "$pt" 1.00 \
			"$(permsg "${dcpu[smrelayd]}" "$M")" "$(permsg "${sinkcpu[smrelayd]}" "$M")" "$(permsg "${srccpu[smrelayd]}" "$M")" "${mbusy[smrelayd]}"
		for k in $smime_modes; do
			case $k in
			sign-ec) name="sign, ECDSA P-256 key (not RSA)" ;;
			pass) name="no rule (store loaded)" ;;
			sign) name="sign (--sender @example.com)" ;;
			encrypt) name="encrypt (--recipient @partner..)" ;;
			sign+encrypt) name="sign,encrypt" ;;
			decrypt+verify) name="decrypt,verify (inbound)" ;;
			esac
			printf '| %-34s | %8s | %8s | %8s | %8s | %9s ms | %9s ms | %9s ms | %7s %% |\n' "$name" "$SMIME_M" "${smime_secs[$k]}" \
				"$(rate "$SMIME_M" "${smime_secs[$k]}")" \
				"$(ratio "$(rate "$SMIME_M" "${smime_secs[$k]}")" "$pt")" \
				"$(permsg "${dcpu[$k]}" "$SMIME_M")" "$(permsg "${sinkcpu[$k]}" "$SMIME_M")" \
				"$(permsg "${srccpu[$k]}" "$SMIME_M")" "${mbusy[$k]}"
		done
		echo "(CPU: user + system per message over the timed run; machine: busy share of all $(nproc) CPUs, other load included)"
		# What the rates would be with the CPUs to ourselves: nproc CPU-seconds
		# over the CPU that smrelayd, smtp-sink and smtp-source spent per message.
		cpurate() { awk -v a="$1" -v b="$2" -v c="$3" -v n="$4" -v p="$(nproc)" 'BEGIN { printf "%.0f", p * n / (a + b + c) }'; }
		pt_cpu=$(cpurate "${dcpu[smrelayd]}" "${sinkcpu[smrelayd]}" "${srccpu[smrelayd]}" "$M")
		echo
		echo "CPU-bound estimate ($(nproc) CPUs / CPU per message of smrelayd + smtp-sink + smtp-source; other load left out):"
		printf '  %-28s %6s msgs/s\n' "pass-through (run 2):" "$pt_cpu"
		for k in $smime_modes; do
			r=$(cpurate "${dcpu[$k]}" "${sinkcpu[$k]}" "${srccpu[$k]}" "$SMIME_M")
			[ "$k" = sign ] && sg_cpu=$r
			[ "$k" = sign+encrypt ] && se_cpu=$r
			printf '  %-28s %6s msgs/s  %s x pass-through\n' "$k:" "$r" "$(ratio "$r" "$pt_cpu")"
		done
		echo
		echo "checked at the sink before each timed run ($VERIFY_N messages through smrelayctl sink):"
		for k in $smime_modes; do
			printf '  %-13s %s\n' "$k:" "${smime_ok[$k]}"
		done
		echo
		printf '| %-44s | %8s | %8s | %8s |\n' "openssl cms -sign, process per message" messages seconds "msgs/s"
		printf '|%s|%s|%s|%s|\n' "----------------------------------------------" "----------" "----------" "----------"
		printf '| %-44s | %8s | %8s | %8s |\n' "one loop" "$PROC_N" "$proc_secs" "$(rate "$PROC_N" "$proc_secs")"
		printf '| %-44s | %8s | %8s | %8s |\n' "$ncpu loops in parallel" "$proc_par_n" "$proc_par_secs" "$(rate "$proc_par_n" "$proc_par_secs")"
		sg=$(rate "$SMIME_M" "${smime_secs[sign]}")
		se=$(rate "$SMIME_M" "${smime_secs[sign+encrypt]}")
		pl=$(rate "$PROC_N" "$proc_secs")
		pp=$(rate "$proc_par_n" "$proc_par_secs")
		met() { awk -v a="$1" -v b="$2" 'BEGIN { print (a >= b ? "yes" : "NO") }'; }
		echo
		printf '| %-52s | %10s | %6s | %4s |\n' target measured ratio met
		printf '|%s|%s|%s|%s|\n' "------------------------------------------------------" "------------" "--------" "------"
		printf '| %-52s | %10s | %6s | %4s |\n' "sign >= 0.50 x pass-through (run 2, $pt/s)" "$sg/s" "$(ratio "$sg" "$pt")" "$(met "$(ratio "$sg" "$pt")" 0.5)"
		printf '| %-52s | %10s | %6s | %4s |\n' "  the same, CPU-bound estimate ($pt_cpu/s)" "$sg_cpu/s" "$(ratio "$sg_cpu" "$pt_cpu")" "$(met "$(ratio "$sg_cpu" "$pt_cpu")" 0.5)"
		printf '| %-52s | %10s | %6s | %4s |\n' "sign+encrypt >= 0.40 x pass-through ($pt/s)" "$se/s" "$(ratio "$se" "$pt")" "$(met "$(ratio "$se" "$pt")" 0.4)"
		printf '| %-52s | %10s | %6s | %4s |\n' "  the same, CPU-bound estimate ($pt_cpu/s)" "$se_cpu/s" "$(ratio "$se_cpu" "$pt_cpu")" "$(met "$(ratio "$se_cpu" "$pt_cpu")" 0.4)"
		printf '| %-52s | %10s | %6s | %4s |\n' "sign >= 10 x openssl process per message ($pl/s)" "$sg/s" "$(ratio "$sg" "$pl")" "$(met "$(ratio "$sg" "$pl")" 10)"
		printf '| %-52s | %10s | %6s | %4s |\n' "  the same, vs $ncpu parallel loops ($pp/s)" "$sg/s" "$(ratio "$sg" "$pp")" "$(met "$(ratio "$sg" "$pp")" 10)"
		printf '| %-52s | %10s | %6s | %4s |\n' "policy lookup < 2 % of smrelayd CPU (perf, sign)" "$policy_share" "" \
			"$(awk -v s="${policy_share%%%*}" 'BEGIN { print (s == "n/a" ? "?" : (s + 0 < 2 ? "yes" : "NO")) }')"
		echo
		[ -n "${perf_samples:-}" ] && echo "policy lookup: $perf_policy of $perf_samples perf samples of smrelayd (PERF_M=$PERF_M sign run, 499 Hz, DWARF call chains)"
		if [ -n "${perf_samples:-}" ]; then
			echo
			echo "where smrelayd's CPU goes in the sign run (perf samples by outermost matching frame):"
			sed 's/^/  /' "$work/perf-sign.split"
		fi
		echo
		printf 'smrelayd log lines at warn or above:'
		for k in $smime_modes; do printf ' %s %s' "$k" "${smime_warn[$k]}"; done
		echo
	fi
} | tee "$work/results.txt"
