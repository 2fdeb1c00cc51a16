#!/bin/bash
# t_fail.sh: `smrelayctl sink --fail SPEC --seed N`, the flow-testing sink,
# in front of which smrelayd's queue and DSNs can be watched:
#   rcpt_451_queued  a 451 at RCPT: smrelayd queues (queue list shows it
#                    with the 451), a retry is accepted and delivered
#   data_554_bounce  451 at RCPT first, then 554 at DATA on the retry:
#                    smrelayd sends the sender a failure DSN, which the sink
#                    takes; the message itself never arrives
#   drop_after_data  the sink hangs up after DATA without a reply:
#                    smrelayd queues, and delivers on the retry
#   delay            delay:400ms holds every RCPT and end-of-DATA reply
#   seeded           the same --seed gives the same answers, run after run
#   bad_spec         a SPEC that does not parse: exit 2 and the reason
#   peers_exit       the shared smrelayd exits 0 on SIGTERM
# The sink draws one number per RCPT (rcpt:), then per message (drop:,
# then data:), in that order; the seeds below were chosen so that the
# first draw fails and the next ones pass (splitmix64, see fail.c).
# One smrelayd, started once, serves the queue cases; each brings up its
# own failing sink on the next hop's port (NH_PORT).
. "$(dirname "$0")/../queue/lib_queue.sh"
# shellcheck source=shared.sh
. "$(dirname "$0")/shared.sh"
need_bins

# The shared smrelayd, in $IT_TMP/peers (PEERS_DIR), the next hop down.
start_peers() {
	CASE=peers
	CASE_DIR=$IT_TMP/peers
	PEERS_DIR=$CASE_DIR
	mkdir -p "$CASE_DIR"
	relay_with_hop_down || {
		echo "FAIL peers: $IT_REASON"
		it_show_logs
		exit 1
	}
	shared_keep "$SMRELAYD_PID"
	SMRELAYD_PID=""
	CASE_DIR=$IT_TMP
}

# hop_up_fail SPEC SEED: the sink on NH_PORT failing on purpose.
hop_up_fail() {
	_hop_dirs
	bg sink "$SMRELAYCTL" sink --listen "127.0.0.1:$NH_PORT" \
		--maildir "$SINK_DIR" --fail "$1" --seed "$2"
	_hop_wait sink
}

case_rcpt_451_queued() {
	hop_up_fail rcpt:0.5:451 21 || return 1
	swaks_expect_queued --to carol@lab.example \
		--header "Subject: flow test one" || return 1
	assert_queued carol@lab.example '451' || return 1
	assert_eq 0 "$(sink_count)" "messages at the sink before the retry" || return 1
	wait_queue_empty 30 flush || return 1
	wait_delivered 1 || return 1
	assert_file_matches "$(sink_files | head -n 1)" '^Subject: flow test one' \
		"the delivered message" || return 1
	grep -q 'maildir rcpt=<carol@lab.example> refused=451' "$CASE_DIR/sink.log" ||
		{ fail_because "the sink did not log its 451"; return 1; }
}

case_data_554_bounce() {
	hop_up_fail rcpt:0.5:451,data:0.5:554 10 || return 1
	swaks_expect_queued --from sender@example.com --to dave@lab.example \
		--header "Subject: flow test bounce" || return 1
	assert_queued dave@lab.example '451' || return 1
	wait_queue_empty 30 flush || return 1
	# the DSN travels through the same next hop
	wait_delivered 1 || return 1
	local f
	f=$(sink_files | head -n 1)
	assert_eq 1 "$(sink_count)" "messages at the sink (the DSN only)" || return 1
	assert_file_matches "$f" '^Delivered-To: sender@example.com' "the DSN's recipient" || return 1
	assert_file_matches "$f" 'multipart/report' "a DSN" || return 1
	assert_file_matches "$f" '554' "the DSN quotes the 554" || return 1
}

case_drop_after_data() {
	hop_up_fail drop:0.5 21 || return 1
	swaks_expect_queued --to erin@lab.example \
		--header "Subject: flow test drop" || return 1
	assert_queued erin@lab.example || return 1
	grep -q 'dropped by the backend' "$CASE_DIR/sink.log" ||
		{ fail_because "the sink did not drop the connection"; return 1; }
	wait_queue_empty 30 flush || return 1
	wait_delivered 1 || return 1
	assert_file_matches "$(sink_files | head -n 1)" '^Subject: flow test drop' \
		"the delivered message" || return 1
}

case_delay() {
	local NH_PORT
	NH_PORT=$(free_port)
	hop_up_fail delay:400ms 1 || return 1
	local t0 t1 ms
	t0=$(date +%s%N)
	PORT=$NH_PORT swaks_send --to frank@lab.example || return 1
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	# RCPT and the end of DATA, 400 ms each
	[ "$ms" -ge 800 ] || { fail_because "the transaction took $ms ms, expected >= 800"; return 1; }
	wait_delivered 1
}

# answers SEED: ANSWERS becomes the reply class of ten messages sent straight
# to a new sink with data:0.5:451 and that seed, as one word (e.g. 2424...).
# (Not in a $(...) subshell: the sink it starts must stay tracked.)
answers() {
	local i
	ANSWERS=""
	hop_down
	NH_PORT=$(free_port)
	hop_up_fail data:0.5:451 "$1" || return 1
	for i in 1 2 3 4 5 6 7 8 9 10; do
		timeout 60 swaks --server "127.0.0.1:$NH_PORT" --to "n$i@lab.example" \
			--from s@example.com >"$CASE_DIR/swaks.seed.$i.log" 2>&1
		if grep -q -E '^ *<- *250 .*saved as' "$CASE_DIR/swaks.seed.$i.log"; then
			ANSWERS+=2
		elif grep -q -E '^ *<\*\* *451 ' "$CASE_DIR/swaks.seed.$i.log"; then
			ANSWERS+=4
		else
			ANSWERS+=x
		fi
	done
}

case_seeded() {
	local a b NH_PORT
	answers 7 || return 1
	a=$ANSWERS
	answers 7 || return 1
	b=$ANSWERS
	assert_eq "$a" "$b" "the answers of two runs with --seed 7" || return 1
	# seed 7 draws 0.39 0.02 0.90 0.58 0.45 0.25 0.47 0.33 0.13 0.41
	assert_eq 4422444444 "$a" "the answers for --seed 7" || return 1
	answers 8 || return 1
	[ "$a" != "$ANSWERS" ] || { fail_because "--seed 8 answered like --seed 7: $ANSWERS"; return 1; }
	hop_down
}

case_bad_spec() {
	local spec out rc
	for spec in rcpt:2:451 data:0.5:250 delay:1h foo:1 rcpt:0.5 drop:x; do
		out=$("$SMRELAYCTL" sink --listen 127.0.0.1:1 --maildir "$CASE_DIR/m" \
			--fail "$spec" 2>&1)
		rc=$?
		assert_eq 2 "$rc" "exit status for --fail $spec" || return 1
		[[ $out == *"bad rule"* ]] ||
			{ fail_because "--fail $spec: no reason given: $out"; return 1; }
	done
	out=$("$SMRELAYCTL" sink --listen 127.0.0.1:1 --maildir "$CASE_DIR/m" \
		--fail drop:0.1 --seed abc 2>&1)
	assert_eq 2 "$?" "exit status for --seed abc" || return 1
}

case_peers_exit() {
	shared_stop
}

start_peers
run_case rcpt_451_queued case_rcpt_451_queued
run_case data_554_bounce case_data_554_bounce
run_case drop_after_data case_drop_after_data
run_case delay case_delay
run_case seeded case_seeded
run_case bad_spec case_bad_spec
run_case peers_exit case_peers_exit
it_finish
