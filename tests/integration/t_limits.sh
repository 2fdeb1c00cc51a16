#!/bin/bash
# t_limits.sh: inbound limits and refusals: line length, relay_networks,
# max_recipients, max_message_size, max_connections, inbound_tls = encrypt,
# too many errors.
. "$(dirname "$0")/lib.sh"
need_bins

# A command line of 1000 bytes is accepted (we are lenient beyond RFC 5321's
# 512), one of 5000 gets 500 5.5.2 and the daemon keeps serving.
t_long_lines() {
	local a1000 a5000
	start_sink && start_relay || return 1
	a1000=$(printf 'a%.0s' $(seq 1 995))
	a5000=$(printf 'a%.0s' $(seq 1 5000))
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"NOOP $a1000" expect:250 \
		line:"NOOP $a5000" expect:500:'5\.5\.2' || return 1
	chat expect:220 line:"EHLO client.test" expect:250 line:QUIT expect:221
}

# 200 KB without any line end: refused as soon as the cap is crossed, not
# buffered until a newline arrives; others are still served.
t_endless_line() {
	start_sink && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		repeat:200000:A expect:500:'5\.5\.2' || return 1
	chat expect:220 line:"EHLO client.test" expect:250 line:QUIT expect:221
}

# A client outside relay_networks gets 554 5.7.1 at RCPT; inside it relays.
t_relay_denied() {
	start_sink && start_relay relay_networks=127.0.0.1/32 || return 1
	chat --bind 127.0.0.2 expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<outsider@example.net>" expect:554:'5\.7\.1' \
		line:DATA expect:'503|554' \
		line:QUIT expect:221 || return 1
	swaks_expect_reject 5 --local-interface 127.0.0.2 --to outsider2@example.net || return 1
	assert_file_matches "$SWAKS_LOG" '<\*\* *554 5\.7\.1' "swaks from 127.0.0.2" || return 1
	swaks_send --to insider@example.net || return 1
	wait_delivered 1 && assert_delivered_to insider@example.net || return 1
	stop_smrelayd || return 1
	assert_nothing_for outsider@example.net && assert_nothing_for outsider2@example.net
}

# max_recipients = 3: the 4th RCPT gets 452 4.5.3, the message goes to 3.
t_max_recipients() {
	start_sink && start_relay max_recipients=3 || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<r1@example.net>" expect:250 \
		line:"RCPT TO:<r2@example.net>" expect:250 \
		line:"RCPT TO:<r3@example.net>" expect:250 \
		line:"RCPT TO:<r4@example.net>" expect:452:'4\.5\.3' \
		line:DATA expect:354 send:"Subject: four\r\n\r\nbody\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to r1@example.net &&
		assert_file_matches "$MSG" '^Delivered-To: <?r3@example.net' "third recipient" || return 1
	stop_smrelayd && assert_nothing_for r4@example.net
}

# max_message_size: advertised in EHLO, enforced on SIZE= and on the data.
t_max_size() {
	start_sink && start_relay max_message_size=10000 || return 1
	gen_msg big --size 30000 --to big@example.net
	chat expect:220 line:"EHLO client.test" expect:250:'^250[- ]SIZE 10000$' \
		line:"MAIL FROM:<sender@example.com> SIZE=20000" expect:552:'5\.3\.4' \
		line:"MAIL FROM:<sender@example.com> SIZE=5000" expect:250 \
		line:"RCPT TO:<small@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: small\r\n\r\nsmall\r\n.\r\n" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<big@example.net>" expect:250 \
		line:DATA expect:354 sendfile:"$MSG_WIRE" expect:552:'5\.3\.4' \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to small@example.net || return 1
	stop_smrelayd && assert_nothing_for big@example.net && assert_sink_count 1
}

# max_connections = 2: the third concurrent client gets 421 4.7.0 and is
# disconnected; once the others leave, clients are served again.
t_max_connections() {
	start_sink && start_relay max_connections=2 || return 1
	bg holder "$PYTHON" "$IT_PY/holdconns.py" --count 2 --status "$CASE_DIR/hold.status" 127.0.0.1 "$PORT"
	local holder=$BG_PID
	wait_for 15 test -s "$CASE_DIR/hold.status" || { fail_because "holdconns did not report"; return 1; }
	assert_file_matches "$CASE_DIR/hold.status" 'codes=220:2$' "two held connections" || return 1
	chat expect:421:'4\.7\.0' eof || return 1
	kill "$holder"
	wait "$holder" 2>/dev/null
	untrack "$holder"
	wait_for 10 chat expect:220 line:QUIT expect:221 ||
		{ fail_because "no 220 after the held connections closed"; return 1; }
}

# inbound_tls = encrypt: MAIL before STARTTLS gets 530 5.7.0.
t_inbound_tls_encrypt() {
	start_sink && start_relay inbound_tls=encrypt || return 1
	chat expect:220 line:"EHLO client.test" expect:250:STARTTLS \
		line:"MAIL FROM:<sender@example.com>" expect:530:'5\.7\.0' \
		line:STARTTLS expect:220 tls \
		line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: tls\r\n\r\nover tls\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net
}

# Too many errors: eventually 421 and the connection is closed.
t_too_many_errors() {
	start_sink && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		errloop:100:421:"BOGUS command" eof || return 1
	chat expect:220 line:QUIT expect:221
}

run_case long_lines t_long_lines
run_case endless_line t_endless_line
run_case relay_denied t_relay_denied
run_case max_recipients t_max_recipients
run_case max_size t_max_size
run_case max_connections t_max_connections
run_case inbound_tls_encrypt t_inbound_tls_encrypt
run_case too_many_errors t_too_many_errors
it_finish
