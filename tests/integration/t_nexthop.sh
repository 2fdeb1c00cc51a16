#!/bin/bash
# t_nexthop.sh: in-line relaying semantics: the next hop's replies are
# mirrored (per recipient at RCPT, at end of DATA), temporary failures give
# 4xx (never 250), DSN and SMTPUTF8 parameters reach the next hop, outbound
# connections are reused, and Postfix's smtp-source/smtp-sink work through us.
. "$(dirname "$0")/lib.sh"
need_bins

# Per-recipient rejection at the next hop -> the same 5xx at our RCPT; the
# message goes to the accepted recipient only.
t_rcpt_rejected_mirrored() {
	start_nexthop --rcpt-reply 'bob@=550 5.1.1 <bob@example.net>: Recipient address rejected' &&
		start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:"RCPT TO:<bob@example.net>" expect:550:'5\.1\.1' \
		line:DATA expect:354 send:"Subject: mirrored\r\n\r\nbody\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net || return 1
	stop_smrelayd && assert_nothing_for bob@example.net
}

# A 4xx for one recipient at RCPT: accepted (250), relayed to the others at
# once, and that recipient's copy spooled for a retry.
t_rcpt_tempfail_queued() {
	start_nexthop --rcpt-reply 'carol@=451 4.3.0 <carol@example.net>: try again later' &&
		start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<carol@example.net>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: temp\r\n\r\nbody\r\n.\r\n" expect:'250:relayed to 1 recipient.s., queued as' \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net || return 1
	assert_queued carol@example.net '451 4.3.0' || return 1
	stop_smrelayd && assert_nothing_for carol@example.net
}

# Every recipient refused: DATA is refused, nothing is relayed.
t_all_rcpts_rejected() {
	start_nexthop --rcpt-reply '@example.net=550 5.1.1 no such user' && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<x@example.net>" expect:550 \
		line:"RCPT TO:<y@example.net>" expect:550 \
		line:DATA expect:'503|554' \
		line:QUIT expect:221 || return 1
	stop_smrelayd && assert_sink_count 0
}

# The next hop refuses the content at end of DATA: our client gets that 5xx.
t_data_rejected() {
	start_nexthop --data-reply '554 5.7.1 Message content rejected' && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: bad\r\n\r\nbad content\r\n.\r\n" expect:554:'5\.7\.1' \
		line:QUIT expect:221 || return 1
	stop_smrelayd && assert_sink_count 0 && assert_file_lacks "$NH_EVENTS" STORED "next hop events"
}

# A temporary failure at end of DATA: 4xx, never 250 (until the spool lands;
# then this becomes "250 and queued").
t_data_tempfail() {
	start_nexthop --data-reply '451 4.3.0 Error: queue file write error' && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: t\r\n\r\nx\r\n.\r\n" expect:'250:queued as' \
		line:QUIT expect:221 || return 1
	assert_queued alice@example.net 'queue file write error'
}

t_mail_rejected() {
	start_nexthop --mail-reply '550 5.7.1 Sender blocked' && start_relay || return 1
	swaks_expect_reject 5 --to alice@example.net || return 1
	stop_smrelayd && assert_sink_count 0
}

# Nothing listens at the next hop: the message is spooled (250 queued as),
# and delivered once the next hop is up and the queue is flushed.
t_nexthop_down() {
	NH_PORT=$(free_port)
	start_relay || return 1
	swaks_expect_queued --to alice@example.net || return 1
	assert_queued alice@example.net 'cannot connect' || return 1
	start_sink || return 1
	# start_sink picked a new port: point the daemon at it
	write_conf "$CONF" relay="127.0.0.1:$NH_PORT" && kill -HUP "$SMRELAYD_PID" || return 1
	sleep 0.5
	"$SMRELAYCTL" -c "$CONF" queue flush "$QUEUE_ID" >/dev/null || { fail_because "queue flush failed"; return 1; }
	wait_delivered 1 && assert_delivered_to alice@example.net || return 1
	wait_for 10 queue_empty || { fail_because "still queued: $("$SMRELAYCTL" -c "$CONF" queue list)"; return 1; }
}

queue_empty() { [ -z "$("$SMRELAYCTL" -c "$CONF" queue list)" ]; }

# The next hop hangs up without a reply at RCPT.
t_nexthop_disconnects() {
	start_smtp_sink -q RCPT && start_relay || return 1
	swaks_expect_queued --to alice@example.net || return 1
	assert_queued alice@example.net || return 1
	stop_smrelayd && assert_sink_count 0
}

# DSN parameters (RFC 3461) reach Postfix's smtp-sink, which dumps them.
t_dsn_passthrough() {
	start_smtp_sink && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250:DSN \
		line:"MAIL FROM:<sender@example.com> RET=HDRS ENVID=env-42.xyz" expect:250 \
		line:"RCPT TO:<alice@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@example.net" expect:250 \
		line:"RCPT TO:<bob@example.net> NOTIFY=NEVER" expect:250 \
		line:DATA expect:354 send:"Subject: dsn\r\n\r\nx\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	stop_smrelayd || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net || return 1
	assert_file_matches "$MSG" '^X-Mail-Args: <sender@example.com>.* RET=HDRS' "RET" &&
		assert_file_matches "$MSG" '^X-Mail-Args: .*ENVID=env-42\.xyz' "ENVID" &&
		assert_file_matches "$MSG" '^X-Rcpt-Args: <alice@example.net>.*NOTIFY=SUCCESS,FAILURE' "NOTIFY" &&
		assert_file_matches "$MSG" '^X-Rcpt-Args: <alice@example.net>.*ORCPT=rfc822;alice@example.net' "ORCPT" &&
		assert_file_matches "$MSG" '^X-Rcpt-Args: <bob@example.net>.*NOTIFY=NEVER' "NOTIFY=NEVER"
}

t_smtputf8_passthrough() {
	start_nexthop && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250:SMTPUTF8 \
		line:"MAIL FROM:<jörg@exämple.com> SMTPUTF8" expect:250 \
		line:"RCPT TO:<ünïcode@example.net>" expect:250 \
		line:DATA expect:354 send:"From: jörg@exämple.com\r\nSubject: grüße\r\n\r\nüñí\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to 'ünïcode@example.net' || return 1
	assert_file_matches "$MSG" '^X-Mail-Args: <jörg@exämple.com> .*SMTPUTF8' "SMTPUTF8 at the next hop" &&
		assert_file_matches "$MSG" '^Subject: grüße' "UTF-8 header"
}

# Five messages in a row on separate inbound connections: fewer than five
# outbound connections (the relay client reuses them).
t_connection_reuse() {
	local i conns
	start_nexthop && start_relay || return 1
	for i in 1 2 3 4 5; do
		swaks_send --to "r$i@example.net" || return 1
	done
	wait_delivered 5 || return 1
	conns=$(grep -c '^CONNECT' "$NH_EVENTS")
	echo "# $conns outbound connection(s) for 5 messages"
	[ "$conns" -lt 5 ] || fail_because "no outbound connection reuse: $conns connections for 5 messages"
}

# Postfix's smtp-source (10 parallel sessions, 200 messages) through us into
# Postfix's smtp-sink: every message arrives.
t_smtp_source_load() {
	have smtp-source || { skip "smtp-source not installed"; return 0; }
	start_smtp_sink && start_relay || return 1
	timeout 120 smtp-source -s 10 -m 200 -l 2048 -f sender@example.com -t rcpt@example.net \
		"127.0.0.1:$PORT" >"$CASE_DIR/smtp-source.log" 2>&1 ||
		{ fail_because "smtp-source failed: $(tail -n 2 "$CASE_DIR/smtp-source.log")"; return 1; }
	stop_smrelayd || return 1
	wait_delivered 200 30
}

run_case rcpt_rejected_mirrored t_rcpt_rejected_mirrored
run_case rcpt_tempfail_queued t_rcpt_tempfail_queued
run_case all_rcpts_rejected t_all_rcpts_rejected
run_case data_rejected t_data_rejected
run_case data_tempfail t_data_tempfail
run_case mail_rejected t_mail_rejected
run_case nexthop_down t_nexthop_down
run_case nexthop_disconnects t_nexthop_disconnects
run_case dsn_passthrough t_dsn_passthrough
run_case smtputf8_passthrough t_smtputf8_passthrough
run_case connection_reuse t_connection_reuse
run_case smtp_source_load t_smtp_source_load
it_finish
