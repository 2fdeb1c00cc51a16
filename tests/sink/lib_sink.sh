# shellcheck shell=bash
# tests/sink/lib_sink.sh: helpers for the sink tests, on top of the
# integration harness (tests/integration/lib.sh): an S/MIME PKI
# (tests/smime/pki.sh), smrelayd with keys imported and a "sign and
# encrypt" rule, and `smrelayctl sink` with its web inbox.

# shellcheck source=../integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
SK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=shared.sh
. "$SK_DIR/shared.sh"
SPKI=$IT_TMP/spki

# sink_pki: alice (our signer), bob (the partner) and their CA, made once.
sink_pki() {
	[ -s "$SPKI/bob.pem" ] && return 0
	sh "$SK_DIR/../smime/pki.sh" "$SPKI" >"$IT_TMP/spki.log" 2>&1 ||
		{ fail_because "pki.sh failed: $(tail -n 3 "$IT_TMP/spki.log")"; return 1; }
	cat "$SPKI/bob.key" "$SPKI/bob.pem" >"$SPKI/bob-keycert.pem"
	cat "$SPKI/trust.pem" "$SPKI/chain.pem" >"$SPKI/anchors.pem"
}

sctl() {
	"$SMRELAYCTL" -c "$CONF" "$@" >>"$CASE_DIR/ctl.log" 2>&1 ||
		{ fail_because "smrelayctl $* failed: $(tail -n 2 "$CASE_DIR/ctl.log")"; return 1; }
}

# smime_relay [write_conf args]: smrelayd in front of the sink (NH_PORT)
# that signs as alice and encrypts to bob what @example.com sends to
# @partner.example (keys and the rule imported before it starts).
smime_relay() {
	sink_pki || return 1
	it_certs || return 1
	PORT=$(free_port)
	CONF=$CASE_DIR/smrelayd.conf
	mkdir -p "$CASE_DIR/data"
	write_conf "$CONF" revocation_fetch=no "$@"
	sctl trust import "$SPKI/trust.pem" &&
		sctl key import "$SPKI/alice.p12" &&
		sctl cert import "$SPKI/bob.pem" &&
		sctl policy add --sender @example.com --recipient @partner.example \
			--action sign,encrypt --if-no-cert reject || return 1
	start_smrelayd "$CONF" "$PORT"
}

# http_get PATH: the body of GET http://127.0.0.1:$HTTP_PORT/PATH.
http_get() {
	"$PYTHON" - "http://127.0.0.1:$HTTP_PORT$1" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=30) as r:
    sys.stdout.buffer.write(r.read())
PY
}

# start_web_sink [sink options]: the sink with its inbox on HTTP_PORT.
start_web_sink() {
	HTTP_PORT=$(free_port)
	start_sink --http "127.0.0.1:$HTTP_PORT" "$@" || return 1
	wait_listen "$HTTP_PORT" "$SINK_PID" 15 ||
		fail_because "the inbox is not listening on $HTTP_PORT"
}
