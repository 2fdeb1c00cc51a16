#!/bin/bash
# t_reload.sh: SIGHUP re-reads the config without dropping connections; a
# broken config on reload is refused and the running one kept.
. "$(dirname "$0")/lib.sh"
need_bins

reloaded_count() { grep -c "reloaded" "$CASE_DIR/smrelayd.log"; }
_reloaded_ge() { [ "$(reloaded_count)" -ge "$1" ]; }

# max_recipients 2 -> 3 by SIGHUP: the new limit applies to new sessions,
# and a session opened before the reload keeps working through it.
t_reload_applies() {
	start_sink && start_relay max_recipients=2 || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<s@example.com>" expect:250 \
		line:"RCPT TO:<r1@example.net>" expect:250 \
		line:"RCPT TO:<r2@example.net>" expect:250 \
		line:"RCPT TO:<r3@example.net>" expect:452:'4\.5\.3' \
		line:QUIT expect:221 || return 1
	# A session that stays open across the reload.
	"$PYTHON" "$IT_PY/chat.py" 127.0.0.1 "$PORT" expect:220 \
		line:"EHLO held.test" expect:250 sleep:3 \
		line:"MAIL FROM:<held@example.com>" expect:250 \
		line:"RCPT TO:<held@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: held\r\n\r\nx\r\n.\r\n" expect:250 \
		line:QUIT expect:221 >"$CASE_DIR/held.out" 2>"$CASE_DIR/held.log" &
	local held=$!
	sleep 1
	sed -i 's/^max_recipients = 2$/max_recipients = 3/' "$CONF"
	kill -HUP "$SMRELAYD_PID"
	wait_for 10 _reloaded_ge 1 || { fail_because "no 'reloaded' in the log after SIGHUP"; return 1; }
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<s@example.com>" expect:250 \
		line:"RCPT TO:<r1@example.net>" expect:250 \
		line:"RCPT TO:<r2@example.net>" expect:250 \
		line:"RCPT TO:<r3@example.net>" expect:250 \
		line:"RCPT TO:<r4@example.net>" expect:452:'4\.5\.3' \
		line:QUIT expect:221 || return 1
	wait "$held" || { fail_because "the session held across SIGHUP failed: $(tail -n 3 "$CASE_DIR/held.log" | tr '\n' ' ')"; return 1; }
	wait_delivered 1 && assert_delivered_to held@example.net
}

# A broken config on SIGHUP: logged, the old config stays, still serving.
t_reload_broken() {
	start_sink && start_relay max_recipients=2 || return 1
	echo "no_such_key = 1" >>"$CONF"
	kill -HUP "$SMRELAYD_PID"
	wait_for 10 grep -q "reload failed" "$CASE_DIR/smrelayd.log" ||
		{ fail_because "no 'reload failed' in the log"; return 1; }
	assert_file_matches "$CASE_DIR/smrelayd.log" 'no_such_key' "the log names the bad key" || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<s@example.com>" expect:250 \
		line:"RCPT TO:<r1@example.net>" expect:250 \
		line:"RCPT TO:<r2@example.net>" expect:250 \
		line:"RCPT TO:<r3@example.net>" expect:452 \
		line:QUIT expect:221 || return 1
	stop_smrelayd
}

run_case reload_applies t_reload_applies
run_case reload_broken t_reload_broken
it_finish
