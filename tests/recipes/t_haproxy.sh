#!/bin/bash
# t_haproxy.sh: the recipe of docs/RECIPES.md "HAProxy in front" against a
# real HAProxy (its own config, free loopback ports, started once): client
# (127.0.0.2 or 127.0.0.3) -> HAProxy (mode tcp, send-proxy-v2) -> smrelayd
# (listen ... proxy=v2) -> capture sink.  smrelayd sees the client's own
# address, not HAProxy's: in its log, in its Received header, and in the
# relay_networks decision.
. "$(dirname "$0")/common.sh"
have haproxy || { echo "SKIP all: haproxy not installed"; exit 77; }

HA_PORT=$(free_port)            # where clients connect (HAProxy)
RELAY_PORT=$(free_port)         # smrelayd, PROXY v2 only
SINK_PORT=$(free_port)
HA_DIR=$IT_TMP/haproxy
mkdir -p "$HA_DIR"
cat >"$HA_DIR/haproxy.cfg" <<EOC
global
	log stderr format short local0 info
	maxconn 100
defaults
	mode tcp
	log global
	option tcplog
	timeout connect 5s
	timeout client 5m
	timeout server 5m
frontend smtp
	bind 127.0.0.1:$HA_PORT
	default_backend smrelay
backend smrelay
	server smrelayd 127.0.0.1:$RELAY_PORT send-proxy-v2
EOC

# HAProxy runs as a daemon of its own (not one of the harness's per-case
# processes), stopped by the exit trap.
ha_cleanup() {
	local rc=$?
	[ -s "$HA_DIR/haproxy.pid" ] && kill "$(head -n 1 "$HA_DIR/haproxy.pid")" 2>/dev/null
	(exit $rc)
	rc_cleanup
}
trap ha_cleanup EXIT
CASE=setup
if ! haproxy -c -f "$HA_DIR/haproxy.cfg" >"$HA_DIR/check.log" 2>&1 ||
    ! haproxy -D -p "$HA_DIR/haproxy.pid" -f "$HA_DIR/haproxy.cfg" \
	>"$HA_DIR/haproxy.log" 2>&1 </dev/null ||
    ! wait_for 15 is_listening "$HA_PORT"; then
	echo "FAIL setup: haproxy did not start: $(tail -n 3 "$HA_DIR/check.log" "$HA_DIR/haproxy.log" | tr '\n' ' ')"
	exit 1
fi

# rc_send_ha ADDR [swaks options]: alice's message through HAProxy from ADDR.
ha_send() {
	local from=$1
	shift
	SWAKS_N=$((SWAKS_N + 1))
	SWAKS_LOG=$CASE_DIR/swaks.$SWAKS_N.log
	timeout 120 swaks --server "127.0.0.1:$HA_PORT" --local-interface "$from" \
		--helo client.test --from alice@example.com --to bob@partner.example \
		--header "Subject: recipe test" --body "$BODY" "$@" >"$SWAKS_LOG" 2>&1
}

# The client's address reaches smrelayd through the PROXY v2 header.
t_haproxy_client_address() {
	rc_start_sink "$SINK_PORT" &&
		rc_start_relay "$RELAY_PORT" "$SINK_PORT" \
			listen='127.0.0.1:$PORT tls=none proxy=v2' || return 1
	ha_send 127.0.0.2 ||
		{ fail_because "swaks through haproxy: $(grep -E '^ *(<~?\*\*|\*\*\*)' "$SWAKS_LOG" | tail -n 2 | tr '\n' ' ')"; return 1; }
	wait_delivered 1 30 && assert_delivered_to bob@partner.example &&
		rc_verifies "$MSG" || return 1
	assert_header "$MSG" Received 'from client\.test \(\[127\.0\.0\.2\]\)[[:space:]]+by relay\.test \(smrelay\)' &&
		assert_file_matches "$CASE_DIR/smrelayd.log" 'session id=[0-9a-f]+ proxy client=127\.0\.0\.2 relay=yes' "smrelayd log"
}

# relay_networks is decided on the real client: 127.0.0.2 may relay,
# 127.0.0.3 (also behind the same HAProxy at 127.0.0.1) may not.
t_haproxy_relay_networks() {
	rc_start_sink "$SINK_PORT" &&
		rc_start_relay "$RELAY_PORT" "$SINK_PORT" \
			listen='127.0.0.1:$PORT tls=none proxy=v2' \
			relay_networks=127.0.0.2/32 || return 1
	ha_send 127.0.0.3 --to carol@partner.example
	grep -q -E '^ *<\*\* *554 5\.7\.1' "$SWAKS_LOG" ||
		{ fail_because "127.0.0.3 was not refused with 554 5.7.1: $(grep -E '^ *<\*\*' "$SWAKS_LOG" | tr '\n' ' ')"; return 1; }
	ha_send 127.0.0.2 ||
		{ fail_because "127.0.0.2 refused: $(grep -E '^ *<\*\*' "$SWAKS_LOG" | tr '\n' ' ')"; return 1; }
	wait_delivered 1 30 && assert_delivered_to bob@partner.example &&
		assert_nothing_for carol@partner.example envelope && assert_sink_count 1
}

run_case haproxy_client_address t_haproxy_client_address
run_case haproxy_relay_networks t_haproxy_relay_networks
it_finish
