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
# A second case kills one network process of node B (SIGKILL to
# smrelayd-net only) in the middle of KILL_NET_N (500) messages: the parent
# restarts it, nothing 250'd is lost.
#
# Environment: KILL_N (2000), KILL_NET_N (500), KILL_CONNS (8), KILL_RATE
# (messages started per second, 120), KILL_AT (30), TOPO_DB (auto, sqlite,
# pg), TOPO_PROCESSES (processes = N on both nodes), plus lib.sh's.
. "$(dirname "$0")/topo.sh"

KILL_N=${KILL_N:-2000}
KILL_CONNS=${KILL_CONNS:-8}
KILL_RATE=${KILL_RATE:-120}
KILL_AT=${KILL_AT:-30}
KILL_NET_N=${KILL_NET_N:-500}
CLIENT=$TOP_SRC/tests/queue/crash_client.py
TAG=kill$$

if ! topo_db_choose "$TOPO_DB"; then
	echo "SKIP all: TOPO_DB=$TOPO_DB: $TOPO_WHY"
	exit 77
fi
HOP_A_PORT=$(free_port)
topo_setup_or_die log_level=info

accepted_now() { topo_accepted "$PROGRESS"; }

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

# sinks_quiet: until the sinks' message count has not moved for a second
# (at most 30 s).
sinks_quiet() {
	local last=-1 stable=0 n i
	for ((i = 0; i < 300 && stable < 10; i++)); do
		n=$(($(sink_count "$T/maildir") + $(sink_count "$T/maildir-a")))
		if [ "$n" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
		last=$n
		sleep 0.1
	done
}

# lost_check TAG N MAILDIR...: every Message-ID that got 2xx in $T/TAG.tsv
# (crash_client.py's log) is in one of the Maildirs; N of them at least.
# Prints the counts and "duplicates: N" (copies beyond the first, not
# judged); the accepted IDs are left in $T/TAG.accepted.
lost_check() {
	local tag=$1 want=$2 acc died sinkn uniq missing
	shift 2
	awk -F'\t' '$2 ~ /^2/ { print $1 }' "$T/$tag.tsv" | sort >"$T/$tag.accepted"
	topo_ids "$@" | grep -F ".$tag@" | sort >"$T/$tag.sink"
	sort -u "$T/$tag.sink" >"$T/$tag.uniq"
	acc=$(wc -l <"$T/$tag.accepted")
	died=$(awk -F'\t' '$2 == "died"' "$T/$tag.tsv" | wc -l)
	sinkn=$(wc -l <"$T/$tag.sink")
	uniq=$(wc -l <"$T/$tag.uniq")
	comm -23 "$T/$tag.accepted" "$T/$tag.uniq" >"$T/$tag.missing"
	missing=$(wc -l <"$T/$tag.missing")
	echo "# accepted (250): $acc; connection died before the reply: $died"
	echo "# at the sinks: $sinkn copies of $uniq Message-IDs; missing: $missing"
	echo "duplicates: $((sinkn - uniq))"
	[ $((sinkn - uniq)) -gt 0 ] && uniq -d "$T/$tag.sink" | head -n 5 | sed 's/^/#   duplicated: /'
	if [ "$missing" -gt 0 ]; then
		sed 's/^/#   missing: /' "$T/$tag.missing" | head -n 50
		fail_because "$missing of $acc accepted message(s) never reached the next hop: $(head -n 10 "$T/$tag.missing" | tr '\n' ' ')"
		return 1
	fi
	[ "$acc" -ge "$want" ] || fail_because "only $acc of $want messages accepted"
}

case_kill() {
	local cpid spid="" a_kill a_restart q_kill q_restart q via_a n
	PROGRESS=$T/$TAG.progress

	"$PYTHON" "$CLIENT" --port "$HA_PORT" --count "$KILL_N" --conns "$KILL_CONNS" \
		--rate "$KILL_RATE" --deadline 300 --tag "$TAG" \
		--log "$T/$TAG.tsv" --progress "$PROGRESS" >"$T/client.log" 2>&1 &
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
	sinks_quiet

	# The verdict.
	lost_check "$TAG" "$KILL_N" "$T/maildir" "$T/maildir-a" || return 1
	topo_ids "$T/maildir-a" | grep -F ".$TAG@" | sort -u |
		comm -12 "$T/$TAG.accepted" - >"$T/via-a.ids"
	via_a=$(wc -l <"$T/via-a.ids")
	echo "# of them delivered from node A's spool after its restart: $via_a; node A: $(grep -c 'status=sent' "$T/A.log") delivery line(s) 'sent', node B: $(grep -c 'status=sent' "$T/B.log")"
	# The test tested what it says: A had a spool when it died, and
	# that spool was still there after the restart.
	[ "$q_kill" -gt 0 ] && [ "$q_restart" -gt 0 ] && [ "$via_a" -gt 0 ] ||
		{ fail_because "node A's spool was empty at the kill ($q_kill) or after the restart ($q_restart), or none of the client's messages came from it ($via_a): the case did not test the dead node's spool"; return 1; }
	[ "$(sink_count "$T/maildir-a")" -ge "$q_restart" ] ||
		fail_because "node A's hop got $(sink_count "$T/maildir-a") message(s), fewer than the $q_restart in its spool after the restart"
}

# kill -9 of one network process of node B (its parent restarts it; the
# other processes, node A and HAProxy go on) in the middle of KILL_NET_N
# messages through HAProxy: none of the 250'd lost.
case_kill_net() {
	local cpid net a_kill tag=net$$
	PROGRESS=$T/$tag.progress
	"$PYTHON" "$CLIENT" --port "$HA_PORT" --count "$KILL_NET_N" --conns "$KILL_CONNS" \
		--rate "$KILL_RATE" --deadline 300 --tag "$tag" \
		--log "$T/$tag.tsv" --progress "$PROGRESS" >"$T/client-net.log" 2>&1 &
	cpid=$!
	IT_PIDS+=("$cpid")
	wait_accepted $((KILL_NET_N * KILL_AT / 100)) 120 "$cpid" ||
		{ fail_because "the load did not reach $KILL_AT % ($(accepted_now) accepted)"; return 1; }
	# cat, not awk, opens the files: mawk stops at the first process
	# that exited since the glob (and says nothing we would see)
	net=$(cat /proc/[0-9]*/stat 2>/dev/null |
	    awk -v pp="${NODE_PID[B]}" '$4 == pp && $2 ~ /^\(smrelayd-net/ { print $1; exit }')
	[ -n "$net" ] || { fail_because "no smrelayd-net process under node B (${NODE_PID[B]})"; return 1; }
	a_kill=$(accepted_now)
	kill -KILL "$net"
	echo "---- kill -9 $net (network process) $(date +%T.%N)" >>"$T/B.log"
	echo "# kill -9 of node B's network process $net at $a_kill accepted"
	wait "$cpid"
	untrack "$cpid"
	echo "# client: $(cat "$T/client-net.log")"
	kill -0 "${NODE_PID[B]}" 2>/dev/null ||
		{ fail_because "node B's parent died with its network process"; return 1; }
	wait_for 30 eval 'cat /proc/[0-9]*/stat 2>/dev/null | awk -v pp="${NODE_PID[B]}" '"'"'$4 == pp && $2 ~ /^\(smrelayd-net/ { f = 1 } END { exit !f }'"'"'' ||
		{ fail_because "node B's network process was not restarted"; return 1; }
	wait_for 60 eval '[ "$(topo_queue_len B)" = 0 ] || { topo_ctl B queue flush >/dev/null 2>&1; false; }' ||
		{ fail_because "node B's spool did not drain: $(topo_queue_len B) left"; return 1; }
	sinks_quiet
	lost_check "$tag" "$KILL_NET_N" "$T/maildir" "$T/maildir-a"
}

case_stop() {
	topo_node_stop A && topo_node_stop B
}

run_case cluster_kill_node case_kill
run_case cluster_kill_net_process case_kill_net
run_case nodes_stop_cleanly case_stop
it_finish
