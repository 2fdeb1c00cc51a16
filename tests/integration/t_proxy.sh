#!/bin/bash
# t_proxy.sh: listeners behind a load balancer (`listen ... proxy=v1|v2`):
# the client address from the PROXY header is the one relay_networks and the
# Received header see; a missing or broken header closes the connection
# without a banner, and the daemon keeps serving.
. "$(dirname "$0")/lib.sh"
need_bins

# v1 text header: an allowed client relays (and Received names it), a client
# outside relay_networks gets 554 5.7.1 although the socket peer is 127.0.0.1.
t_proxy_v1() {
	start_sink && start_relay listen='127.0.0.1:$PORT tls=none proxy=v1' \
		relay_networks=192.0.2.0/24 || return 1
	chat send:"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n" expect:220 \
		line:"EHLO lb-client.test" expect:250 \
		line:"MAIL FROM:<alice@example.com>" expect:250 \
		line:"RCPT TO:<bob@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: via proxy\r\n\r\nhi\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to bob@example.net || return 1
	assert_header "$MSG" Received 'from lb-client\.test \(\[192\.0\.2\.7\]\)' || return 1
	chat send:"PROXY TCP4 198.51.100.7 127.0.0.1 40001 25\r\n" expect:220 \
		line:"EHLO outsider.test" expect:250 \
		line:"MAIL FROM:<eve@example.com>" expect:250 \
		line:"RCPT TO:<bob@example.net>" expect:554:'5\.7\.1' \
		line:QUIT expect:221 || return 1
	assert_sink_count 1
}

# v2 binary header (IPv4, PROXY command, one TLV that must be skipped).
t_proxy_v2() {
	local sig='\r\n\r\n\x00\r\nQUIT\n'
	# ver/cmd 0x21, TCP over IPv4 0x11, length 12 + 4 (TLV type 0x04 NOOP, len 1, 1 byte)
	local hdr="${sig}\\x21\\x11\\x00\\x10\\xc0\\x00\\x02\\x09\\x7f\\x00\\x00\\x01\\x9c\\x40\\x00\\x19\\x04\\x00\\x01\\x00"
	start_sink && start_relay listen='127.0.0.1:$PORT tls=none proxy=v2' \
		relay_networks=192.0.2.0/24 || return 1
	chat send:"$hdr" expect:220 \
		line:"EHLO lb-client.test" expect:250 \
		line:"MAIL FROM:<alice@example.com>" expect:250 \
		line:"RCPT TO:<carol@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: via proxy v2\r\n\r\nhi\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to carol@example.net || return 1
	assert_header "$MSG" Received '\(\[192\.0\.2\.9\]\)'
}

# No PROXY header where one is required: closed without a banner; a proper
# client right after is served.
t_proxy_missing() {
	start_sink && start_relay listen='127.0.0.1:$PORT tls=none proxy=v1' \
		relay_networks=192.0.2.0/24 || return 1
	chat send:"EHLO sneaky.test\r\n" eof || return 1
	chat send:"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n" expect:220 \
		line:"EHLO lb-client.test" expect:250 line:QUIT expect:221
}

# SIGTERM while a load balancer's connection has not sent its PROXY header
# yet: nothing began on it, so the drain closes it and smrelayd exits (it
# used to wait for the 300 s command timeout).
t_proxy_drain() {
	start_sink && start_relay listen='127.0.0.1:$PORT tls=none proxy=v2' || return 1
	bg holder "$PYTHON" -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
time.sleep(120)' "$PORT"
	wait_for 10 grep -q "connect peer=127.0.0.1 listener=127.0.0.1:$PORT" \
		"$CASE_DIR/smrelayd.log" || { fail_because "the connection was not accepted"; return 1; }
	stop_smrelayd || return 1
	grep -q "reason=shutdown" "$CASE_DIR/smrelayd.log" ||
		fail_because "no 'reason=shutdown' for the waiting connection"
}

run_case proxy_v1 t_proxy_v1
run_case proxy_v2 t_proxy_v2
run_case proxy_missing t_proxy_missing
run_case proxy_drain t_proxy_drain
it_finish
