#!/bin/bash
# t_smimea.sh: cert_lookup = smimea (RFC 8162) end to end: swaks ->
# smrelayd -> `smrelayctl sink`, the SMIMEA records served by NSD (zones
# signed with ldns-signzone, their DS records smrelayd's trust anchors).
# A policy rule encrypts to a partner domain and no certificate is
# imported: a usage 3 record in a signed zone is used (the sink's copy
# opens with the partner's key, `cert list` shows the certificate with
# source smimea, a second message asks DNS no more); the same record in
# an unsigned zone, or with a broken signature, is ignored and
# --if-no-cert applies; usage 1 needs a chain to our trust anchor; a
# resolver that never answers delays the RCPT reply by the lookup's
# bound (5 s) only, once.
# Harness: tests/integration/lib.sh; NSD: tests/dns/nsd.sh; test PKI:
# tests/smime/pki.sh, plus dave (chains) and frank (self-signed) made here.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../dns/nsd.sh"
TOP_SRC=$(cd "$(dirname "$0")/../.." && pwd)
need_bins
nsd_have || { echo "SKIP: nsd or ldnsutils not installed"; exit 77; }
for b in swaks openssl; do
	have $b || { echo "SKIP all: $b not installed"; exit 77; }
done

trap 'rc=$?; nsd_stop; (exit $rc); it_cleanup' EXIT

P=$IT_TMP/spki
BODY="The SMIMEA test's secret is 4711."

# The PKI of pki.sh, plus dave@partner.example from its intermediate and
# frank@partner.example self-signed (usable for S/MIME, under no anchor).
make_pki() {
	sh "$TOP_SRC/tests/smime/pki.sh" "$P" >"$IT_TMP/spki.log" 2>&1 || return 1
	(
		cd "$P" || exit 1
		export CADB=int.db
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dave.key &&
			openssl req -new -key dave.key -config ca.cnf -out dave.csr \
				-subj "/CN=dave/emailAddress=dave@partner.example" &&
			CADB=int.db openssl ca -batch -config ca.cnf -cert int.pem \
				-keyfile int.key -extensions v3_user -days 825 \
				-in dave.csr -out dave.pem &&
			openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out frank.key &&
			openssl req -new -x509 -key frank.key -days 825 -config ca.cnf \
				-subj "/CN=frank/emailAddress=frank@partner.example" \
				-addext "basicConstraints=CA:FALSE" \
				-addext "keyUsage=critical,digitalSignature,keyEncipherment" \
				-addext "extendedKeyUsage=emailProtection" \
				-addext "subjectAltName=email:frank@partner.example" \
				-out frank.pem
	) >>"$IT_TMP/spki.log" 2>&1
}
make_pki || { echo "FAIL setup: pki: $(tail -n 3 "$IT_TMP/spki.log" | tr '\n' ' ')"; exit 1; }

# der_hex PEM: the certificate's DER in hex (SMIMEA 0 0 association data).
der_hex() { openssl x509 -in "$1" -outform DER | od -An -v -tx1 | tr -d ' \n'; }
BOB_HEX=$(der_hex "$P/bob.pem")
DAVE_HEX=$(der_hex "$P/dave.pem")
FRANK_HEX=$(der_hex "$P/frank.pem")
BOB_SHA=$(openssl x509 -in "$P/bob.pem" -outform DER | sha256sum | cut -d' ' -f1)

# One NSD for the whole file.
nsd_init "$IT_TMP/nsd" || exit 99
BOB_P=$(nsd_smimea_owner bob partner.example)
nsd_zone partner.example <<EOF
$(nsd_smimea_owner bob partner.example). IN SMIMEA 3 0 0 $BOB_HEX
$(nsd_smimea_owner dave partner.example). IN SMIMEA 1 0 0 $DAVE_HEX
$(nsd_smimea_owner frank partner.example). IN SMIMEA 1 0 0 $FRANK_HEX
$(nsd_smimea_owner gus partner.example). IN SMIMEA 3 0 1 $BOB_SHA
EOF
nsd_zone unsigned.example <<EOF
$(nsd_smimea_owner bob unsigned.example). IN SMIMEA 3 0 0 $BOB_HEX
EOF
nsd_zone bogus.example <<EOF
$(nsd_smimea_owner bob bogus.example). IN SMIMEA 3 0 0 $BOB_HEX
EOF
nsd_sign partner.example || exit 99
nsd_sign bogus.example || exit 99
nsd_tamper bogus.example "$(nsd_smimea_owner bob bogus.example)." SMIMEA || exit 99
nsd_start || { echo "ERROR: nsd did not start"; exit 99; }
# the network process (user smrelay when run as root) reads the anchors
chmod 755 "$NSD_DIR"
chmod 644 "$NSD_TA"
[ -n "$(nsd_dig "$BOB_P" TYPE53)" ] || { echo "ERROR: NSD does not serve the SMIMEA record"; exit 99; }

# ---------------------------------------------------------------- helpers

# ctl ARGS...: smrelayctl on this case's config, stderr to ctl.log.
ctl() {
	echo "== smrelayctl $*" >>"$CASE_DIR/ctl.log"
	"$SMRELAYCTL" -c "$CONF" "$@" 2>>"$CASE_DIR/ctl.log"
}

# setup RESOLVER [ARGS for `policy add`]: a sink, a config with
# cert_lookup = smimea asking RESOLVER, our trust anchor and intermediate
# imported (no partner certificate), a rule, smrelayd running.
setup() {
	local resolver=$1
	shift
	start_sink || return 1
	it_certs || return 1
	PORT=$(free_port)
	CONF=$CASE_DIR/smrelayd.conf
	mkdir -p "$CASE_DIR/data"
	write_conf "$CONF" cert_lookup=smimea dns_resolver="$resolver" \
		dns_trust_anchor="$NSD_TA" revocation_fetch=no
	ctl trust import "$P/trust.pem" >/dev/null &&
		ctl cert import "$P/chain.pem" >/dev/null ||
		{ fail_because "import: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	ctl policy add "$@" >/dev/null ||
		{ fail_because "policy add: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	start_smrelayd "$CONF" "$PORT"
}

# msg RCPT: a plain text message to RCPT in $CASE_DIR/m.eml.
msg() {
	M=$CASE_DIR/m.eml
	printf 'From: alice@example.com\r\nTo: %s\r\nSubject: smimea\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n%s\r\n' \
		"$1" "$BODY" >"$M"
}

# send RCPT: one message to RCPT that must be accepted.
send() { msg "$1" && swaks_send --from alice@example.com --to "$1" --data "@$M"; }

# refused RCPT CODE ENH: the RCPT for RCPT gets CODE ENH.
refused() {
	msg "$1"
	swaks_expect_reject 5 --from alice@example.com --to "$1" --data "@$M" || return 1
	grep -q -E "^ *<\\*\\* +$2 $3 " "$SWAKS_LOG" ||
		fail_because "RCPT <$1> not refused with $2 $3: $(grep -E '^ *<\*\*' "$SWAKS_LOG" | tr '\n' ' ')"
}

# opens RCPT WHO: the sink's copy for RCPT is enveloped data that WHO's key
# decrypts to the body (openssl cms).
opens() {
	local f o
	f=$(sink_file_for "$1") || { fail_because "no message for $1 at the sink"; return 1; }
	grep -q -i '^Content-Type: application/\(x-\)\{0,1\}pkcs7-mime' "$f" &&
		! grep -q -F "$BODY" "$f" ||
		{ fail_because "the copy for $1 is not encrypted"; return 1; }
	o=$CASE_DIR/out.$2
	openssl cms -decrypt -recip "$P/$2.pem" -inkey "$P/$2.key" -in "$f" \
		-out "$o.txt" 2>"$o.err" ||
		{ fail_because "$2's key does not decrypt the copy for $1: $(tail -n 1 "$o.err")"; return 1; }
	grep -q -F "$BODY" "$o.txt" || fail_because "$2's plaintext lacks the body"
}

# logged ERE: smrelayd's log has a line matching ERE.
logged() {
	grep -q -E "$1" "$CASE_DIR/smrelayd.log" ||
		fail_because "smrelayd.log has no line matching /$1/"
}

# certs_of ADDR: the `cert list --email ADDR` lines.
certs_of() { ctl cert list --email "$1"; }

# ---------------------------------------------------------------- cases

# Usage 3 in a signed zone: used as found, stored with source smimea; the
# next message finds it in the cache (one lookup in all).
t_usage3_secure() {
	setup "$NSD_ADDR" --recipient @partner.example --action encrypt \
		--if-no-cert reject || return 1
	send bob@partner.example || return 1
	wait_delivered 1 && opens bob@partner.example bob || return 1
	certs_of bob@partner.example | grep -q -P '\tsmimea$' ||
		{ fail_because "cert list: no smimea certificate for bob: $(certs_of bob@partner.example | tr '\n' '|')"; return 1; }
	send bob@partner.example || return 1
	wait_delivered 2 || return 1
	[ "$(grep -c 'looking up .* SMIMEA for <bob@partner.example>' "$CASE_DIR/smrelayd.log")" -eq 1 ] ||
		fail_because "bob's certificate was looked up more than once"
}

# The record in an unsigned zone: ignored, --if-no-cert reject applies.
t_insecure_ignored() {
	setup "$NSD_ADDR" --recipient @unsigned.example --action encrypt \
		--if-no-cert reject || return 1
	refused bob@unsigned.example 550 5.7.1 || return 1
	logged 'SMIMEA for <bob@unsigned.example> ignored: not DNSSEC-secure' || return 1
	[ -z "$(certs_of bob@unsigned.example)" ] || fail_because "an insecure certificate was stored"
}

# A broken signature over the record: ignored; with hold the copy waits
# in the queue instead.
t_bogus_ignored() {
	setup "$NSD_ADDR" --recipient @bogus.example --action encrypt \
		--if-no-cert hold || return 1
	send bob@bogus.example || return 1
	logged 'SMIMEA for <bob@bogus.example> ignored: DNSSEC validation failed' || return 1
	ctl queue list | grep -F bob@bogus.example | grep -q -F hold-cert ||
		{ fail_because "no held copy for bob@bogus.example: $(ctl queue list | tr '\n' '|')"; return 1; }
	[ "$(sink_count)" -eq 0 ] || fail_because "something was delivered"
}

# Usage 1: a self-signed certificate is refused (no chain to our anchor);
# one issued under our anchor is used.  A digest record (3 0 1) gives no
# certificate.
t_usage1_chain() {
	setup "$NSD_ADDR" --recipient @partner.example --action encrypt \
		--if-no-cert reject || return 1
	refused frank@partner.example 550 5.7.1 || return 1
	logged 'record 1 \(usage 1\) for <frank@partner.example> not used: does not chain' || return 1
	refused gus@partner.example 550 5.7.1 || return 1
	logged 'record 1 \(usage 3\) for <gus@partner.example> not used: selector 0, matching type 1' || return 1
	send dave@partner.example || return 1
	wait_delivered 1 && opens dave@partner.example dave || return 1
	certs_of dave@partner.example | grep -q -P '\tsmimea$' ||
		fail_because "cert list: no smimea certificate for dave"
}

# silent_resolver: a UDP and TCP listener on SILENT (a port) that never
# answers.
silent_resolver() {
	SILENT=$(nsd_free_port)
	bg silent "$PYTHON" -c '
import socket, sys, time
p = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", p))
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", p))
t.listen(16)
held = []
t.setblocking(False)
while True:
    try:
        held.append(t.accept()[0])
    except BlockingIOError:
        pass
    try:
        u.setblocking(False)
        u.recv(4096)
    except BlockingIOError:
        time.sleep(0.05)
' "$SILENT"
}

# A resolver that never answers: the RCPT waits for the lookup's bound
# (5 s), then --if-no-cert applies; the address is not asked again at once.
t_timeout_bounded() {
	local t0 t1 ms
	silent_resolver
	setup "127.0.0.1:$SILENT" --recipient @partner.example --action encrypt \
		--if-no-cert reject || return 1
	t0=$(date +%s%N)
	refused bob@partner.example 550 5.7.1 || return 1
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	[ $ms -ge 4500 ] && [ $ms -lt 15000 ] ||
		{ fail_because "RCPT answered after $ms ms, want about 5000"; return 1; }
	logged 'SMIMEA lookup for <bob@partner.example> failed: TEMPFAIL timeout' || return 1
	t0=$(date +%s%N)
	refused bob@partner.example 550 5.7.1 || return 1
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	[ $ms -lt 3000 ] || fail_because "the second RCPT waited again ($ms ms)"
}

# Two sessions asking for one address share one lookup; a session that
# goes away while its RCPT waits abandons its lookup (no callback into a
# freed transaction: smrelayd goes on and exits cleanly).
t_shared_and_abandoned() {
	local a b n
	silent_resolver
	setup "127.0.0.1:$SILENT" --recipient @partner.example --action encrypt \
		--if-no-cert plain || return 1
	msg carol@partner.example
	swaks --server "127.0.0.1:$PORT" --from alice@example.com \
		--to carol@partner.example --data "@$M" >"$CASE_DIR/a.log" 2>&1 &
	a=$!
	swaks --server "127.0.0.1:$PORT" --from alice@example.com \
		--to carol@partner.example --data "@$M" >"$CASE_DIR/b.log" 2>&1 &
	b=$!
	wait $a && wait $b ||
		{ fail_because "a session to carol failed: $(tail -n 3 "$CASE_DIR/a.log" "$CASE_DIR/b.log" | tr '\n' ' ')"; return 1; }
	wait_delivered 2 || return 1
	n=$(grep -c 'looking up .* SMIMEA for <carol@partner.example>' "$CASE_DIR/smrelayd.log")
	[ "$n" -eq 1 ] || { fail_because "$n lookups for carol, want 1 shared"; return 1; }
	"$PYTHON" - "$PORT" <<'PY' || { fail_because "the client that leaves did not get its RCPT in"; return 1; }
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        if not l or l[3:4] != b"-":
            return l
reply()
for c in (b"EHLO client.test", b"MAIL FROM:<alice@example.com>"):
    s.sendall(c + b"\r\n")
    if not reply().startswith(b"250"):
        sys.exit(1)
s.sendall(b"RCPT TO:<erin@partner.example>\r\n")
time.sleep(1)
s.close()
PY
	sleep 6
	kill -0 "$SMRELAYD_PID" 2>/dev/null || { fail_because "smrelayd died"; return 1; }
	logged 'looking up .* SMIMEA for <erin@partner.example>' || return 1
	if grep -q 'SMIMEA lookup for <erin@partner.example>' "$CASE_DIR/smrelayd.log"; then
		fail_because "the abandoned lookup still reported its end"
	fi
}

# SIGHUP with another dns_resolver while a RCPT waits on the old one: the
# lookup is abandoned at once (--if-no-cert plain), the next one asks the
# new resolver and finds the certificate.
t_reload_mid_lookup() {
	local a t0 ms
	silent_resolver
	setup "127.0.0.1:$SILENT" --recipient @partner.example --action encrypt \
		--if-no-cert plain || return 1
	msg bob@partner.example
	t0=$(date +%s%N)
	swaks --server "127.0.0.1:$PORT" --from alice@example.com \
		--to bob@partner.example --data "@$M" >"$CASE_DIR/a.log" 2>&1 &
	a=$!
	wait_for 5 grep -q 'waiting for SMIMEA' "$CASE_DIR/smrelayd.log" ||
		{ fail_because "the RCPT did not wait for SMIMEA"; return 1; }
	sed -i "s/^dns_resolver = .*/dns_resolver = $NSD_ADDR/" "$CONF"
	kill -HUP "$SMRELAYD_PID"
	wait $a || { fail_because "the first message failed: $(tail -n 3 "$CASE_DIR/a.log" | tr '\n' ' ')"; return 1; }
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ $ms -lt 4500 ] || { fail_because "the RCPT waited $ms ms despite the reload"; return 1; }
	logged 'lookup for <bob@partner.example> abandoned \(reconfigured\)' || return 1
	wait_delivered 1 || return 1
	grep -q -F "$BODY" "$(sink_file_for bob@partner.example)" ||
		{ fail_because "the first copy is not plain"; return 1; }
	rm -f "$SINK_DIR"/new/* "$SINK_DIR"/cur/*
	send bob@partner.example || return 1
	wait_delivered 1 && opens bob@partner.example bob
}

run_case usage3_secure t_usage3_secure
run_case insecure_ignored t_insecure_ignored
run_case bogus_ignored t_bogus_ignored
run_case usage1_chain t_usage1_chain
run_case timeout_bounded t_timeout_bounded
run_case shared_and_abandoned t_shared_and_abandoned
run_case reload_mid_lookup t_reload_mid_lookup
it_finish
