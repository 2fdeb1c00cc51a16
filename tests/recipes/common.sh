# shellcheck shell=bash
# tests/recipes/common.sh: what the recipe tests share, sourced by each
# t_*.sh: the integration harness (tests/integration/lib.sh: PASS/FAIL
# lines, free ports, process tracking, cleanup), private Postfix instances
# (postfix.sh), the S/MIME test PKI of tests/smime/pki.sh, and a smrelayd
# that signs mail from alice@example.com.  The peers (Postfix, HAProxy) are
# started once per test file on ports picked at run time; smrelayd and the
# capture sink are started by each case on the ports the peers were told.
TOP_SRC=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../integration/lib.sh
. "$TOP_SRC/tests/integration/lib.sh"
# shellcheck source=postfix.sh
. "$TOP_SRC/tests/recipes/postfix.sh"
need_bins
for b in swaks openssl; do
	have $b || { echo "SKIP all: $b not installed"; exit 77; }
done

# The exit trap stops the private Postfix instances too.
rc_cleanup() {
	local rc=$?
	pf_stop_all
	(exit $rc)
	it_cleanup
}
trap rc_cleanup EXIT

SPKI=$IT_TMP/spki
BODY="Signed on its way through the gateway (recipe test)."
if ! sh "$TOP_SRC/tests/smime/pki.sh" "$SPKI" >"$IT_TMP/spki.log" 2>&1; then
	echo "FAIL setup: pki.sh: $(tail -n 3 "$IT_TMP/spki.log" | tr '\n' ' ')"
	exit 1
fi
cat "$SPKI/alice.pem" "$SPKI/chain.pem" "$SPKI/alice.key" >"$SPKI/alice-id.pem"

# ctl ARGS...: smrelayctl on the case's config ($CONF), stderr to ctl.log.
ctl() {
	echo "== smrelayctl $*" >>"$CASE_DIR/ctl.log"
	"$SMRELAYCTL" -c "$CONF" "$@" 2>>"$CASE_DIR/ctl.log"
}

# rc_start_sink PORT: `smrelayctl sink` on 127.0.0.1:PORT, Maildir SINK_DIR.
rc_start_sink() {
	SINK_DIR=$CASE_DIR/maildir
	mkdir -p "$SINK_DIR/new" "$SINK_DIR/cur" "$SINK_DIR/tmp"
	bg sink "$SMRELAYCTL" sink --listen "127.0.0.1:$1" --maildir "$SINK_DIR"
	SINK_PID=$BG_PID
	wait_listen "$1" "$SINK_PID" 15 ||
		fail_because "sink did not start on $1: $(tail -n 3 "$CASE_DIR/sink.log" | tr '\n' ' ')"
}

# rc_start_relay PORT NEXTHOP_PORT [write_conf args]: smrelayd on
# 127.0.0.1:PORT (no TLS) relaying to 127.0.0.1:NEXTHOP_PORT, with the test
# trust anchor, alice's identity and the rule "sign mail from alice" (and
# "reject mail from RC_REJECT" when that is set).
rc_start_relay() {
	local port=$1
	PORT=$1
	NH_PORT=$2
	shift 2
	it_certs || return 1
	CONF=$CASE_DIR/smrelayd.conf
	mkdir -p "$CASE_DIR/data"
	write_conf "$CONF" listen='127.0.0.1:$PORT tls=none' "$@"
	ctl trust import "$SPKI/trust.pem" >/dev/null &&
		ctl key import "$SPKI/alice-id.pem" >/dev/null &&
		ctl policy add --sender alice@example.com --action sign >/dev/null &&
		{ [ -z "${RC_REJECT:-}" ] ||
			ctl policy add --sender "$RC_REJECT" --action reject >/dev/null; } ||
		{ fail_because "store setup: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	start_smrelayd "$CONF" "$port"
}

# rc_send PORT [swaks options]: alice's message to bob through PORT, from
# the client address 127.0.0.2 (so that it differs from every hop's own).
rc_send() {
	local port=$1
	shift
	SWAKS_N=$((SWAKS_N + 1))
	SWAKS_LOG=$CASE_DIR/swaks.$SWAKS_N.log
	timeout 120 swaks --server "127.0.0.1:$port" --local-interface 127.0.0.2 \
		--helo client.test --from alice@example.com --to bob@partner.example \
		--header "Subject: recipe test" --body "$BODY" "$@" >"$SWAKS_LOG" 2>&1 ||
		{ fail_because "swaks to port $port: $(grep -E '^ *(<~?\*\*|\*\*\*)' "$SWAKS_LOG" | tail -n 2 | tr '\n' ' ')"; return 1; }
}

# rc_verifies FILE: openssl cms accepts the signature of FILE under the
# test CA, and the signed content is the body that was sent.
rc_verifies() {
	local out=$CASE_DIR/verified.$$
	openssl cms -verify -CAfile "$SPKI/trust.pem" -purpose smimesign -in "$1" \
		-out "$out" 2>"$out.err" ||
		{ fail_because "openssl cms -verify $(basename "$1"): $(tail -n 1 "$out.err")"; return 1; }
	grep -q -F "$BODY" "$out" ||
		fail_because "the signed content of $(basename "$1") lacks the body"
}

# rc_received FILE ERE: the first (topmost) Received header matching ERE,
# unfolded.
rc_received() {
	tr -d '\r' <"$1" | awk -v re="$2" '
		function done() { if (f && h ~ re) { print h; exit } f = 0 }
		/^[ \t]/ && f { h = h " " $0; next }
		{ done() }
		/^Received:/ { h = $0; f = 1 }
		/^$/ { exit }'
}

# rc_postfix_qid FILE: the queue ID of the Postfix that last received FILE
# (its topmost "by ... (Postfix) with ... id QID" Received header).
rc_postfix_qid() {
	rc_received "$1" '[(]Postfix[)] with' | sed -n 's/.*(Postfix) with [A-Z]* id \([0-9A-Za-z]*\).*/\1/p'
}
