#!/bin/bash
# t_backpressure.sh: memory stays bounded when one side is slow.
#  - a 20 MB message (IT_BIG_MB) to a next hop that reads 4 KB every 10 ms:
#    it arrives intact and smrelayd's peak RSS stays below 64 MB;
#  - a client that pipelines NOOPs and never reads the replies: smrelayd's
#    RSS stays bounded and other clients are still served.
# RSS limits are not checked for AddressSanitizer builds (shadow memory).
. "$(dirname "$0")/lib.sh"
need_bins

RSS_LIMIT_KB=${IT_RSS_LIMIT_KB:-65536}

t_slow_nexthop_big_message() {
	local mb=${IT_BIG_MB:-20}
	start_nexthop --slow && start_relay || return 1
	gen_msg big --size $((mb * 1024 * 1024)) --to alice@example.net
	chat --timeout 600 expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com> SIZE=$(stat -c %s "$MSG_WIRE")" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 sendfile:"$MSG_WIRE" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net || return 1
	assert_body "$MSG" "$MSG_HASH" || return 1
	assert_rss_below "$SMRELAYD_PID" "$RSS_LIMIT_KB" "${mb} MB message to a slow next hop"
}

t_noop_flood() {
	local st
	start_nexthop && start_relay || return 1
	bg flood "$PYTHON" "$IT_PY/noopflood.py" --seconds 20 --status "$CASE_DIR/flood.status" 127.0.0.1 "$PORT"
	# Wait until the flood stalls (we stopped reading it) or ends.
	wait_for 25 test -s "$CASE_DIR/flood.status" ||
		{ fail_because "noopflood reported nothing"; return 1; }
	st=$(cat "$CASE_DIR/flood.status")
	echo "# noopflood: $st"
	# Another client is served while the flood connection is open.
	swaks_send --to alice@example.net || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net || return 1
	assert_rss_below "$SMRELAYD_PID" "$RSS_LIMIT_KB" "NOOP flood" || return 1
	kill -0 "$SMRELAYD_PID" 2>/dev/null || { fail_because "smrelayd died during the flood"; return 1; }
}

# Many slow clients at once: 50 connections each sending a 256 KB message
# in small pieces; all delivered.
t_many_concurrent() {
	local i pids=() bad=0
	start_nexthop && start_relay || return 1
	gen_msg conc --size 262144 --to many@example.net
	for i in $(seq 1 50); do
		timeout 120 "$PYTHON" "$IT_PY/chat.py" --timeout 60 127.0.0.1 "$PORT" expect:220 \
			line:"EHLO c$i.test" expect:250 line:"MAIL FROM:<s$i@example.com>" expect:250 \
			line:"RCPT TO:<m$i@example.net>" expect:250 line:DATA expect:354 \
			sendfile:"$MSG_WIRE" expect:250 line:QUIT expect:221 \
			>"$CASE_DIR/conc.$i.out" 2>&1 &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || bad=$((bad + 1))
	done
	[ $bad -eq 0 ] || { fail_because "$bad of 50 concurrent clients failed: $(grep -h '^step' "$CASE_DIR"/conc.*.out | head -n 2 | tr '\n' ' ')"; return 1; }
	wait_delivered 50 30 && assert_delivered_to m37@example.net && assert_body "$MSG" "$MSG_HASH"
}

run_case slow_nexthop_big_message t_slow_nexthop_big_message
run_case noop_flood t_noop_flood
run_case many_concurrent t_many_concurrent
it_finish
