#!/bin/bash
# t_tlsresume.sh: TLS session resumption.  Inbound: session tickets under
# smrelayd's own keys (openssl s_client -sess_out / -sess_in says "Reused"),
# still good after one key rotation and not after the kept window, a
# tampered ticket falls back to a full handshake.  Outbound: the second
# connection to the same opportunistic next hop resumes (py/nexthop.py
# reports it), a verified one never does.  And the memory of idle TLS
# connections (VmRSS of the network process).
. "$(dirname "$0")/lib.sh"
need_bins

# s_client_tls TAG [s_client options]: one STARTTLS session on PORT that
# says QUIT; "Reused" or "New" into $CASE_DIR/TAG.out.
s_client_tls() {
	local tag=$1
	shift
	printf 'QUIT\n' | timeout 30 openssl s_client -starttls smtp -ign_eof -crlf \
		-connect "127.0.0.1:$PORT" "$@" >"$CASE_DIR/$tag.out" 2>"$CASE_DIR/$tag.err"
	grep -q -E '^(Reused|New),' "$CASE_DIR/$tag.out" ||
		{ fail_because "s_client $tag: no handshake ($(tail -n 2 "$CASE_DIR/$tag.err" | tr '\n' ' '))"; return 1; }
}

# assert_reused TAG yes|no
assert_reused() {
	if [ "$2" = yes ]; then
		assert_file_matches "$CASE_DIR/$1.out" '^Reused, TLSv1\.3' "$1: session resumed"
	else
		assert_file_matches "$CASE_DIR/$1.out" '^New, TLSv1\.3' "$1: full handshake"
	fi
}

# The network process's generation of ticket keys (1 before any rotation).
ticket_gen() {
	local g
	g=$(grep -o 'tls ticket key rotated generation=[0-9]*' "$CASE_DIR/smrelayd.log" |
		tail -n 1 | cut -d= -f2)
	echo "${g:-1}"
}
_gen_ge() { [ "$(ticket_gen)" -ge "$1" ]; }

t_inbound_resume() {
	start_sink && start_relay || return 1
	s_client_tls first -sess_out "$CASE_DIR/sess.pem" && assert_reused first no || return 1
	[ -s "$CASE_DIR/sess.pem" ] || { fail_because "s_client got no session ticket"; return 1; }
	s_client_tls second -sess_in "$CASE_DIR/sess.pem" && assert_reused second yes || return 1
	assert_file_matches "$CASE_DIR/smrelayd.log" 'tls version=TLSv1\.3 .* resumed=yes' \
		"smrelayd logs the resumed session" || return 1
	# one signature by the key process: the full handshake's, none for
	# the resumed one
	assert_eq 1 "$(grep -c 'keyd id=.* sign id=' "$CASE_DIR/smrelayd.log")" \
		"key process signatures for one full and one resumed handshake" || return 1
	# and a message still goes through a resumed session
	swaks_send -tls --to alice@example.net && wait_delivered 1
}

# tls_ticket_rotate = 2s: a ticket under the key of generation g decrypts
# while g + 2 is the newest key (TLS_TICKET_OLD = 2), not once g + 3 is.
t_inbound_rotation() {
	local g
	start_sink && start_relay tls_ticket_rotate=2s || return 1
	s_client_tls first -sess_out "$CASE_DIR/sess.pem" || return 1
	g=$(ticket_gen)
	wait_for 20 _gen_ge $((g + 1)) || { fail_because "no key rotation after generation $g"; return 1; }
	s_client_tls after_one -sess_in "$CASE_DIR/sess.pem" && assert_reused after_one yes || return 1
	wait_for 20 _gen_ge $((g + 3)) || { fail_because "key generation $((g + 3)) never came"; return 1; }
	s_client_tls after_window -sess_in "$CASE_DIR/sess.pem" && assert_reused after_window no
}

# A ticket with one byte changed: a full handshake, and the daemon serves on.
t_inbound_tampered() {
	start_sink && start_relay || return 1
	s_client_tls first -sess_out "$CASE_DIR/sess.pem" || return 1
	"$PYTHON" "$IT_PY/tamper_ticket.py" "$CASE_DIR/sess.pem" "$CASE_DIR/bad.pem" ||
		{ fail_because "cannot tamper with the ticket"; return 1; }
	s_client_tls tampered -sess_in "$CASE_DIR/bad.pem" && assert_reused tampered no || return 1
	s_client_tls good -sess_in "$CASE_DIR/sess.pem" && assert_reused good yes || return 1
	swaks_send -tls --to alice@example.net && wait_delivered 1
}

# tls_ticket_rotate = 0: no tickets, every handshake is full.
t_inbound_no_tickets() {
	start_sink && start_relay tls_ticket_rotate=0 || return 1
	s_client_tls first -sess_out "$CASE_DIR/sess.pem" || return 1
	if [ -s "$CASE_DIR/sess.pem" ]; then
		s_client_tls second -sess_in "$CASE_DIR/sess.pem" && assert_reused second no
	fi
}

# relay_closed N: smrelayd has closed N connections to the next hop.
_relay_closed() { [ "$(grep -c 'relay cid=.* closed' "$CASE_DIR/smrelayd.log")" -ge "$1" ]; }

# Two messages, one after the other, to a next hop that closes after each
# (so the second one needs a new connection).
two_messages_two_conns() {
	swaks_send --to alice@example.net --header "Subject: one" && wait_delivered 1 || return 1
	wait_for 20 _relay_closed 1 || { fail_because "the first connection to the next hop stayed open"; return 1; }
	swaks_send --to bob@example.net --header "Subject: two" && wait_delivered 2 || return 1
	assert_file_matches "$NH_EVENTS" '^TLS conn=1 ' "first connection used TLS" &&
		assert_file_matches "$NH_EVENTS" '^TLS conn=2 ' "second connection used TLS"
}

t_outbound_resume() {
	it_certs && start_nexthop --tls-cert "$PKI/srv.pem" --tls-key "$PKI/srv.key" --one-message &&
		start_relay relay='127.0.0.1:$NH_PORT' relay_tls=may || return 1
	two_messages_two_conns || return 1
	assert_file_matches "$NH_EVENTS" '^TLS conn=1 .* reused=no' "first connection: full handshake" &&
		assert_file_matches "$NH_EVENTS" '^TLS conn=2 .* reused=yes' "second connection resumed" &&
		assert_file_matches "$CASE_DIR/smrelayd.log" 'tls=established .* verified=no resumed=yes' \
			"smrelayd logs the resumed session"
}

# relay_tls = verify: the peer is checked on every connection, no resumption.
t_outbound_verify_no_resume() {
	it_certs && start_nexthop --tls-cert "$PKI/srv.pem" --tls-key "$PKI/srv.key" --one-message &&
		start_relay relay='localhost:$NH_PORT' relay_tls=verify relay_tls_ca_file="$PKI/ca.pem" || return 1
	two_messages_two_conns || return 1
	assert_file_lacks "$NH_EVENTS" '^TLS conn=.* reused=yes' "no verified connection resumed" &&
		assert_file_matches "$CASE_DIR/smrelayd.log" 'tls=established .* verified=yes resumed=no' \
			"smrelayd logs a full, verified handshake" &&
		assert_file_lacks "$CASE_DIR/smrelayd.log" 'resumed=yes' "smrelayd resumed nothing"
}

# IDLE idle inbound TLS connections (after STARTTLS and EHLO): VmRSS growth
# of the network process per connection <= 64 KiB (SSL_MODE_RELEASE_BUFFERS;
# measured about 20 KiB).
IDLE=${IDLE:-200}
t_idle_tls_memory() {
	local net rss0 rss1 st per
	if smrelayd_has_asan; then
		skip "RSS means nothing under AddressSanitizer"
		return 0
	fi
	start_sink && start_relay max_connections=$((IDLE + 50)) || return 1
	net=$(smrelayd_child "$SMRELAYD_PID" smrelayd-net) || { fail_because "no network process"; return 1; }
	# warm up: a first TLS session and message
	swaks_send -tls --to alice@example.net && wait_delivered 1 || return 1
	rss0=$(rss_kb "$net")
	bg holdconns "$PYTHON" "$IT_PY/holdconns.py" --starttls --count "$IDLE" \
		--status "$CASE_DIR/hold.status" 127.0.0.1 "$PORT"
	wait_for 120 test -s "$CASE_DIR/hold.status" || { fail_because "holdconns did not finish"; return 1; }
	st=$(cat "$CASE_DIR/hold.status")
	[ "$st" = "ready opened=$IDLE codes=tls:$IDLE" ] || { fail_because "holdconns: $st"; return 1; }
	rss1=$(rss_kb "$net")
	per=$(( (rss1 - rss0) / IDLE ))
	echo "# idle TLS connections: RSS $rss0 -> $rss1 KiB, $per KiB each"
	[ "$per" -le 64 ] || { fail_because "$per KiB per idle TLS connection (> 64)"; return 1; }
}

run_case inbound_resume t_inbound_resume
run_case inbound_rotation t_inbound_rotation
run_case inbound_tampered t_inbound_tampered
run_case inbound_no_tickets t_inbound_no_tickets
run_case outbound_resume t_outbound_resume
run_case outbound_verify_no_resume t_outbound_verify_no_resume
run_case idle_tls_memory t_idle_tls_memory
it_finish
