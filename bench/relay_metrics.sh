# shellcheck shell=bash
# bench/relay_metrics.sh: what metrics cost (MODE=metrics bash bench/relay.sh),
# sourced by bench/relay.sh after its helpers are defined.
#
# Run 2 of relay.sh (smtp-source -s SESSIONS -m M -l SIZE -> smrelayd ->
# smtp-sink) in METRICS_ROUNDS (5) rounds, each round both ways, the order
# swapped every round:
#   off  no metrics_listen
#   on   metrics_listen = 127.0.0.1:METRICS_PORT (2602), and a scraper
#        asking GET /metrics every METRICS_EVERY (0.5) seconds all along
# The counters are compiled in either way (relaxed atomic increments on the
# hot path); "on" adds the HTTP listener and the renderings.  Rates are
# messages per second until smtp-sink counted them all, beside smrelayd's
# CPU time per message (steadier on a busy machine); the summary gives the
# median of each and on / off.  Target (issue 17): under 2 % apart.

METRICS_ROUNDS=${METRICS_ROUNDS:-5}
METRICS_PORT=${METRICS_PORT:-2602}
METRICS_EVERY=${METRICS_EVERY:-0.5}
listening "$METRICS_PORT" && die "port $METRICS_PORT is in use"

# metrics_run off|on: one timed run; prints its rate.
metrics_run() {
	local t0 s c0 scraper=""
	start_sink
	if [ "$1" = on ]; then
		SMRELAYD_EXTRA_CONF="metrics_listen = 127.0.0.1:$METRICS_PORT"
	else
		SMRELAYD_EXTRA_CONF=""
	fi
	start_smrelayd
	if [ "$1" = on ]; then
		wait_port "$METRICS_PORT" 15 || die "metrics_listen not listening"
		python3 - "$METRICS_PORT" "$METRICS_EVERY" >"$work/scraper.out" 2>&1 <<'PY' &
import sys, time, urllib.request
url = "http://127.0.0.1:%s/metrics" % sys.argv[1]
n = 0
while True:
    with urllib.request.urlopen(url, timeout=5) as r:
        r.read()
    n += 1
    print(n, flush=True)
    time.sleep(float(sys.argv[2]))
PY
		scraper=$!
		pids+=("$scraper")
	fi
	smtp-source -m 200 -l "$SIZE" "127.0.0.1:$RELAY_PORT" >/dev/null 2>&1   # warm up
	wait_sink 200 30 || die "warm-up messages missing"
	c0=$(daemon_cpu "$SMRELAYD_PID")
	t0=$(now)
	source_run "$RELAY_PORT" "$M" >/dev/null || die "run $1 failed (log: $work/smrelayd.log)"
	wait_sink $((M + 200)) 120 || die "$1: messages missing"
	s=$(elapsed "$t0" "$(now)")
	# smrelayd's CPU per message (all its processes), in microseconds
	cpu_us=$(awk -v a="$c0" -v b="$(daemon_cpu "$SMRELAYD_PID")" -v n="$M" \
		'BEGIN { printf "%.0f", (b - a) * 1e6 / n }')
	if [ -n "$scraper" ]; then
		SCRAPES=$(tail -n 1 "$work/scraper.out")
		kill -0 "$scraper" 2>/dev/null || die "the scraper failed: $(tail -n 2 "$work/scraper.out")"
	fi
	stop_all
	echo "$(rate "$M" "$s") $cpu_us"
}

# median of the positive values (a failed CPU reading is 0: left out)
median() { sort -n | awk '$1 > 0 { v[++n] = $1 } END { print (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2) }'; }

echo "== 7. metrics: $METRICS_ROUNDS rounds of $M messages, $SESSIONS sessions, $SIZE bytes; off / on (scrapes every $METRICS_EVERY s)"
offs=() ons=() coffs=() cons=()
for ((r = 1; r <= METRICS_ROUNDS; r++)); do
	if [ $((r % 2)) = 1 ]; then order="off on"; else order="on off"; fi
	for way in $order; do
		read -r v c < <(metrics_run "$way")
		if [ "$way" = on ]; then ons+=("$v"); cons+=("$c"); else offs+=("$v"); coffs+=("$c"); fi
		printf 'round %d %-3s %6s msg/s %6s us CPU/msg\n' "$r" "$way" "$v" "$c"
	done
done
moff=$(printf '%s\n' "${offs[@]}" | median)
mon=$(printf '%s\n' "${ons[@]}" | median)
printf 'median rate: off %s msg/s, on %s msg/s, on/off %s\n' "$moff" "$mon" \
	"$(awk -v a="$mon" -v b="$moff" 'BEGIN { printf "%.3f", a / b }')"
moff=$(printf '%s\n' "${coffs[@]}" | median)
mon=$(printf '%s\n' "${cons[@]}" | median)
printf 'median smrelayd CPU per message: off %s us, on %s us, on/off %s\n' \
	"$moff" "$mon" "$(awk -v a="$mon" -v b="$moff" 'BEGIN { printf "%.3f", a / b }')"
