# shellcheck shell=bash
# bench/relay_mx.sh: MX mode of bench/relay.sh (MODE=mx bash bench/relay.sh),
# sourced by it after its helpers are defined.
#
# NSD (tests/dns/nsd.sh) serves MX_DOMAINS (20) signed zones d1.example ...
# dN.example, each "MX 10 mx" with mx at 127.0.0.1; smtp-sink listens on
# 127.0.0.1:SINK_PORT.  The same load goes through smrelayd two ways, in
# MX_ROUNDS (3) alternating rounds:
#   fixed  relay = 127.0.0.1:SINK_PORT (one next hop for every domain)
#   mx     relay = mx, relay_mx_port = SINK_PORT, dns_resolver = NSD, the
#          zones' DS records as trust anchors: 20 destinations, each looked
#          up and validated, each with its own connections
# The load: one smtp-source per domain at once (-s 1 each, MX_DOMAINS
# sessions in all), M messages in all, SIZE bytes, to user@dN.example.
# Before each timed run one message per domain warms the caches (DNS and
# connections).  Rates are messages per second until smtp-sink counted
# them all (medians of the rounds); smrelayd's CPU per message beside.
# Target (issue 14): mx >= 0.9 x fixed once the cache is warm.

MX_DOMAINS=${MX_DOMAINS:-20}
MX_ROUNDS=${MX_ROUNDS:-3}
. "$root/tests/dns/nsd.sh"
nsd_have || die "nsd or ldnsutils not installed (bash contrib/install-deps.sh)"

echo "== 6. MX mode: $MX_DOMAINS domains through NSD, $M messages, $SIZE bytes"
nsd_init "$work/nsd" || die "nsd_init"
for ((i = 1; i <= MX_DOMAINS; i++)); do
	nsd_zone "d$i.example" <<'EOF' || die "zone d$i"
@ IN MX 10 mx
mx IN A 127.0.0.1
EOF
	nsd_sign "d$i.example" >/dev/null || die "signing d$i.example"
done
nsd_start || die "nsd did not start"
chmod 755 "$NSD_DIR"
chmod 644 "$NSD_TA"
trap 'nsd_stop; cleanup; echo "work directory: $work"' EXIT

# write_conf_mode fixed|mx DATA_DIR
write_conf_mode() {
	mkdir -p "$2"
	{
		echo "listen = 127.0.0.1:$RELAY_PORT tls=none"
		echo "hostname = bench.smrelay.test"
		if [ "$1" = mx ]; then
			echo "relay = mx"
			echo "relay_mx_port = $SINK_PORT"
			echo "dns_resolver = $NSD_ADDR"
			echo "dns_trust_anchor = $NSD_TA"
		else
			echo "relay = 127.0.0.1:$SINK_PORT"
		fi
		echo "relay_tls = none"
		echo "data_dir = $2"
		echo "max_connections = 1000"
		echo "log_level = warn"
	} >"$work/smrelayd.conf"
}

# mx_load N: N messages spread over the domains, one smtp-source each, at
# once; returns when every smtp-source is done.
mx_load() {
	local i per=$(($1 / MX_DOMAINS)) rest=$(($1 % MX_DOMAINS)) n srcs=()
	for ((i = 1; i <= MX_DOMAINS; i++)); do
		n=$per
		[ "$i" -le "$rest" ] && n=$((n + 1))
		[ "$n" -gt 0 ] || continue
		smtp-source -s 1 -m "$n" -l "$SIZE" -f bench@example.com \
			-t "user$i@d$i.example" "127.0.0.1:$RELAY_PORT" \
			>"$work/source.$i.out" 2>&1 &
		srcs+=($!)
	done
	for i in "${srcs[@]}"; do
		wait "$i" || { echo "smtp-source failed: $(tail -n 3 "$work"/source.*.out)" >&2; return 1; }
	done
}

declare -A mxr mxc
# mx_run MODE: one timed run of MODE (fixed or mx)
mx_run() {
	local t0 c0 c1 s
	start_sink
	write_conf_mode "$1" "$work/data-$1"
	"$SMRELAYD" -c "$work/smrelayd.conf" -f >"$work/smrelayd.log" 2>&1 &
	pids+=($!)
	SMRELAYD_PID=$!
	wait_port "$RELAY_PORT" 15 || die "smrelayd did not start: $(tail -n 5 "$work/smrelayd.log")"
	mx_load "$MX_DOMAINS" || die "$1: warm-up failed"
	wait_sink "$MX_DOMAINS" 60 || die "$1: warm-up messages missing (log: $work/smrelayd.log)"
	c0=$(daemon_cpu "$SMRELAYD_PID")
	t0=$(now)
	mx_load "$M" || die "$1: run failed (log: $work/smrelayd.log)"
	wait_sink $((M + MX_DOMAINS)) 300 || die "$1: messages missing (log: $work/smrelayd.log)"
	s=$(elapsed "$t0" "$(now)")
	c1=$(daemon_cpu "$SMRELAYD_PID")
	mxr[$1]="${mxr[$1]:-} $(rate "$M" "$s")"
	mxc[$1]="${mxc[$1]:-} $(awk -v a="$c0" -v b="$c1" -v n="$M" 'BEGIN { printf "%.3f", 1000 * (b - a) / n }')"
	echo "   $1: $M messages in $s s ($(rate "$M" "$s")/s)"
	[ "$("$SMRELAYCTL" -c "$work/smrelayd.conf" queue list 2>/dev/null | wc -l)" -eq 0 ] ||
		die "$1: messages were queued (log: $work/smrelayd.log)"
	stop_all        # smtp-sink and smrelayd; NSD stays
}
median() { echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for ((r = 0; r < MX_ROUNDS; r++)); do
	if [ $((r % 2)) = 0 ]; then order="fixed mx"; else order="mx fixed"; fi
	for m in $order; do
		echo "== 6. round $((r + 1))/$MX_ROUNDS: $m"
		mx_run "$m"
	done
done

fr=$(median ${mxr[fixed]})
mr=$(median ${mxr[mx]})
{
	echo
	echo "smrelay relay benchmark, MX mode, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPU(s)"
	echo "smrelay at $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'); load average at the end: $(loadavg)"
	echo "$MX_DOMAINS domains (signed zones on NSD), one smtp-source -s 1 per domain, $M messages of $SIZE bytes"
	echo "medians of $MX_ROUNDS alternating rounds (rates per round: fixed${mxr[fixed]}; mx${mxr[mx]})"
	echo
	printf '| %-28s | %10s | %22s |\n' "relay" "msgs/s" "smrelayd CPU per msg"
	printf '|%s|%s|%s|\n' "------------------------------" "------------" "------------------------"
	printf '| %-28s | %10s | %19s ms |\n' "fixed next hop" "$fr" "$(median ${mxc[fixed]})"
	printf '| %-28s | %10s | %19s ms |\n' "relay = mx (20 destinations)" "$mr" "$(median ${mxc[mx]})"
	echo
	r=$(ratio "$mr" "$fr")
	met=$(awk -v r="$r" 'BEGIN { print (r >= 0.9) ? "yes" : "NO" }')
	echo "target: mx >= 0.9 x fixed: $r ($met)"
} | tee "$work/results-mx.txt"
