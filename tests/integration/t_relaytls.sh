#!/bin/bash
# t_relaytls.sh: TLS to the next hop: relay_tls = none | may | encrypt |
# verify against next hops with a CA-signed, a wrong-name and a self-signed
# certificate, and without STARTTLS.  The next hop is py/nexthop.py, which
# records in each captured file whether the session used TLS
# (X-NextHop-TLS); one case uses `smrelayctl sink --tls-cert`.
. "$(dirname "$0")/lib.sh"
need_bins

# nexthop_tls CERT: next hop on 127.0.0.1 and ::1 offering STARTTLS with
# $PKI/CERT.pem.
nexthop_tls() {
	it_certs && start_nexthop --dual --tls-cert "$PKI/$1.pem" --tls-key "$PKI/$1.key"
}

# delivered_with_tls RCPT yes|no
delivered_with_tls() {
	wait_delivered 1 && assert_delivered_to "$1" || return 1
	if [ "$2" = yes ]; then
		assert_file_matches "$MSG" '^X-NextHop-TLS: TLSv1\.[23] ' "next hop session used TLS"
	else
		assert_file_matches "$MSG" '^X-NextHop-TLS: none' "next hop session without TLS"
	fi
}

t_verify_ok() {
	nexthop_tls srv && start_relay relay='localhost:$NH_PORT' relay_tls=verify \
		relay_tls_ca_file="$PKI/ca.pem" || return 1
	swaks_send --to alice@example.net || return 1
	delivered_with_tls alice@example.net yes
}

t_verify_wrong_name() {
	nexthop_tls wrong && start_relay relay='localhost:$NH_PORT' relay_tls=verify \
		relay_tls_ca_file="$PKI/ca.pem" || return 1
	swaks_expect_queued --to alice@example.net || return 1
	assert_queued alice@example.net '4\.7\.' || return 1
	stop_smrelayd && assert_sink_count 0
}

t_verify_self_signed() {
	nexthop_tls self && start_relay relay='localhost:$NH_PORT' relay_tls=verify \
		relay_tls_ca_file="$PKI/ca.pem" || return 1
	swaks_expect_queued --to alice@example.net || return 1
	assert_queued alice@example.net '4\.7\.' || return 1
	stop_smrelayd && assert_sink_count 0
}

# verify with the system store (no relay_tls_ca_file): our test CA is not in
# it, so this must fail too.
t_verify_system_store() {
	nexthop_tls srv && start_relay relay='localhost:$NH_PORT' relay_tls=verify || return 1
	swaks_expect_queued --to alice@example.net || return 1
	assert_queued alice@example.net '4\.7\.' || return 1
	stop_smrelayd && assert_sink_count 0
}

t_may_self_signed() {
	nexthop_tls self && start_relay relay='localhost:$NH_PORT' relay_tls=may || return 1
	swaks_send --to alice@example.net || return 1
	delivered_with_tls alice@example.net yes
}

t_encrypt_wrong_name() {
	nexthop_tls wrong && start_relay relay='localhost:$NH_PORT' relay_tls=encrypt || return 1
	swaks_send --to alice@example.net || return 1
	delivered_with_tls alice@example.net yes
}

t_encrypt_no_starttls() {
	it_certs && start_nexthop --dual && start_relay relay='localhost:$NH_PORT' relay_tls=encrypt || return 1
	swaks_expect_queued --to alice@example.net || return 1
	assert_queued alice@example.net '4\.7\.' || return 1
	stop_smrelayd && assert_sink_count 0
}

t_may_no_starttls() {
	it_certs && start_nexthop --dual && start_relay relay='localhost:$NH_PORT' relay_tls=may || return 1
	swaks_send --to alice@example.net || return 1
	delivered_with_tls alice@example.net no
}

t_none_ignores_starttls() {
	nexthop_tls srv && start_relay relay='127.0.0.1:$NH_PORT' relay_tls=none || return 1
	swaks_send --to alice@example.net || return 1
	delivered_with_tls alice@example.net no
}

# The brief's own peer: smrelayctl sink with a CA-signed certificate.
t_verify_smrelayctl_sink() {
	it_certs && start_sink --tls-cert "$PKI/srv.pem" --tls-key "$PKI/srv.key" &&
		start_relay relay='localhost:$NH_PORT' relay_tls=verify relay_tls_ca_file="$PKI/ca.pem" || return 1
	swaks_send -tls --to alice@example.net || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net || return 1
	# The sink's own Received header (the topmost) shows the TLS session.
	"$PYTHON" "$IT_PY/mailfile.py" header "$MSG" Received | head -n 1 | grep -q 'version=TLSv1\.[23]' ||
		fail_because "the sink's Received header shows no TLS: $("$PYTHON" "$IT_PY/mailfile.py" header "$MSG" Received | head -n 1)"
}

run_case verify_ok t_verify_ok
run_case verify_wrong_name t_verify_wrong_name
run_case verify_self_signed t_verify_self_signed
run_case verify_system_store t_verify_system_store
run_case may_self_signed t_may_self_signed
run_case encrypt_wrong_name t_encrypt_wrong_name
run_case encrypt_no_starttls t_encrypt_no_starttls
run_case may_no_starttls t_may_no_starttls
run_case none_ignores_starttls t_none_ignores_starttls
run_case verify_smrelayctl_sink t_verify_smrelayctl_sink
it_finish
