# shellcheck shell=bash
# bench/relay_tls.sh: TLS mode of bench/relay.sh (MODE=tls bash bench/relay.sh),
# sourced by it after its helpers are defined.
#
# The load comes from bench/smtp_tls_source (smtp-source cannot do TLS):
# TLS_M messages of SIZE bytes over SESSIONS concurrent connections, with 1
# and with 10 messages per connection.  The next hop is `smrelayctl sink`
# with a certificate (it offers STARTTLS and session tickets), Maildir on
# /dev/shm.  Both certificates are ECDSA P-256, self-signed.  Per round and
# per messages-per-connection, one after the other on fresh daemons:
#   plain   client without TLS, relay_tls = none
#   tls     client STARTTLS, resuming the latest session (tickets), and
#           relay_tls = may (the next hop's session resumed as well)
#   full    the same without inbound resumption (client -R): every inbound
#           handshake full, one trip to the key process each
# TLS_ROUNDS (3) rounds; the table gives every run and the median ratio of
# tls to plain.  Then the memory of TLS_IDLE (200) idle TLS connections
# (STARTTLS and EHLO done, tests/integration/py/holdconns.py --starttls):
# VmRSS growth of the network process / TLS_IDLE.  With perf installed and
# TLS_PERF=1, a separate run of the tls case (1 message per connection)
# under perf record for where the network process's CPU goes.
# Targets (issue 15): tls >= 0.5 x plain; idle TLS connection <= 64 KiB.

TLS_M=${TLS_M:-5000}
TLS_ROUNDS=${TLS_ROUNDS:-3}
TLS_IDLE=${TLS_IDLE:-200}
TLS_SOURCE=${TLS_SOURCE:-$(dirname "$SMRELAYD")/bench/smtp_tls_source}
[ -x "$TLS_SOURCE" ] || die "$TLS_SOURCE not found (make in the build directory, or TLS_SOURCE=...)"

echo "== 7. TLS mode: $TLS_M messages, $SESSIONS connections, $SIZE bytes, $TLS_ROUNDS rounds"
pki=$work/tls-pki
mkdir -p "$pki"
for n in relay sink; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$pki/$n.key" -out "$pki/$n.pem" -days 2 -subj "/CN=$n.bench.test" \
		>/dev/null 2>&1 || die "cannot make a certificate"
done
chmod 755 "$pki"
chmod 644 "$pki"/*
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=$work
sinkdir=$(mktemp -d "$shm/smrelay-bench-sink.XXXXXX")
chmod 777 "$sinkdir"
trap 'cleanup; rm -rf "$sinkdir"; echo "work directory: $work"' EXIT

# tls_conf plain|tls: smrelayd's config (STARTTLS offered in both).
tls_conf() {
	mkdir -p "$work/tls-data"
	cat >"$work/smrelayd.conf" <<EOF
listen = 127.0.0.1:$RELAY_PORT tls=starttls
hostname = bench.smrelay.test
tls_cert_file = $pki/relay.pem
tls_key_file = $pki/relay.key
relay = 127.0.0.1:$SINK_PORT
relay_tls = $([ "$1" = plain ] && echo none || echo may)
data_dir = $work/tls-data
max_connections = $((TLS_IDLE + 1000))
log_level = warn
EOF
}

start_tls_sink() {
	rm -rf "$sinkdir/new" "$sinkdir/cur" "$sinkdir/tmp"
	"$SMRELAYCTL" sink --listen "127.0.0.1:$SINK_PORT" --maildir "$sinkdir" \
		--tls-cert "$pki/sink.pem" --tls-key "$pki/sink.key" >"$work/tls-sink.out" 2>&1 &
	pids+=($!)
	SINK_PID=$!
	wait_port "$SINK_PORT" 10 || die "smrelayctl sink did not start: $(cat "$work/tls-sink.out")"
}

start_tls_relay() {   # plain|tls
	tls_conf "$1"
	"$SMRELAYD" -c "$work/smrelayd.conf" -f >"$work/smrelayd.log" 2>&1 &
	pids+=($!)
	SMRELAYD_PID=$!
	wait_port "$RELAY_PORT" 15 || die "smrelayd did not start: $(tail -n 5 "$work/smrelayd.log")"
	NET_PID=$(smrelayd_net "$SMRELAYD_PID") || NET_PID=$SMRELAYD_PID
	KEYD_PID=$(smrelayd_child "$SMRELAYD_PID" smrelayd-keyd)
}

# CPU seconds of the network and key processes so far.
tls_cpu() {
	awk -v a="$(proc_cpu "$NET_PID")" -v b="$(proc_cpu "${KEYD_PID:-$NET_PID}")" \
		-v k="${KEYD_PID:+1}" 'BEGIN { printf "%.2f", a + (k ? b : 0) }'
}

# tls_run CASE PER_CONN: one timed run on fresh processes; sets tls_rate,
# tls_resumed, tls_dcpu (smrelayd CPU ms per message), tls_scpu (client).
tls_run() {
	local opts=() out got c0 c1
	case $1 in
	tls) opts=(-T) ;;
	full) opts=(-T -R) ;;
	esac
	start_tls_sink
	start_tls_relay "$([ "$1" = plain ] && echo plain || echo tls)"
	# warm up: the key process, the next hop's connections and sessions
	"$TLS_SOURCE" "${opts[@]+"${opts[@]}"}" -n 40 -c 4 -m 1 -s "$SIZE" \
		"127.0.0.1:$RELAY_PORT" >/dev/null || die "$1: warm-up failed (log: $work/smrelayd.log)"
	c0=$(tls_cpu)
	out=$("$TLS_SOURCE" "${opts[@]+"${opts[@]}"}" -n "$TLS_M" -c "$SESSIONS" -m "$2" -s "$SIZE" \
		"127.0.0.1:$RELAY_PORT") || die "$1 -m $2 failed: $out (log: $work/smrelayd.log)"
	c1=$(tls_cpu)
	got=$(find "$sinkdir/new" -type f | wc -l)
	[ "$got" -ge $((TLS_M + 40)) ] || die "$1 -m $2: only $got of $((TLS_M + 40)) messages at the sink"
	tls_rate=$(sed 's/.* rate=\([0-9]*\).*/\1/' <<<"$out")
	tls_resumed=$(sed 's/.* resumed=\([0-9]*\/[0-9]*\).*/\1/' <<<"$out")
	tls_scpu=$(sed 's/.* cpu=\([0-9.]*\).*/\1/' <<<"$out")
	tls_dcpu=$(awk -v a="$c0" -v b="$c1" -v n="$TLS_M" 'BEGIN { printf "%.3f", 1000 * (b - a) / n }')
	tls_out_resumed=$(grep -c 'tls=established .*resumed=yes' "$work/smrelayd.log")
	stop_all
}

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

declare -A tls_rates
tls_rows=()
for per in 1 10; do
	for ((r = 1; r <= TLS_ROUNDS; r++)); do
		for c in plain tls full; do
			tls_run "$c" "$per"
			tls_rates[$c-$per]="${tls_rates[$c-$per]:-} $tls_rate"
			tls_rows+=("$(printf '| %5s | %3s | %5s | %8s | %9s | %9s ms | %9s ms |' \
				"$c" "$per" "$r" "$tls_rate" "$tls_resumed" "$tls_dcpu" \
				"$(awk -v c="$tls_scpu" -v n="$TLS_M" 'BEGIN { printf "%.3f", 1000 * c / n }')")")
			echo "   $c, $per per connection, round $r: $tls_rate msgs/s, resumed $tls_resumed"
		done
	done
done

echo "== 7b. memory: $TLS_IDLE idle TLS connections"
start_tls_sink
start_tls_relay tls
"$TLS_SOURCE" -T -n 20 -c 2 -m 1 -s "$SIZE" "127.0.0.1:$RELAY_PORT" >/dev/null || die "warm-up failed"
sleep 1
idle_rss0=$(rss_kb "$NET_PID")
python3 "$HOLDCONNS" --starttls --count "$TLS_IDLE" --status "$work/tls-hold.status" \
	127.0.0.1 "$RELAY_PORT" >"$work/tls-hold.out" 2>&1 &
pids+=($!)
hold_pid=$!
n=0
until [ -s "$work/tls-hold.status" ] || [ $n -gt 1200 ]; do sleep 0.1; n=$((n + 1)); done
[ -s "$work/tls-hold.status" ] || die "holdconns did not finish opening connections"
sleep 1
idle_rss1=$(rss_kb "$NET_PID")
idle_status=$(cat "$work/tls-hold.status")
kill "$hold_pid" 2>/dev/null
idle_per=$(awk -v a="$idle_rss0" -v b="$idle_rss1" -v n="$TLS_IDLE" 'BEGIN { printf "%.1f", (b - a) / n }')
stop_all

if [ "${TLS_PERF:-0}" = 1 ] && command -v perf >/dev/null 2>&1; then
	echo "== 7c. perf: the tls case, 1 message per connection"
	start_tls_sink
	start_tls_relay tls
	"$TLS_SOURCE" -T -n 40 -c 4 -m 1 -s "$SIZE" "127.0.0.1:$RELAY_PORT" >/dev/null
	perf record -F 999 -g -p "$NET_PID" -o "$work/perf-tls.data" >"$work/perf-tls.out" 2>&1 &
	perf_pid=$!
	sleep 1
	"$TLS_SOURCE" -T -n "$TLS_M" -c "$SESSIONS" -m 1 -s "$SIZE" "127.0.0.1:$RELAY_PORT" >/dev/null
	kill -INT "$perf_pid"
	wait "$perf_pid" 2>/dev/null
	perf report -i "$work/perf-tls.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
		grep -v '^#' | grep -v '^$' | head -n 25 >"$work/perf-tls.txt"
	stop_all
fi

{
	echo
	echo "smrelay TLS relay benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPU(s), $(uname -r), $(openssl version)"
	echo "bench/smtp_tls_source -n $TLS_M -c $SESSIONS -m 1|10 -s $SIZE [-T [-R]] -> smrelayd$(cd "$root" && git describe --always --dirty 2>/dev/null | sed 's/^/ at /') -> smrelayctl sink --tls-cert (Maildir on $shm)"
	echo "load average at the end: $(loadavg)"
	echo
	printf '| %5s | %3s | %5s | %8s | %9s | %12s | %12s |\n' case m/c round "msgs/s" resumed "smrelayd CPU" "client CPU"
	printf '|%s|%s|%s|%s|%s|%s|%s|\n' "-------" "-----" "-------" "----------" "-----------" "--------------" "--------------"
	printf '%s\n' "${tls_rows[@]}"
	echo
	printf '| %-44s | %8s | %8s | %6s | %4s |\n' "median of $TLS_ROUNDS rounds" plain tls ratio met
	printf '|%s|%s|%s|%s|%s|\n' "----------------------------------------------" "----------" "----------" "--------" "------"
	for per in 1 10; do
		p=$(median <<<"${tls_rates[plain-$per]}")
		t=$(median <<<"${tls_rates[tls-$per]}")
		f=$(median <<<"${tls_rates[full-$per]}")
		printf '| %-44s | %8s | %8s | %6s | %4s |\n' "TLS both legs, resumed, $per msg/connection" "$p" "$t" \
			"$(ratio "$t" "$p")" "$(awk -v r="$(ratio "$t" "$p")" 'BEGIN { print (r >= 0.5 ? "yes" : "NO") }')"
		printf '| %-44s | %8s | %8s | %6s | %4s |\n' "  without inbound resumption (-R)" "$p" "$f" "$(ratio "$f" "$p")" ""
	done
	echo
	echo "idle TLS connections: RSS $idle_rss0 -> $idle_rss1 KiB over $TLS_IDLE: $idle_per KiB each (target <= 64); holdconns: $idle_status"
	if [ -s "$work/perf-tls.txt" ]; then
		echo
		echo "perf (network process, tls case, 1 msg/connection, self time):"
		sed 's/^/  /' "$work/perf-tls.txt"
	fi
} | tee "$work/results-tls.txt"
