#!/bin/bash
# t_tls.sh: inbound TLS: STARTTLS and implicit TLS with swaks, openssl
# s_client and python; STARTTLS command injection (CVE-2011-0411).
. "$(dirname "$0")/lib.sh"
need_bins

# assert_tls_received: the captured MSG carries our Received header with the
# TLS details of the inbound session.
assert_tls_received() {
	assert_header "$MSG" Received 'by relay\.test' &&
		assert_header "$MSG" Received '\(version=TLSv1\.[23] cipher=[A-Za-z0-9_-]+'
}

t_starttls_swaks() {
	start_sink && start_relay || return 1
	swaks_send -tls --to alice@example.net --header "Subject: starttls" || return 1
	assert_file_matches "$SWAKS_LOG" 'TLS started' "swaks used STARTTLS" || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net && assert_tls_received
}

t_implicit_swaks() {
	start_sink && start_relay listen="127.0.0.1:\$PORT tls=implicit" || return 1
	swaks_send --tlsc --to alice@example.net --header "Subject: implicit" || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net && assert_tls_received
}

# Both kinds of listener at once; the certificate verifies against the CA.
t_two_listeners_verified() {
	local p2
	p2=$(free_port)
	start_sink && start_relay listen+="127.0.0.1:$p2 tls=implicit" || return 1
	wait_listen "$p2" "$SMRELAYD_PID" 10 || { fail_because "second listener $p2 not up"; return 1; }
	chat --cafile "$PKI/ca.pem" --sni localhost expect:220 line:"EHLO client.test" expect:250 \
		line:STARTTLS expect:220 tls line:"EHLO client.test" expect:250 line:QUIT expect:221 || return 1
	CHAT_PORT=$p2 chat --implicit-tls --cafile "$PKI/ca.pem" --sni localhost expect:220 \
		line:"EHLO client.test" expect:250:'!STARTTLS' line:QUIT expect:221
}

# After STARTTLS: the client must EHLO again (RFC 3207 4.2: the server
# forgets what it knew), no STARTTLS in EHLO, a second STARTTLS is refused.
t_after_tls() {
	start_sink && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250:STARTTLS \
		line:STARTTLS expect:220 tls \
		line:"MAIL FROM:<before-ehlo@example.com>" expect:503 \
		line:"EHLO client.test" expect:250:'!STARTTLS' \
		line:STARTTLS expect:5 \
		line:"RCPT TO:<alice@example.net>" expect:503 \
		line:"MAIL FROM:<after@example.com>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: after\r\n\r\nx\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net &&
		assert_file_matches "$MSG" '^Return-Path: <after@example.com>' "envelope after TLS"
}

# CVE-2011-0411: "STARTTLS\r\nRSET\r\n" in one packet.  The RSET was sent in
# plaintext before the handshake and must be discarded: after the handshake
# the first reply read is the one to HELP (214), not a 250 for RSET.
t_starttls_injection() {
	start_sink && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		send:"STARTTLS\r\nRSET\r\n" expect:220 tls \
		line:HELP expect:214 \
		line:"EHLO client.test" expect:250 \
		line:QUIT expect:221 || return 1
	# The same with a whole transaction injected: nothing may be relayed.
	chat expect:220 line:"EHLO client.test" expect:250 \
		send:"STARTTLS\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<injected@example.net>\r\nDATA\r\nSubject: injected\r\n\r\nx\r\n.\r\n" \
		expect:220 tls \
		line:HELP expect:214 \
		line:"EHLO client.test" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:503 \
		line:QUIT expect:221 || return 1
	stop_smrelayd && assert_nothing_for injected@example.net
}

# openssl s_client over STARTTLS and implicit TLS, scripted via stdin.
s_client_session() {   # s_client_session TAG RCPT s_client-options...
	local tag=$1 rcpt=$2
	shift 2
	{
		sleep 1
		printf 'EHLO client.test\n'; sleep 0.5
		printf 'MAIL FROM:<sender@example.com>\n'; sleep 0.3
		printf 'RCPT TO:<%s>\n' "$rcpt"; sleep 0.3
		printf 'DATA\n'; sleep 0.3
		printf 'Subject: %s\n\nsent by openssl s_client\n.\n' "$tag"; sleep 1
		printf 'QUIT\n'; sleep 0.5
	} | timeout 30 openssl s_client -quiet -crlf -ign_eof "$@" >"$CASE_DIR/$tag.out" 2>"$CASE_DIR/$tag.err"
	grep -q '^250 ' "$CASE_DIR/$tag.out" && grep -q '^221' "$CASE_DIR/$tag.out" ||
		fail_because "s_client $tag: $(tr '\r\n' '  ' <"$CASE_DIR/$tag.out" | tail -c 300)"
}

t_s_client_starttls() {
	start_sink && start_relay || return 1
	s_client_session starttls alice@example.net -starttls smtp -connect "127.0.0.1:$PORT" \
		-CAfile "$PKI/ca.pem" -verify_return_error -verify_hostname localhost || return 1
	grep -q '^354' "$CASE_DIR/starttls.out" || { fail_because "no 354 from s_client session"; return 1; }
	wait_delivered 1 && assert_delivered_to alice@example.net && assert_tls_received &&
		assert_header "$MSG" Subject '^starttls$'
}

t_s_client_implicit() {
	start_sink && start_relay listen="127.0.0.1:\$PORT tls=implicit" || return 1
	s_client_session implicit bob@example.net -connect "127.0.0.1:$PORT" \
		-CAfile "$PKI/ca.pem" -verify_return_error -verify_hostname localhost || return 1
	wait_delivered 1 && assert_delivered_to bob@example.net && assert_tls_received
}

# A client that is not TLS on an implicit listener: no SMTP banner in clear,
# and the daemon keeps serving TLS clients.
t_plaintext_on_implicit() {
	start_sink && start_relay listen="127.0.0.1:\$PORT tls=implicit" || return 1
	if timeout 10 "$PYTHON" "$IT_PY/chat.py" --timeout 5 127.0.0.1 "$PORT" expect:220 \
		2>>"$CASE_DIR/chat.log" >/dev/null; then
		fail_because "an implicit-TLS listener sent a plaintext 220 banner"
		return 1
	fi
	chat --implicit-tls expect:220 line:QUIT expect:221
}

run_case starttls_swaks t_starttls_swaks
run_case implicit_swaks t_implicit_swaks
run_case two_listeners_verified t_two_listeners_verified
run_case after_tls t_after_tls
run_case starttls_injection t_starttls_injection
run_case s_client_starttls t_s_client_starttls
run_case s_client_implicit t_s_client_implicit
run_case plaintext_on_implicit t_plaintext_on_implicit
it_finish
