#!/bin/bash
# t_processes.sh: `processes = 2` (issue 18): two network processes share
# the listeners (SO_REUSEPORT).
#  - both listen and both serve: 200 connections, each process logs some;
#  - `-n` rejects processes = 0 and processes = abc with FILE:LINE;
#  - kill -9 one network process while Postfix's smtp-source sends: the
#    parent restarts it (the other keeps serving) and every message a client
#    got 250 for reaches the sink, once;
#  - a message spooled by process 1 while the next hop is down is delivered
#    exactly once when it comes back, across a restart of the whole daemon,
#    and after `processes` is lowered to 1 (process 0 takes the share over);
#  - `smrelayctl stats --json` counts the messages of both processes;
#    `smrelayctl queue list` shows every share;
#  - a network process whose event loop stops (SIGSTOP: wedged) is named
#    by /healthz (served by the other) within seconds, killed by the parent
#    after 30 s and restarted; then both serve and /healthz is 200.
. "$(dirname "$0")/lib.sh"
need_bins

# The network processes of smrelayd PID: "pid index" lines.
net_procs() {
	local f st
	for f in /proc/[0-9]*/stat; do
		st=$(cat "$f" 2>/dev/null) || continue
		[[ $st =~ ^([0-9]+)\ \(smrelayd-net\[([0-9]+)\]\)\ .\ ([0-9]+)\  ]] || continue
		[ "${BASH_REMATCH[3]}" = "$1" ] && echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
	done
}

# The pid of network process INDEX of smrelayd PID.
net_pid() {
	net_procs "$1" | awk -v i="$2" '$2 == i { print $1; f = 1 } END { exit !f }'
}

_two_nets() { [ "$(net_procs "$SMRELAYD_PID" | wc -l)" -eq 2 ]; }
_started() { [ "$(grep -c ' started hostname=' "$CASE_DIR/smrelayd.log")" -ge "$1" ]; }

# Sessions a process logged (its lines begin "net[I] " after the time).
served_by() {
	grep -c -E "^[^ ]* ?net\[$1\] .*(session|connect)" "$CASE_DIR/smrelayd.log"
}

# stats --json: messages by outcome, summed.
stats_messages() {
	"$SMRELAYCTL" -c "$CONF" stats --json 2>/dev/null | "$PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
print(sum(s["value"] for s in d["smrelay_messages_total"]
    if s["labels"]["outcome"] in ("relayed", "queued")))'
}

t_two_processes_serve() {
	local i pids n0 n1 m
	start_sink && start_relay processes=2 || return 1
	wait_for 15 _two_nets || { fail_because "not two smrelayd-net[i] processes: $(net_procs "$SMRELAYD_PID" | tr '\n' ' ')"; return 1; }
	wait_for 15 _started 2 || { fail_because "not two network processes started"; return 1; }
	grep -q 'listening on .* reuseport' "$CASE_DIR/smrelayd.log" ||
		{ fail_because "no reuseport listener in the log"; return 1; }
	# two listening sockets on the port (one per process)
	n0=$(ss -H -ltn "sport = :$PORT" 2>/dev/null | wc -l)
	[ "$n0" -ge 2 ] || { fail_because "ss shows $n0 listening socket(s) on $PORT, expected 2"; return 1; }
	# 200 connections (QUIT right away), 20 at a time
	for i in $(seq 1 200); do
		"$PYTHON" "$IT_PY/chat.py" --timeout 20 127.0.0.1 "$PORT" expect:220 \
			line:QUIT expect:221 >/dev/null 2>&1 &
		pids+=($!)
		if [ $((i % 20)) -eq 0 ]; then
			wait "${pids[@]}"
			pids=()
		fi
	done
	n0=$(served_by 0)
	n1=$(served_by 1)
	echo "# sessions logged: process 0: $n0, process 1: $n1"
	[ "$n0" -gt 0 ] && [ "$n1" -gt 0 ] ||
		{ fail_because "both processes must serve (0: $n0, 1: $n1)"; return 1; }
	# messages through both count in the one set of figures
	have smtp-source || { skip "smtp-source not installed"; return 0; }
	timeout 120 smtp-source -s 10 -m 100 -l 1024 -f sender@example.com -t rcpt@example.net \
		"127.0.0.1:$PORT" >"$CASE_DIR/smtp-source.log" 2>&1 ||
		{ fail_because "smtp-source failed: $(tail -n 2 "$CASE_DIR/smtp-source.log")"; return 1; }
	wait_delivered 100 60 || return 1
	m=$(stats_messages)
	assert_eq 100 "$m" "stats --json: messages relayed and queued by both processes" || return 1
	grep -q -E 'net\[0\] .*accepted|net\[0\] .*250' "$CASE_DIR/smrelayd.log" &&
		grep -q -E 'net\[1\] .*accepted|net\[1\] .*250' "$CASE_DIR/smrelayd.log" ||
		echo "# (could not tell from the log which process took which message)"
}

t_bad_values() {
	local v out
	it_certs || return 1
	PORT=$(free_port)
	CONF=$CASE_DIR/smrelayd.conf
	for v in 0 abc 65; do
		write_conf "$CONF" processes="$v"
		out=$("$SMRELAYD" -c "$CONF" -n 2>&1) &&
			{ fail_because "-n accepted processes = $v"; return 1; }
		[[ $out =~ smrelayd\.conf:[0-9]+:\ bad\ value\ for\ processes ]] ||
			{ fail_because "processes = $v: $out"; return 1; }
	done
	for v in 1 2 auto; do
		write_conf "$CONF" processes="$v"
		"$SMRELAYD" -c "$CONF" -n >/dev/null 2>&1 ||
			{ fail_because "-n rejected processes = $v"; return 1; }
	done
}

# kill -9 network process 1 in the middle of the load: the parent restarts
# it with the same index, process 0 keeps serving; every 250'd message
# arrives exactly once.
t_kill_one() {
	local victim new n got
	have smtp-sink || { skip "smtp-sink not installed"; return 0; }
	start_smtp_sink && start_relay processes=2 || return 1
	wait_for 15 _two_nets && wait_for 15 _started 2 ||
		{ fail_because "two network processes did not start"; return 1; }
	victim=$(net_pid "$SMRELAYD_PID" 1) || { fail_because "no process 1"; return 1; }
	bg client "$PYTHON" "$IT_PY/procsend.py" --port "$PORT" --count 1000 \
		--sessions 20 --accepted "$CASE_DIR/accepted.ids"
	local client=$BG_PID
	# wait until some messages went through, then kill process 1
	wait_for 60 _count_ge 100 || { fail_because "no traffic before the kill"; return 1; }
	kill -9 "$victim"
	echo "# killed network process 1 (pid $victim) at $(sink_count) delivered"
	wait_for 15 _restarted "$victim" ||
		{ fail_because "process 1 was not restarted"; return 1; }
	new=$(net_pid "$SMRELAYD_PID" 1)
	echo "# process 1 restarted as pid $new"
	wait "$client"
	untrack "$client"
	n=$(wc -l <"$CASE_DIR/accepted.ids")
	echo "# client got 250 for $n of 1000 messages"
	[ "$n" -ge 500 ] || { fail_because "only $n messages accepted: $(tail -n 3 "$CASE_DIR/client.log" | tr '\n' ' ')"; return 1; }
	# every accepted Message-ID arrives, none twice
	wait_for 60 _all_arrived || true
	got=$(_arrived_ids | sort | uniq -d | wc -l)
	[ "$got" -eq 0 ] || { fail_because "$got message(s) delivered twice"; return 1; }
	_all_arrived || { fail_because "lost: $(comm -23 <(sort -u "$CASE_DIR/accepted.ids") <(_arrived_ids | sort -u) | head -n 3 | tr '\n' ' ')"; return 1; }
	grep -q 'restarting network process 1' "$CASE_DIR/smrelayd.log" ||
		{ fail_because "no restart in the log"; return 1; }
	[ "$(net_pid "$SMRELAYD_PID" 0)" != "" ] || { fail_because "process 0 gone"; return 1; }
}
_restarted() {
	local p
	p=$(net_pid "$SMRELAYD_PID" 1) && [ "$p" != "$1" ]
}
_arrived_ids() {
	sink_files | xargs -r grep -h -i -o -a '^Message-ID: <[^>]*>' |
		sed 's/^[^<]*<//; s/>$//'
}
_all_arrived() {
	[ -z "$(comm -23 <(sort -u "$CASE_DIR/accepted.ids") <(_arrived_ids | sort -u))" ]
}

# Network process 1 stops running its loop (SIGSTOP stands in for a loop
# that no longer turns): /healthz, served by process 0, says so; the parent
# kills and restarts it; /healthz is 200 again and mail goes through.
t_wedged_one() {
	local victim new i
	MPORT=$(free_port)
	start_sink && start_relay processes=2 metrics_listen="127.0.0.1:$MPORT" || return 1
	wait_for 15 _two_nets && wait_for 15 _started 2 ||
		{ fail_because "two network processes did not start"; return 1; }
	wait_for 10 health_is 200 || { fail_because "/healthz not 200: $HEALTH"; return 1; }
	victim=$(net_pid "$SMRELAYD_PID" 1) || { fail_because "no process 1"; return 1; }
	stopped_then_replaced "$victim" "network process 1: its event loop has not run for" \
		_restarted "network process 1 pid $victim: its event loop has not run for [0-9]+ s: killing it" ||
		return 1
	new=$(net_pid "$SMRELAYD_PID" 1)
	echo "# process 1 restarted as pid $new"
	wait_for 15 _started 3 || { fail_because "the new process 1 did not start"; return 1; }
	for i in 1 2 3 4 5 6; do
		swaks_send --to "w$i@example.net" >/dev/null || return 1
	done
	wait_delivered 6 30 || return 1
	# the restart is counted (by the parent, in the shared figures)
	"$PYTHON" "$IT_DIR/../metrics/httpc.py" get "http://127.0.0.1:$MPORT/metrics" >"$CASE_DIR/metrics.txt" ||
		{ fail_because "GET /metrics failed"; return 1; }
	grep -q '^smrelay_process_restarts_total{process="network",reason="wedged"} 1$' "$CASE_DIR/metrics.txt" ||
		{ fail_because "no wedged restart counted: $(grep restarts "$CASE_DIR/metrics.txt" | tr '\n' ' ')"; return 1; }
}

# A message spooled by process 1 (next hop down) is delivered once when
# the next hop is back, after a restart of the daemon; then with
# processes = 1, process 0 takes spool.1 over.
t_spool_share() {
	local i nh n1
	start_sink || return 1
	nh=$NH_PORT
	kill "$SINK_PID"
	wait "$SINK_PID" 2>/dev/null
	untrack "$SINK_PID"
	start_relay processes=2 || return 1
	wait_for 15 _started 2 || { fail_because "two network processes did not start"; return 1; }
	# until process 1 spooled one (connections are spread by the kernel)
	for i in $(seq 1 40); do
		swaks_send --to "q$i@example.net" --header "X-Test-Id: <share-$i@test>" >/dev/null 2>&1
		[ -n "$(_share1_ids)" ] && break
	done
	[ -n "$(_share1_ids)" ] || { fail_because "nothing spooled in spool.1 after 40 messages"; return 1; }
	"$SMRELAYCTL" -c "$CONF" queue list >"$CASE_DIR/queue.list" 2>&1 ||
		{ fail_because "queue list: $(cat "$CASE_DIR/queue.list")"; return 1; }
	assert_eq "$i" "$(wc -l <"$CASE_DIR/queue.list")" "queue list over both shares" || return 1
	# restart the whole daemon: process 1 loads its share again
	n1=$(_share1_ids | wc -l)
	stop_smrelayd || return 1
	start_smrelayd "$CONF" "$PORT" || return 1
	wait_for 15 grep -q "net\[1\] queue: $n1 message(s) in the spool" "$CASE_DIR/smrelayd.log" ||
		{ fail_because "process 1 did not load its $n1 message(s) after the restart"; return 1; }
	# then with processes = 1
	stop_smrelayd || return 1
	mv "$CASE_DIR/smrelayd.log" "$CASE_DIR/smrelayd.1.log"
	write_conf "$CONF" processes=1
	start_smrelayd "$CONF" "$PORT" || return 1
	wait_for 15 grep -q 'spool share 1 .* taken over' "$CASE_DIR/smrelayd.log" ||
		{ fail_because "spool.1 not taken over"; return 1; }
	[ ! -e "$CASE_DIR/data/spool.1" ] || { fail_because "spool.1 still there"; return 1; }
	# the next hop comes back on the same port: each message once
	NH_PORT=$nh
	SINK_DIR=$CASE_DIR/maildir
	bg sink2 "$SMRELAYCTL" sink --listen "127.0.0.1:$NH_PORT" --maildir "$SINK_DIR"
	SINK_PID=$BG_PID
	wait_listen "$NH_PORT" "$SINK_PID" 15 || { fail_because "sink did not restart"; return 1; }
	"$SMRELAYCTL" -c "$CONF" queue flush >/dev/null 2>&1
	wait_delivered "$i" 60 || return 1
	assert_eq 0 "$(_test_ids | sort | uniq -d | wc -l)" "messages delivered twice" || return 1
	assert_eq "$i" "$(_test_ids | sort -u | wc -l)" "distinct messages delivered"
}
_test_ids() {
	sink_files | xargs -r grep -h -i -o -a '^X-Test-Id: <[^>]*>'
}
_share1_ids() {
	[ -f "$CASE_DIR/data/spool.1/queue.db" ] &&
		sqlite3 "$CASE_DIR/data/spool.1/queue.db" 'SELECT id FROM queue' 2>/dev/null
}

run_case two_processes_serve t_two_processes_serve
run_case bad_values t_bad_values
run_case kill_one t_kill_one
run_case spool_share t_spool_share
run_case wedged_one t_wedged_one
it_finish
