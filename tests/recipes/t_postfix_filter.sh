#!/bin/bash
# t_postfix_filter.sh: the recipe of docs/RECIPES.md "Postfix after-queue
# content filter" against a real Postfix (a private instance on free
# loopback ports): client -> Postfix smtpd (content_filter =
# smtp:[127.0.0.1]:RELAY) -> smrelayd -> Postfix re-injection smtpd
# (content_filter empty, smtpd_authorized_xforward_hosts) -> final delivery
# to a capture sink.  The message arrives signed (openssl cms -verify), and
# the client's address survives both hops through XFORWARD: Postfix tells
# smrelayd (xforward_hosts), smrelayd tells the re-injection listener.
. "$(dirname "$0")/common.sh"
pf_have || { echo "SKIP all: Postfix not installed, or not root"; exit 77; }

IN_PORT=$(free_port)            # where clients send mail (Postfix)
RELAY_PORT=$(free_port)         # smrelayd
REINJ_PORT=$(free_port)         # Postfix's re-injection listener
SINK_PORT=$(free_port)          # final delivery
pf_init filter
pf_set "content_filter = smtp:[127.0.0.1]:$RELAY_PORT" \
	"smtp_send_xforward_command = yes" \
	"relayhost = [127.0.0.1]:$SINK_PORT"
pf_listen "$IN_PORT"
pf_listen "$REINJ_PORT" "-o content_filter=" \
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

# Through Postfix, smrelayd and back into Postfix: signed at the sink, and
# the re-injection listener records the client (127.0.0.2), not smrelayd
# (127.0.0.1), as the message's original client: Postfix logs it as
# orig_client= on the line of the queue ID its Received header gives.
t_content_filter() {
	local qid
	rc_start_sink "$SINK_PORT" &&
		rc_start_relay "$RELAY_PORT" "$REINJ_PORT" xforward_hosts=127.0.0.1 &&
		rc_send "$IN_PORT" || return 1
	wait_delivered 1 60 && assert_delivered_to bob@partner.example || return 1
	assert_header "$MSG" Content-Type 'multipart/signed' &&
		rc_verifies "$MSG" || return 1
	qid=$(rc_postfix_qid "$MSG")
	[ -n "$qid" ] || { fail_because "no Received header of the re-injection"; return 1; }
	pf_log_wait "$qid: client=localhost\[127\.0\.0\.1\], .*orig_client=unknown\[127\.0\.0\.2\]" || return 1
	grep "$qid: client=" "$PF_DIR/maillog" | sed 's/^/# /'
	grep -q -E 'session id=[0-9a-f]+ xforward addr=127\.0\.0\.2 helo=client\.test' "$CASE_DIR/smrelayd.log" ||
		{ fail_because "smrelayd did not log Postfix's XFORWARD for 127.0.0.2"; return 1; }
	# smrelayd's own Received still names the hop it came from
	assert_header "$MSG" Received 'by relay\.test \(smrelay\)'
}

# Without xforward_hosts smrelayd offers no XFORWARD to Postfix: what the
# re-injection listener records is what smrelayd saw (Postfix, 127.0.0.1),
# and mail still flows signed.
t_content_filter_untrusted() {
	local qid
	rc_start_sink "$SINK_PORT" &&
		rc_start_relay "$RELAY_PORT" "$REINJ_PORT" &&
		rc_send "$IN_PORT" || return 1
	wait_delivered 1 60 && assert_delivered_to bob@partner.example &&
		rc_verifies "$MSG" || return 1
	qid=$(rc_postfix_qid "$MSG")
	[ -n "$qid" ] || { fail_because "no Received header of the re-injection"; return 1; }
	pf_log_wait "$qid: client=localhost\[127\.0\.0\.1\], .*orig_client=unknown\[127\.0\.0\.1\]" &&
		assert_file_lacks "$CASE_DIR/smrelayd.log" 'session id=[0-9a-f]+ xforward' "smrelayd log"
}

run_case content_filter t_content_filter
run_case content_filter_untrusted t_content_filter_untrusted
it_finish
