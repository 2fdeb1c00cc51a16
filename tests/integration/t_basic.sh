#!/bin/bash
# t_basic.sh: the ESMTP dialogue of smrelayd and plain in-line relaying to
# `smrelayctl sink`.
. "$(dirname "$0")/lib.sh"
need_bins

# Banner and EHLO: the extensions the SPEC promises, STARTTLS only with a cert.
t_banner_ehlo() {
	start_sink && start_relay || return 1
	chat expect:220:relay.test \
		line:"EHLO client.test" expect:250:relay.test \
		mark:extensions \
		line:"EHLO client.test" expect:250:'^250[- ]PIPELINING' \
		line:"EHLO client.test" expect:250:'^250[- ]SIZE( |$)' \
		line:"EHLO client.test" expect:250:'^250[- ]8BITMIME' \
		line:"EHLO client.test" expect:250:'^250[- ]ENHANCEDSTATUSCODES' \
		line:"EHLO client.test" expect:250:'^250[- ]STARTTLS' \
		line:"EHLO client.test" expect:250:'^250[- ]SMTPUTF8' \
		line:"EHLO client.test" expect:250:'^250[- ]DSN' \
		line:QUIT expect:221 eof
}

t_no_starttls_without_cert() {
	start_sink && start_relay tls_cert_file= tls_key_file= || return 1
	chat expect:220 line:"EHLO client.test" expect:250:'!STARTTLS' \
		line:STARTTLS expect:'4|5' line:QUIT expect:221
}

# Simple commands: NOOP, RSET, VRFY, HELP, unknown verbs, QUIT.
t_simple_commands() {
	start_sink && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:NOOP expect:250 \
		line:RSET expect:250 \
		line:"VRFY postmaster" expect:252 \
		line:HELP expect:214 \
		line:"XYZZY plugh" expect:500:'5\.5\.1' \
		line:"NOOP" expect:250 \
		line:QUIT expect:221 eof
}

t_helo() {
	start_sink && start_relay || return 1
	chat expect:220 line:"HELO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: helo\r\n\r\nvia HELO\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net
}

# Commands out of order get 503, bad syntax 501; the session goes on.
t_sequence_and_syntax() {
	start_sink && start_relay || return 1
	chat expect:220 \
		line:"MAIL FROM:<sender@example.com>" expect:503 \
		line:"EHLO client.test" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:503 \
		line:"DATA" expect:503 \
		line:"MAIL FROM:<sender@example.com" expect:"501|553" \
		line:"MAIL FROM:<sender@@example.com>" expect:"501|553" \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:503 \
		line:"RCPT TO:<alice@example.net" expect:"501|553" \
		line:"DATA" expect:'503|554' \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:RSET expect:250 \
		line:"DATA" expect:503 \
		line:QUIT expect:221 || return 1
	stop_smrelayd || return 1
	assert_sink_count 0
}

# swaks, two recipients: one file at the sink with the envelope and our
# Received header (no TLS details: plain session).
t_swaks_delivery() {
	start_sink && start_relay || return 1
	swaks_send --to alice@example.net,bob@example.net \
		--header "Subject: basic delivery" --body "hello from t_basic" || return 1
	wait_delivered 1 || return 1
	assert_delivered_to alice@example.net || return 1
	assert_file_matches "$MSG" '^Return-Path: <sender@example.com>' "Return-Path" || return 1
	assert_file_matches "$MSG" '^Delivered-To: <?bob@example.net' "second recipient" || return 1
	assert_header "$MSG" Received 'by relay\.test' || return 1
	assert_header "$MSG" Subject '^basic delivery$' || return 1
	assert_file_matches "$MSG" 'hello from t_basic' "body" || return 1
	if "$PYTHON" "$IT_PY/mailfile.py" header "$MSG" Received | head -n 1 | grep -q 'version=TLS'; then
		fail_because "Received header claims TLS for a plaintext session"
		return 1
	fi
	stop_smrelayd && assert_sink_count 1
}

# Dot-stuffed lines, long body: arrives byte-identical (body hash).
t_transparency() {
	start_sink && start_relay || return 1
	gen_msg dots --size 200000 --to alice@example.net
	send_wire sender@example.com alice@example.net || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net &&
		assert_body "$MSG" "$MSG_HASH" &&
		assert_header "$MSG" Subject '^integration test$'
}

t_8bitmime() {
	start_sink && start_relay || return 1
	gen_msg eight --size 20000 --eightbit --to alice@example.net
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com> BODY=8BITMIME" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 sendfile:"$MSG_WIRE" expect:250 line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net && assert_body "$MSG" "$MSG_HASH"
}

t_null_sender() {
	start_sink && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: bounce\r\n\r\nnull sender\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net &&
		assert_file_matches "$MSG" '^Return-Path: <>' "null Return-Path"
}

# Three transactions on one connection: three messages, right envelopes.
t_three_transactions() {
	local i steps=(expect:220 line:"EHLO client.test" expect:250)
	start_sink && start_relay || return 1
	for i in 1 2 3; do
		steps+=(line:"MAIL FROM:<s$i@example.com>" expect:250
			line:"RCPT TO:<r$i@example.net>" expect:250
			line:DATA expect:354 send:"Subject: message $i\r\n\r\nbody $i\r\n.\r\n" expect:250)
	done
	chat "${steps[@]}" line:QUIT expect:221 || return 1
	wait_delivered 3 || return 1
	for i in 1 2 3; do
		assert_delivered_to "r$i@example.net" || return 1
		assert_file_matches "$MSG" "^Return-Path: <s$i@example.com>" "envelope of message $i" || return 1
		assert_header "$MSG" Subject "^message $i\$" || return 1
	done
	stop_smrelayd && assert_sink_count 3
}

# SIGTERM with an idle client connected: exit status 0.
t_sigterm() {
	start_sink && start_relay || return 1
	bg holder "$PYTHON" "$IT_PY/holdconns.py" --count 1 --status "$CASE_DIR/hold.status" 127.0.0.1 "$PORT"
	wait_for 10 test -s "$CASE_DIR/hold.status" || { fail_because "holdconns did not connect"; return 1; }
	stop_smrelayd
}

run_case banner_ehlo t_banner_ehlo
run_case no_starttls_without_cert t_no_starttls_without_cert
run_case simple_commands t_simple_commands
run_case helo t_helo
run_case sequence_and_syntax t_sequence_and_syntax
run_case swaks_delivery t_swaks_delivery
run_case transparency t_transparency
run_case 8bitmime t_8bitmime
run_case null_sender t_null_sender
run_case three_transactions t_three_transactions
run_case sigterm t_sigterm
it_finish
