#!/bin/bash
# tests/scale/t_cluster_kill.sh: kill -9 one node of two behind HAProxy in
# the middle of KILL_N (2,000) messages; every message a client got 250 for
# arrives, none is lost (issue 18, "Proof").
#
# The topology of topo.sh (TOPO_DB: pg where the PostgreSQL backend is
# there, else each node its own SQLite file: this case needs nothing shared
# but the next hop).  The load goes through HAProxy: tests/queue/
# crash_client.py (unique Message-IDs, KILL_CONNS connections, every final
# reply logged: the record of what got 250) and, beside it, smtp-source in
# small batches (load only, not judged).
#
# Node A's next hop is down until A has been killed and restarted, so that
# what A accepted before it died is in A's spool ("queued as"), fsync'ed
# and nowhere else: the only way for those messages to arrive is A's spool
# after its restart.  At KILL_AT % of the load node A dies whole (SIGKILL to
# the parent and every child at once); B (and HAProxy's redispatch) carry
# the load meanwhile; A is restarted once the load went on by a tenth
# without it; when the load is done A's next hop comes up and
# `smrelayctl queue flush` asks A to deliver.  Then: every Message-ID that
# got 250 is at the sink at least once (FAIL, listing the missing);
# `duplicates: N` (copies beyond the first) is printed, not judged.
#
# Environment: KILL_N (2000), KILL_CONNS (8), KILL_RATE (messages started per
# second, 120), KILL_AT (30), TOPO_DB (auto, sqlite, pg), plus lib.sh's.
. "$(dirname "$0")/topo.sh"

KILL_N=${KILL_N:-2000}
KILL_CONNS=${KILL_CONNS:-8}
KILL_RATE=${KILL_RATE:-120}
KILL_AT=${KILL_AT:-30}
CLIENT=$TOP_SRC/tests/queue/crash_client.py
TAG=kill$$

if ! topo_db_choose "$TOPO_DB"; then
	echo "SKIP all: TOPO_DB=$TOPO_DB: $TOPO_WHY"
	exit 77
fi
HOP_A_PORT=$(free_port)
topo_setup_or_die log_level=info

accepted_now() {
	local a
	{ read -r a _ <"$T/progress"; } 2>/dev/null
	echo "${a:-0}"
}

# wait_accepted N SECONDS CLIENT_PID: until the client has N accepted.
wait_accepted() {
	local n=0
	while [ "$(accepted_now)" -lt "$1" ]; do
		kill -0 "$3" 2>/dev/null || return 1
		n=$((n + 1))
		[ $n -gt $(($2 * 20)) ] && return 1
		sleep 0.05
	done
}

# smtp-source through HAProxy in batches of 20 until the flag file goes (at
# most 50 batches).
side_load() {
	local i
	for ((i = 0; i < 50; i++)); do
		[ -e "$T/side.run" ] || break
		smtp-source -s 2 -m 20 -l 2000 -f side@example.com -t sink@example.net \
			"127.0.0.1:$HA_PORT" >>"$T/side.log" 2>&1
		echo "batch rc $?" >>"$T/side.log"
	done
}

case_kill() {
	local cpid spid="" a_kill a_restart q_kill q_restart q acc died sinkn uniq dups missing
	local via_a n last stable

	"$PYTHON" "$CLIENT" --port "$HA_PORT" --count "$KILL_N" --conns "$KILL_CONNS" \
		--rate "$KILL_RATE" --deadline 300 --tag "$TAG" \
		--log "$T/client.tsv" --progress "$T/progress" >"$T/client.log" 2>&1 &
	cpid=$!
	IT_PIDS+=("$cpid")
	if have smtp-source; then
		: >"$T/side.run"
		side_load &
		spid=$!
		IT_PIDS+=("$spid")
	else
		echo "# smtp-source not installed: the python client alone"
	fi

	wait_accepted $((KILL_N * KILL_AT / 100)) 120 "$cpid" ||
		{ fail_because "the load did not reach $KILL_AT % ($(accepted_now) accepted; $(tail -n 2 "$T/client.log" | tr '\n' ' '))"; return 1; }
	q_kill=$(topo_queue_len A)
	a_kill=$(accepted_now)
	topo_node_kill A || { fail_because "node A's ports still taken after kill -9"; return 1; }
	echo "# kill -9 of node A at $a_kill accepted; A's spool held $q_kill message(s) just before"

	# B alone (HAProxy sees A down and redispatches) carries a tenth of
	# the load.
	wait_accepted $((a_kill + KILL_N / 10)) 120 "$cpid" ||
		{ fail_because "the load stalled with node A down: $(accepted_now) accepted, $a_kill at the kill"; return 1; }
	a_restart=$(accepted_now)
	topo_node_start A || return 1
	q_restart=$(topo_queue_len A)
	echo "# node A restarted at $a_restart accepted; its spool holds $q_restart message(s)"

	wait "$cpid"
	untrack "$cpid"
	rm -f "$T/side.run"
	[ -n "$spid" ] && { wait "$spid"; untrack "$spid"; }
	echo "# client: $(cat "$T/client.log")"
	grep -q '^accepted' "$T/client.log" ||
		{ fail_because "the client failed: $(tail -n 3 "$T/client.log" | tr '\n' ' ')"; return 1; }

	# A's next hop comes up; A delivers its spool.
	topo_sink maildir-a "$HOP_A_PORT" || return 1
	topo_ctl A queue flush >>"$T/ctl.log" 2>&1
	n=0
	while q=$(topo_queue_len A) && [ "$q" != 0 ]; do
		n=$((n + 1))
		[ $n -gt 600 ] && { fail_because "node A's spool did not drain: $q left"; return 1; }
		[ $((n % 20)) = 0 ] && topo_ctl A queue flush >>"$T/ctl.log" 2>&1
		sleep 0.2
	done
	wait_for 60 eval '[ "$(topo_queue_len B)" = 0 ]' ||
		{ fail_because "node B's spool did not drain: $(topo_queue_len B) left"; return 1; }
	# the sinks quiet for a second
	last=-1
	stable=0
	while [ $stable -lt 10 ]; do
		n=$(($(sink_count "$T/maildir") + $(sink_count "$T/maildir-a")))
		if [ "$n" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
		last=$n
		sleep 0.1
	done

	# The verdict.
	awk -F'\t' '$2 ~ /^2/ { print $1 }' "$T/client.tsv" | sort >"$T/accepted.ids"
	topo_ids "$T/maildir" "$T/maildir-a" | grep -F ".$TAG@" | sort >"$T/sink.ids"
	sort -u "$T/sink.ids" >"$T/sink.uniq"
	acc=$(wc -l <"$T/accepted.ids")
	topo_ids "$T/maildir-a" | grep -F ".$TAG@" | sort -u | comm -12 "$T/accepted.ids" - >"$T/via-a.ids"
	via_a=$(wc -l <"$T/via-a.ids")
	died=$(awk -F'\t' '$2 == "died"' "$T/client.tsv" | wc -l)
	sinkn=$(wc -l <"$T/sink.ids")
	uniq=$(wc -l <"$T/sink.uniq")
	dups=$((sinkn - uniq))
	comm -23 "$T/accepted.ids" "$T/sink.uniq" >"$T/missing.ids"
	missing=$(wc -l <"$T/missing.ids")
	echo "# accepted (250): $acc, of them $via_a delivered from node A's spool after its restart; connection died before the reply: $died"
	echo "# node A: $(grep -c 'status=sent' "$T/A.log") delivery line(s) 'sent', node B: $(grep -c 'status=sent' "$T/B.log")"
	echo "# at the sinks: $sinkn copies of $uniq Message-IDs ($(sink_count "$T/maildir-a") file(s) from node A's spool hop)"
	echo "# missing: $missing"
	echo "duplicates: $dups"
	[ "$dups" -gt 0 ] && uniq -d "$T/sink.ids" | head -n 5 | sed 's/^/#   duplicated: /'
	if [ "$missing" -gt 0 ]; then
		sed 's/^/#   missing: /' "$T/missing.ids" | head -n 50
		fail_because "$missing of $acc accepted message(s) never reached the next hop: $(head -n 10 "$T/missing.ids" | tr '\n' ' ')"
		return 1
	fi
	[ "$acc" -ge "$KILL_N" ] ||
		{ fail_because "only $acc of $KILL_N messages accepted"; return 1; }
	# The test tested what it says: A had a spool when it died, and
	# that spool was still there after the restart.
	[ "$q_kill" -gt 0 ] && [ "$q_restart" -gt 0 ] && [ "$via_a" -gt 0 ] ||
		{ fail_because "node A's spool was empty at the kill ($q_kill) or after the restart ($q_restart), or none of the client's messages came from it ($via_a): the case did not test the dead node's spool"; return 1; }
	[ "$(sink_count "$T/maildir-a")" -ge "$q_restart" ] ||
		{ fail_because "node A's hop got $(sink_count "$T/maildir-a") message(s), fewer than the $q_restart in its spool after the restart"; return 1; }
	topo_node_stop A && topo_node_stop B
}

run_case cluster_kill_node case_kill
it_finish
