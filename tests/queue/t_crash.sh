#!/bin/bash
# tests/queue/t_crash.sh: crash safety of the spool (issue 5).
#
# While a load of CRASH_N messages runs (tests/queue/crash_client.py: unique
# Message-IDs, CRASH_CONNS concurrent connections, every final reply
# logged), smrelayd is killed with SIGKILL at CRASH_KILLS random moments and
# restarted each time.  The next hop (`smrelayctl sink`) is down for part
# of the load, so that the kills hit spool writes, in-line deliveries and
# the queue runner's retries of a backlog:
#
#     messages accepted   0-25 %   25-50 %   50-80 %   80-90 %   90-100 %
#     next hop            down     up        down      up        down
#
# One more kill comes while the backlog left at the end drains.  Then: next hop
# up, smrelayd restarted, `smrelayctl queue flush`, wait until `queue list`
# is empty and the sink is quiet.  Every Message-ID the client got 250 for
# must be at the sink at least once (FAIL, listing the missing ones);
# `duplicates: N` (copies beyond the first, of any ID) is printed, not
# judged.  Messages whose connection died before a reply are neither
# required nor forbidden.
#
# Environment: CRASH_N (default 2000; not below 500), CRASH_KILLS (default
# 6; not below 5), CRASH_CONNS (8), CRASH_RATE (messages started per second,
# default 100), CRASH_SEED (random seed, printed), plus lib.sh's.
# A sanitizer build runs the same test; CRASH_N=1000 keeps it shorter.
set -u
TOP_SRC=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib_queue.sh
. "$TOP_SRC/tests/queue/lib_queue.sh"
need_bins

CRASH_N=${CRASH_N:-2000}
CRASH_KILLS=${CRASH_KILLS:-6}
CRASH_CONNS=${CRASH_CONNS:-8}
CRASH_RATE=${CRASH_RATE:-100}
CRASH_SEED=${CRASH_SEED:-$(date +%s)}
[ "$CRASH_N" -ge 500 ] || CRASH_N=500
[ "$CRASH_KILLS" -ge 5 ] || CRASH_KILLS=5
RANDOM=$CRASH_SEED
CLIENT=$TOP_SRC/tests/queue/crash_client.py

KILLS=0
RESTARTS=0
# The next hop comes up at HOP_AT[0] % of the load, goes down at [1], ...
HOP_AT=(25 50 80 90)

# The next hop (`smrelayctl sink`, lib_queue.sh) on the fixed NH_PORT (the
# relay's config names it), each change noted in driver.log.
hop_on() {
	[ -n "$SINK_PID" ] && return 0
	echo "hop up $(date +%T.%N)" >>"$CASE_DIR/driver.log"
	hop_up_sink
}

hop_off() {
	[ -n "$SINK_PID" ] || return 0
	hop_down
	echo "hop down $(date +%T.%N)" >>"$CASE_DIR/driver.log"
}

# smrelayd, its log appended across restarts.
relay_start() {
	"$SMRELAYD" -c "$CONF" -f >>"$CASE_DIR/smrelayd.log" 2>&1 &
	SMRELAYD_PID=$!
	IT_PIDS+=("$SMRELAYD_PID")
	RESTARTS=$((RESTARTS + 1))
	if ! wait_listen "$PORT" "$SMRELAYD_PID" 30; then
		fail_because "smrelayd did not come back after a restart (restart $RESTARTS): $(tail -n 3 "$CASE_DIR/smrelayd.log" | tr '\n' ' ')"
		return 1
	fi
}

relay_kill() {
	local pid=$SMRELAYD_PID
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	untrack "$pid"
	# its key and network processes die with it (PR_SET_PDEATHSIG): the
	# port is free once they are gone
	wait_for 10 port_free "$PORT"
	SMRELAYD_PID=""
	KILLS=$((KILLS + 1))
	echo "kill $KILLS: $1, $(date +%T.%N)" >>"$CASE_DIR/driver.log"
	echo "---- kill -9 #$KILLS ($1)" >>"$CASE_DIR/smrelayd.log"
}

accepted_now() {
	local a
	{ read -r a _ <"$CASE_DIR/progress"; } 2>/dev/null
	echo "${a:-0}"
}

# Message-IDs at the sink, one line per copy.
sink_ids() {
	find "$SINK_DIR/new" "$SINK_DIR/cur" -type f -exec \
		grep -h -i -m1 '^Message-ID:' {} + 2>/dev/null |
		tr -d '\r' | awk '{ print $2 }'
}

case_crash() {
	local thresholds=() i k pct a cpid phase=0 max_q=0 q n last stable
	local per=$((90 / CRASH_KILLS))

	NH_PORT=$(free_port)
	SINK_DIR=$CASE_DIR/maildir
	mkdir -p "$SINK_DIR/new" "$SINK_DIR/cur" "$SINK_DIR/tmp"
	SINK_PID=""
	it_certs || return 1
	PORT=$(free_port)
	CONF=$CASE_DIR/smrelayd.conf
	mkdir -p "$CASE_DIR/data"
	write_conf "$CONF" "listen=127.0.0.1:$PORT tls=none" log_level=info
	relay_start || return 1
	echo "# seed $CRASH_SEED, $CRASH_N messages, $CRASH_CONNS connections, $CRASH_RATE/s, $CRASH_KILLS kills"

	# One kill at a random point of each of CRASH_KILLS equal slices of
	# 5 .. 95 % of the load (in messages accepted).
	for ((i = 0; i < CRASH_KILLS; i++)); do
		pct=$((5 + i * per + RANDOM % per))
		thresholds+=($((CRASH_N * pct / 100)))
	done
	echo "# kill points (messages accepted): ${thresholds[*]}"

	"$PYTHON" "$CLIENT" --port "$PORT" --count "$CRASH_N" --conns "$CRASH_CONNS" \
		--rate "$CRASH_RATE" --deadline 240 --tag "$CRASH_SEED" \
		--log "$CASE_DIR/client.tsv" --progress "$CASE_DIR/progress" \
		>"$CASE_DIR/client.log" 2>&1 &
	cpid=$!
	IT_PIDS+=("$cpid")

	k=0
	while kill -0 "$cpid" 2>/dev/null; do
		a=$(accepted_now)
		# The next hop's schedule.
		if [ $phase -lt ${#HOP_AT[@]} ] && [ "$a" -ge $((CRASH_N * HOP_AT[phase] / 100)) ]; then
			if [ $((phase % 2)) = 0 ]; then hop_on || return 1; else hop_off; fi
			phase=$((phase + 1))
		fi
		if [ $k -lt ${#thresholds[@]} ] && [ "$a" -ge "${thresholds[$k]}" ]; then
			# A random moment shortly after the threshold.
			sleep "$(printf '0.%03d' $((RANDOM % 300 + 1)))"
			q=$(queue_len)
			[ "$q" -gt "$max_q" ] && max_q=$q
			relay_kill "at $a accepted, hop $([ -n "$SINK_PID" ] && echo up || echo down), $q queued"
			k=$((k + 1))
			sleep "$(printf '0.%03d' $((RANDOM % 400)))"
			relay_start || return 1
		fi
		sleep 0.05
	done
	wait "$cpid"
	untrack "$cpid"
	echo "# client: $(cat "$CASE_DIR/client.log")"
	grep -q '^accepted' "$CASE_DIR/client.log" ||
		{ fail_because "the client failed: $(tail -n 3 "$CASE_DIR/client.log" | tr '\n' ' ')"; return 1; }
	[ $k -ge "$CRASH_KILLS" ] ||
		{ fail_because "only $k of $CRASH_KILLS kills happened during the load"; return 1; }

	# The end: the next hop comes up and `queue flush` asks the running
	# daemon to retry its backlog now; one more kill while it drains (if
	# the flush moves nothing, a kill and a restart make it all due).
	hop_on || return 1
	q=$(queue_len)
	[ "$q" -gt "$max_q" ] && max_q=$q
	echo "# after the load: $q queued (most seen at a kill: $max_q)"
	n=$(sink_count)
	qctl queue flush >>"$CASE_DIR/driver.log" 2>&1
	if [ "$q" -gt 20 ]; then
		if wait_for 10 _count_ge $((n + 10)); then
			relay_kill "during the drain after queue flush"
		else
			echo "# WARNING: queue flush on the running daemon: $(($(sink_count) - n)) of $q queued message(s) delivered within 10 s"
			relay_kill "backlog not moving after queue flush"
			relay_start || return 1
			n=$(sink_count)
			wait_for 20 _count_ge $((n + 10))
			relay_kill "during the drain after a restart"
		fi
		relay_start || return 1
		qctl queue flush >>"$CASE_DIR/driver.log" 2>&1
	fi
	# Empty queue, and the sink quiet for a second.
	wait_for 90 queue_is_empty ||
		{ fail_because "the queue did not drain: $(queue_len) left (see queue.list)"; qctl queue list >"$CASE_DIR/queue.list" 2>&1; return 1; }
	last=-1
	stable=0
	while [ $stable -lt 10 ]; do
		n=$(sink_count)
		if [ "$n" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
		last=$n
		sleep 0.1
	done

	# The verdict.
	awk -F'\t' '$2 ~ /^2/ { print $1 }' "$CASE_DIR/client.tsv" | sort >"$CASE_DIR/accepted.ids"
	awk -F'\t' '$2 == "died" { print $1 }' "$CASE_DIR/client.tsv" | sort >"$CASE_DIR/died.ids"
	sink_ids | sort >"$CASE_DIR/sink.ids"
	sort -u "$CASE_DIR/sink.ids" >"$CASE_DIR/sink.uniq"
	local acc spooled died died_data sinkn uniq dups missing dn
	acc=$(wc -l <"$CASE_DIR/accepted.ids")
	spooled=$(awk -F'\t' '$2 ~ /^2/ && /queued as/' "$CASE_DIR/client.tsv" | wc -l)
	died=$(wc -l <"$CASE_DIR/died.ids")
	died_data=$(awk -F'\t' '$2 == "died" && $3 ~ /^in DATA/' "$CASE_DIR/client.tsv" | wc -l)
	dn=$(comm -12 "$CASE_DIR/died.ids" "$CASE_DIR/sink.uniq" | wc -l)
	sinkn=$(wc -l <"$CASE_DIR/sink.ids")
	uniq=$(wc -l <"$CASE_DIR/sink.uniq")
	dups=$((sinkn - uniq))
	comm -23 "$CASE_DIR/accepted.ids" "$CASE_DIR/sink.uniq" >"$CASE_DIR/missing.ids"
	missing=$(wc -l <"$CASE_DIR/missing.ids")
	echo "# accepted (250): $acc, of them spooled (\"queued as\"): $spooled"
	echo "# connection died before the reply: $died ($died_data after DATA; $dn of them delivered anyway)"
	echo "# kills: $KILLS (SIGKILL), restarts: $((RESTARTS - 1)), most queued at a kill: $max_q"
	echo "# at the sink: $sinkn copies of $uniq Message-IDs"
	echo "# missing: $missing"
	echo "duplicates: $dups"
	if [ "$dups" -gt 0 ]; then
		uniq -d "$CASE_DIR/sink.ids" | head -n 5 | sed 's/^/#   duplicated: /'
	fi
	grep -c 'no reply after end of data' "$CASE_DIR/smrelayd.log" |
		sed 's/^/# smrelayd warnings "no reply after end of data" (dup risk): /'
	if [ "$missing" -gt 0 ]; then
		sed 's/^/#   missing: /' "$CASE_DIR/missing.ids" | head -n 50
		fail_because "$missing of $acc accepted message(s) never reached the next hop: $(head -n 10 "$CASE_DIR/missing.ids" | tr '\n' ' ')"
		return 1
	fi
	[ "$acc" -ge "$CRASH_N" ] ||
		{ fail_because "only $acc of $CRASH_N messages accepted"; return 1; }
	[ "$spooled" -gt 0 ] ||
		{ fail_because "no message was spooled: the test did not test the spool"; return 1; }
	return 0
}

run_case crash case_crash
it_finish
