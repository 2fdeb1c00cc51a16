#!/bin/bash
# t_pipelining.sh: RFC 2920 command pipelining: replies come in order, one
# per command, including the next hop's per-recipient rejections.
. "$(dirname "$0")/lib.sh"
need_bins

t_swaks_pipeline() {
	start_nexthop && start_relay || return 1
	swaks_send --pipeline --to a@example.net,b@example.net,c@example.net || return 1
	assert_file_matches "$SWAKS_LOG" 'PIPELINING' "server advertised PIPELINING" || return 1
	wait_delivered 1 && assert_delivered_to a@example.net &&
		assert_file_matches "$MSG" '^Delivered-To: c@example.net' "third recipient"
}

# MAIL, RCPT, RCPT, DATA in one write: 250 250 250 354 in that order.
t_one_write_group() {
	start_nexthop && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250:PIPELINING \
		send:"MAIL FROM:<sender@example.com>\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n" \
		expect:250 expect:250 expect:250 expect:354 \
		send:"Subject: pipelined\r\n\r\nbody\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to a@example.net &&
		assert_file_matches "$MSG" '^Delivered-To: b@example.net' "second recipient"
}

# The next hop refuses the middle recipient: its 550 comes back in place.
t_one_write_with_reject() {
	start_nexthop --rcpt-reply 'bob@=550 5.1.1 <bob@example.net>: no such user' && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		send:"MAIL FROM:<sender@example.com>\r\nRCPT TO:<alice@example.net>\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<carol@example.net>\r\nDATA\r\n" \
		expect:250 expect:250 expect:550:'5\.1\.1' expect:250 expect:354 \
		send:"Subject: pipelined\r\n\r\nbody\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net &&
		assert_file_matches "$MSG" '^Delivered-To: carol@example.net' "third recipient" || return 1
	stop_smrelayd && assert_nothing_for bob@example.net
}

# All RCPTs of a group go to the next hop together; a local refusal (bad
# NOTIFY) and the next hop's 550 still come back exactly in command order.
t_one_write_mixed() {
	start_nexthop --rcpt-reply 'bob@=550 5.1.1 <bob@example.net>: no such user' && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		send:"MAIL FROM:<sender@example.com>\r\nRCPT TO:<alice@example.net>\r\nRCPT TO:<dave@example.net> NOTIFY=BOGUS\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<carol@example.net>\r\nNOOP\r\nDATA\r\n" \
		expect:250:'2\.1\.0' expect:250:'2\.1\.5' expect:501:NOTIFY expect:550:'5\.1\.1' \
		expect:250:'2\.1\.5' expect:250:'2\.0\.0' expect:354 \
		send:"Subject: mixed\r\n\r\nbody\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net &&
		assert_file_matches "$MSG" '^Delivered-To: carol@example.net' "fourth recipient" || return 1
	stop_smrelayd && assert_nothing_for bob@example.net && assert_nothing_for dave@example.net
}

# The same over STARTTLS, where replies are gathered into one TLS record
# per loop round: still one per command, in command order, then a second
# group and QUIT.
t_one_write_mixed_tls() {
	start_nexthop --rcpt-reply 'bob@=550 5.1.1 <bob@example.net>: no such user' && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250:STARTTLS \
		line:STARTTLS expect:220 tls line:"EHLO client.test" expect:250:PIPELINING \
		send:"MAIL FROM:<sender@example.com>\r\nRCPT TO:<alice@example.net>\r\nRCPT TO:<dave@example.net> NOTIFY=BOGUS\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<carol@example.net>\r\nNOOP\r\nDATA\r\n" \
		expect:250:'2\.1\.0' expect:250:'2\.1\.5' expect:501:NOTIFY expect:550:'5\.1\.1' \
		expect:250:'2\.1\.5' expect:250:'2\.0\.0' expect:354 \
		send:"Subject: mixed tls\r\n\r\nbody\r\n.\r\n" expect:250 \
		send:"MAIL FROM:<sender@example.com>\r\nRCPT TO:<erin@example.net>\r\nDATA\r\n" \
		expect:250 expect:250 expect:354 \
		send:"Subject: second\r\n\r\nbody\r\n.\r\nQUIT\r\n" expect:250 expect:221 || return 1
	wait_delivered 2 && assert_delivered_to erin@example.net && assert_delivered_to alice@example.net &&
		assert_file_matches "$MSG" '^Delivered-To: carol@example.net' "fourth recipient" || return 1
	stop_smrelayd && assert_nothing_for bob@example.net && assert_nothing_for dave@example.net
}

# No valid recipient: DATA refused and no 354; the session stays in command
# mode (the RSET after it is answered).
t_one_write_all_rejected() {
	start_nexthop --rcpt-reply 'bob@=550 5.1.1 no such user' && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		send:"MAIL FROM:<sender@example.com>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\nRSET\r\n" \
		expect:250 expect:550 expect:'503|554' expect:250 \
		line:QUIT expect:221 || return 1
	stop_smrelayd && assert_sink_count 0
}

# Two transactions: the second pipelined right behind the first's end of
# data, QUIT behind the second.
t_back_to_back() {
	start_nexthop && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		send:"RSET\r\nMAIL FROM:<s1@example.com>\r\nRCPT TO:<r1@example.net>\r\nDATA\r\n" \
		expect:250 expect:250 expect:250 expect:354 \
		send:"Subject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<s2@example.com>\r\nRCPT TO:<r2@example.net>\r\nDATA\r\n" \
		expect:250 expect:250 expect:250 expect:354 \
		send:"Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n" expect:250 expect:221 eof || return 1
	wait_delivered 2 && assert_delivered_to r1@example.net &&
		assert_file_matches "$MSG" '^Return-Path: <s1@example.com>' "first envelope" &&
		assert_delivered_to r2@example.net &&
		assert_file_matches "$MSG" '^Return-Path: <s2@example.com>' "second envelope"
}

# A pipelined group with a relay-denied recipient from outside relay_networks.
t_pipelined_relay_denied() {
	start_nexthop && start_relay relay_networks=127.0.0.1/32 || return 1
	chat --bind 127.0.0.2 expect:220 line:"EHLO client.test" expect:250 \
		send:"MAIL FROM:<sender@example.com>\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nNOOP\r\n" \
		expect:250 expect:554:'5\.7\.1' expect:554:'5\.7\.1' expect:'503|554' expect:250 \
		line:QUIT expect:221 || return 1
	stop_smrelayd && assert_sink_count 0
}

run_case swaks_pipeline t_swaks_pipeline
run_case one_write_group t_one_write_group
run_case one_write_with_reject t_one_write_with_reject
run_case one_write_mixed t_one_write_mixed
run_case one_write_mixed_tls t_one_write_mixed_tls
run_case one_write_all_rejected t_one_write_all_rejected
run_case back_to_back t_back_to_back
run_case pipelined_relay_denied t_pipelined_relay_denied
it_finish
