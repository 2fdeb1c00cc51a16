#!/bin/bash
# t_postfix_proxy.sh: the recipe of docs/RECIPES.md "Postfix before-queue
# proxy" against a real Postfix (a private instance on free loopback ports):
# client -> Postfix smtpd (smtpd_proxy_filter = 127.0.0.1:RELAY) -> smrelayd
# -> Postfix re-injection smtpd -> final delivery to a capture sink.  The
# client's reply comes from smrelayd's verdict while it waits (a policy
# rejection reaches it as 5xx, nothing is queued), accepted mail arrives
# signed, and the client's address survives through XFORWARD.
. "$(dirname "$0")/common.sh"
pf_have || { echo "SKIP all: Postfix not installed, or not root"; exit 77; }

IN_PORT=$(free_port)            # where clients send mail (Postfix)
RELAY_PORT=$(free_port)         # smrelayd
REINJ_PORT=$(free_port)         # Postfix's re-injection listener
SINK_PORT=$(free_port)          # final delivery
pf_init proxy
pf_set "relayhost = [127.0.0.1]:$SINK_PORT"
pf_listen "$IN_PORT" "-o smtpd_proxy_filter=127.0.0.1:$RELAY_PORT" \
	"-o smtpd_proxy_timeout=120s" \
	"-o smtpd_client_connection_count_limit=10"
pf_listen "$REINJ_PORT" \
	"-o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters" \
	"-o smtpd_authorized_xforward_hosts=127.0.0.0/8" \
	"-o smtpd_helo_restrictions=" "-o smtpd_client_restrictions=" \
	"-o smtpd_relay_restrictions=permit_mynetworks,reject" \
	"-o mynetworks=127.0.0.0/8"
CASE=setup
if ! pf_start "$IN_PORT" "$REINJ_PORT"; then
	echo "FAIL setup: $IT_REASON"
	exit 1
fi

# Signed at the sink; the re-injection logs the original client 127.0.0.2.
t_proxy_filter() {
	local qid
	rc_start_sink "$SINK_PORT" &&
		rc_start_relay "$RELAY_PORT" "$REINJ_PORT" xforward_hosts=127.0.0.1 &&
		rc_send "$IN_PORT" || return 1
	wait_delivered 1 60 && assert_delivered_to bob@partner.example || return 1
	assert_header "$MSG" Content-Type 'multipart/signed' &&
		rc_verifies "$MSG" || return 1
	qid=$(rc_postfix_qid "$MSG")
	[ -n "$qid" ] || { fail_because "no Received header of the re-injection"; return 1; }
	pf_log_wait "$qid: client=localhost\\[127\\.0\\.0\\.1\\], .*orig_client=unknown\\[127\\.0\\.0\\.2\\]" || return 1
	grep "$qid: client=" "$PF_DIR/maillog" | sed 's/^/# /'
	grep -q -E 'session id=[0-9a-f]+ xforward addr=127\.0\.0\.2' "$CASE_DIR/smrelayd.log" ||
		fail_because "smrelayd did not log Postfix's XFORWARD for 127.0.0.2"
}

# A message smrelayd's policy rejects: the client hears 550 5.7.1 from
# Postfix during its own session, and nothing reaches the sink.
t_proxy_reject() {
	rc_start_sink "$SINK_PORT" &&
		RC_REJECT=eve@example.com rc_start_relay "$RELAY_PORT" "$REINJ_PORT" \
			xforward_hosts=127.0.0.1 || return 1
	if rc_send "$IN_PORT" --from eve@example.com; then
		fail_because "eve's message was accepted"
		return 1
	fi
	grep -q -E '^ *<\*\* *5[0-9][0-9] 5\.7\.1' "$SWAKS_LOG" ||
		{ fail_because "no 5xx 5.7.1 reply: $(grep -E '^ *<\*\*' "$SWAKS_LOG" | tr '\n' ' ')"; return 1; }
	# a message after it still goes through, signed
	rc_send "$IN_PORT" && wait_delivered 1 60 &&
		assert_delivered_to bob@partner.example && rc_verifies "$MSG" &&
		assert_sink_count 1
}

run_case proxy_filter t_proxy_filter
run_case proxy_reject t_proxy_reject
it_finish
