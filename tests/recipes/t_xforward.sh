#!/bin/bash
# t_xforward.sh: XFORWARD accepted by smrelayd only from xforward_hosts
# (docs/RECIPES.md, smrelay.conf(5)): offered in EHLO only to them, refused
# from others (550 5.7.0) with the session going on, bad values refused
# (501 5.5.4) without effect, never inside a transaction (503 5.5.1), and
# what was accepted is passed on to a next hop that offers XFORWARD
# (Postfix's smtp-sink here) for that one transaction only.  The full
# Postfix round trip is in t_postfix_filter.sh and t_postfix_proxy.sh.
. "$(dirname "$0")/common.sh"
have smtp-sink || { echo "SKIP all: smtp-sink not installed"; exit 77; }

# Not in xforward_hosts (the default: none): no offer, 550, mail still flows.
t_xforward_untrusted() {
	start_smtp_sink && start_relay listen='127.0.0.1:$PORT tls=none' || return 1
	chat expect:220 line:"EHLO client.test" expect:250:'!XFORWARD' \
		line:"XFORWARD ADDR=192.0.2.7" expect:550:'5\.7\.0' \
		line:"MAIL FROM:<alice@example.com>" expect:250 \
		line:"RCPT TO:<bob@partner.example>" expect:250 \
		line:DATA expect:354 send:"Subject: x\r\n\r\nhi\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_file_lacks "$CASE_DIR/smrelayd.log" \
		'session id=[0-9a-f]+ xforward addr=' "smrelayd log" &&
		assert_file_matches "$CASE_DIR/smrelayd.log" 'xforward reject=not-authorized peer=127\.0\.0\.1' "smrelayd log" &&
		assert_file_matches "$CASE_DIR/smrelayd.log" 'relay id=[0-9a-f]+ to=127\.0\.0\.1:[0-9]+ xforward addr=127\.0\.0\.1$' "smrelayd log (its own view sent on)"
}

# From xforward_hosts: offered; a bad value changes nothing; a good one
# holds for the next transaction only, and goes to the next hop.
t_xforward_trusted() {
	start_smtp_sink && start_relay listen='127.0.0.1:$PORT tls=none' \
		xforward_hosts='127.0.0.0/8, ::1' || return 1
	chat expect:220 line:"EHLO filter.test" expect:250:'XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE' \
		line:"XFORWARD HELO=a+0D+0AX-Injected:+20yes" expect:501:'5\.5\.4 Bad XFORWARD: HELO' \
		line:"XFORWARD ADDR=192.0.2.7 BOGUS=1" expect:501:'unknown attribute' \
		line:"XFORWARD ADDR=IPV6:2001:db8::7 HELO=orig.example NAME=[UNAVAILABLE]" expect:250 \
		line:"XFORWARD PORT=40000 SOURCE=REMOTE" expect:250 \
		line:"MAIL FROM:<alice@example.com>" expect:250 \
		line:"XFORWARD ADDR=192.0.2.8" expect:503:'5\.5\.1' \
		line:"RCPT TO:<bob@partner.example>" expect:250 \
		line:DATA expect:354 send:"Subject: x\r\n\r\nhi\r\n.\r\n" expect:250 \
		line:"MAIL FROM:<alice@example.com>" expect:250 \
		line:"RCPT TO:<carol@partner.example>" expect:250 \
		line:DATA expect:354 send:"Subject: y\r\n\r\nhi\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 2 || return 1
	local log=$CASE_DIR/smrelayd.log
	assert_file_matches "$log" 'session id=[0-9a-f]+ xforward addr=2001:db8::7 helo=orig\.example name=-' "smrelayd log" &&
		assert_file_lacks "$log" 'xforward addr=192\.0\.2\.[78]' "smrelayd log (refused values)" &&
		assert_file_matches "$log" 'relay id=[0-9a-f]+ to=127\.0\.0\.1:[0-9]+ xforward addr=2001:db8::7$' "smrelayd log (first transaction)" &&
		assert_file_matches "$log" 'relay id=[0-9a-f]+ to=127\.0\.0\.1:[0-9]+ xforward addr=127\.0\.0\.1$' "smrelayd log (second: reset)"
}

run_case xforward_untrusted t_xforward_untrusted
run_case xforward_trusted t_xforward_trusted
it_finish
