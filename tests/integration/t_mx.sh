#!/bin/bash
# t_mx.sh: relay = mx and route lines against a real authoritative DNS
# server (NSD, some zones DNSSEC-signed with ldns-signzone, their DS records
# given to smrelayd as trust anchors) and capture sinks on 127.0.0.x:
# preference order with the first host down, implicit MX, null MX,
# NXDOMAIN, a DNS failure (spooled, delivered once DNS answers again), one
# transaction fanned out to two domains, a route overriding MX, mail loops
# (our own listener, localhost), an IP-literal MX, a bogus signature; DANE
# (RFC 7672): DANE-EE match delivered over TLS, mismatch and bogus TLSA
# never delivered, DANE-TA with the MX name checked, dane-only without
# TLSA refused, dane falling back to plain delivery where DNS is insecure.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../dns/nsd.sh"
need_bins
nsd_have || { echo "SKIP: nsd or ldnsutils not installed"; exit 77; }

trap 'rc=$?; nsd_stop; (exit $rc); it_cleanup' EXIT

# One NSD for the whole file.
MXPORT=$(free_port)
nsd_init "$IT_TMP/nsd" || exit 99
# TLS for the DANE sinks: the test server certificate (DANE-EE), and one
# for mx.danta.example issued by the test CA, the CA in its chain (DANE-TA)
it_certs || exit 99
spki_sha256() {
	openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER |
		sha256sum | cut -d' ' -f1
}
EE_HASH=$(spki_sha256 "$PKI/srv.pem")
(
	cd "$PKI" || exit 1
	printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" \
		"subjectAltName=DNS:mx.danta.example" >ta.ext
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout ta.key -out ta.csr -subj "/CN=mx.danta.example" &&
		openssl x509 -req -in ta.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
			-days 30 -extfile ta.ext -out ta-leaf.pem &&
		cat ta-leaf.pem ca.pem >ta.pem && chmod 644 ta.pem ta.key
) >"$IT_TMP/ta.log" 2>&1 || { cat "$IT_TMP/ta.log"; exit 99; }
TA_HASH=$(openssl x509 -in "$PKI/ca.pem" -outform DER | sha256sum | cut -d' ' -f1)
nsd_zone partner.example <<'EOF'
@ IN MX 10 mx1
@ IN MX 20 mx2
mx1 IN A 127.0.0.2
mx2 IN A 127.0.0.3
EOF
nsd_zone implicit.example <<'EOF'
@ IN A 127.0.0.4
EOF
nsd_zone other.example <<'EOF'
@ IN MX 10 mx
mx IN A 127.0.0.5
EOF
nsd_zone nullmx.example <<'EOF'
@ IN MX 0 .
EOF
nsd_zone loop.example <<'EOF'
@ IN MX 10 mx
mx IN A 127.0.0.6
EOF
nsd_zone lh.example <<'EOF'
@ IN MX 10 localhost.
EOF
nsd_zone literal.example <<'EOF'
@ IN MX 10 127.0.0.3.
EOF
nsd_zone signed.example <<'EOF'
@ IN MX 10 mx
mx IN A 127.0.0.7
EOF
nsd_zone bogus.example <<'EOF'
@ IN MX 10 mx
mx IN A 127.0.0.7
EOF
nsd_zone dane.example <<EOF
@ IN MX 10 mx
mx IN A 127.0.0.9
_$MXPORT._tcp.mx IN TLSA 3 1 1 $EE_HASH
EOF
nsd_zone danebad.example <<EOF
@ IN MX 10 mx
mx IN A 127.0.0.9
_$MXPORT._tcp.mx IN TLSA 3 1 1 $(printf '%064d' 0)
EOF
nsd_zone danebogus.example <<EOF
@ IN MX 10 mx
mx IN A 127.0.0.9
_$MXPORT._tcp.mx IN TLSA 3 1 1 $EE_HASH
EOF
nsd_zone danta.example <<EOF
@ IN MX 10 mx
mx IN A 127.0.0.10
_$MXPORT._tcp.mx IN TLSA 2 0 1 $TA_HASH
EOF
nsd_zone daneunsigned.example <<EOF
@ IN MX 10 mx
mx IN A 127.0.0.9
_$MXPORT._tcp.mx IN TLSA 3 1 1 $(printf '%064d' 0)
EOF
for z in dane danebad danebogus danta; do
	nsd_sign $z.example || exit 99
done
nsd_tamper danebogus.example "_$MXPORT._tcp.mx.danebogus.example." TLSA || exit 99
nsd_sign signed.example || exit 99
nsd_sign bogus.example || exit 99
nsd_tamper bogus.example mx.bogus.example. A || exit 99
nsd_start || { echo "ERROR: nsd did not start"; exit 99; }
# the network process (user smrelay) reads the trust anchors
chmod 755 "$NSD_DIR"
chmod 644 "$NSD_TA"

# mx_sink NAME ADDR: a capture sink on ADDR:MXPORT, Maildir $CASE_DIR/NAME.
mx_sink() {
	mkdir -p "$CASE_DIR/$1/new" "$CASE_DIR/$1/cur" "$CASE_DIR/$1/tmp"
	local name=$1 addr=$2
	shift 2
	bg "sink-$name" "$SMRELAYCTL" sink --listen "$addr:$MXPORT" --maildir "$CASE_DIR/$name" "$@"
	set -- "$name" "$addr"
	"$PYTHON" - "$2" "$MXPORT" <<'EOF' || fail_because "sink on $2:$MXPORT did not start"
import socket, sys, time
for _ in range(150):
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
EOF
}

# mx_count NAME: messages the sink NAME captured.
mx_count() {
	find "$CASE_DIR/$1/new" -type f | wc -l
}

# mx_has NAME RCPT: the sink NAME has a message delivered to RCPT.
mx_has() {
	grep -l -r -F "Delivered-To: $2" "$CASE_DIR/$1/new" >/dev/null 2>&1
}

# mx_wait NAME N: wait up to 20 s for N messages at sink NAME.
mx_wait() {
	local n=0
	while [ "$(mx_count "$1")" -lt "$2" ]; do
		n=$((n + 1))
		[ $n -gt 200 ] && { fail_because "sink $1 has $(mx_count "$1") message(s), want $2"; return 1; }
		sleep 0.1
	done
}

# mx_relay [write_conf args]: smrelayd with relay = mx through NSD.
mx_relay() {
	start_relay relay=mx relay_mx_port="$MXPORT" dns_resolver="$NSD_ADDR" \
		dns_trust_anchor="$NSD_TA" "$@"
}

# send_to RCPT EXPECT: one message to RCPT, the RCPT reply matching EXPECT
# (chat.py syntax), DATA only when the RCPT is accepted.
send_to() {
	if [[ $2 == 250* ]]; then
		chat expect:220 line:"EHLO client.example" expect:250 \
			line:"MAIL FROM:<sender@example.com>" expect:250 \
			line:"RCPT TO:<$1>" expect:"$2" \
			line:DATA expect:354 send:"Subject: to $1\r\n\r\nbody\r\n.\r\n" expect:"${3:-250}" \
			line:QUIT expect:221
	else
		chat expect:220 line:"EHLO client.example" expect:250 \
			line:"MAIL FROM:<sender@example.com>" expect:250 \
			line:"RCPT TO:<$1>" expect:"$2" \
			line:QUIT expect:221
	fi
}

# The best MX (preference 10) does not answer: the next one (20) gets it.
t_preference_first_down() {
	mx_sink mx2 127.0.0.3 && mx_relay || return 1
	send_to bob@partner.example 250 || return 1
	mx_wait mx2 1 && mx_has mx2 bob@partner.example ||
		{ fail_because "${IT_REASON:-no message for bob at mx2}"; return 1; }
	grep -q 'mx1.partner.example\[127.0.0.2\]' "$CASE_DIR/smrelayd.log" ||
		{ fail_because "mx1 (preference 10) was not tried first"; return 1; }
	grep -q 'to=mx2.partner.example\[127.0.0.3\]' "$CASE_DIR/smrelayd.log" ||
		fail_because "the log does not name mx2.partner.example[127.0.0.3]"
}

# No MX, but an address: the domain itself (RFC 5321 5.1).
t_implicit_mx() {
	mx_sink impl 127.0.0.4 && mx_relay || return 1
	send_to carol@implicit.example 250 || return 1
	mx_wait impl 1 && mx_has impl carol@implicit.example ||
		fail_because "${IT_REASON:-no message for carol}"
}

# Null MX (RFC 7505): 556 5.1.10 at RCPT; nothing delivered or queued.
t_null_mx() {
	mx_relay || return 1
	send_to dave@nullmx.example '556:5\.1\.10' || return 1
	local out
	out=$("$SMRELAYCTL" -c "$CONF" queue list 2>&1)
	[ -z "$out" ] || fail_because "queued anyway: $out"
}

# A domain that does not exist: 550 5.1.2.
t_nxdomain() {
	mx_relay || return 1
	send_to erin@nosuch.partner.example '550:5\.1\.2'
}

# One transaction, recipients in two domains: one copy to each domain's
# MX, each with only its own recipient; the client gets one 250.
t_fan_out() {
	mx_sink mx2 127.0.0.3 && mx_sink other 127.0.0.5 && mx_relay || return 1
	chat expect:220 line:"EHLO client.example" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<bob@partner.example>" expect:250 \
		line:"RCPT TO:<olga@other.example>" expect:250 \
		line:"RCPT TO:<oscar@other.example>" expect:250 \
		line:DATA expect:354 send:"Subject: two domains\r\n\r\nbody\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	mx_wait mx2 1 && mx_wait other 1 || return 1
	mx_has mx2 bob@partner.example || { fail_because "bob's copy is not at mx2"; return 1; }
	mx_has other olga@other.example && mx_has other oscar@other.example ||
		{ fail_because "olga's and oscar's copy is not at other.example's MX"; return 1; }
	if mx_has mx2 olga@other.example || mx_has other bob@partner.example; then
		fail_because "a recipient reached the other domain's MX"
		return 1
	fi
	[ "$(mx_count other)" -eq 1 ] || fail_because "other.example got $(mx_count other) copies, want 1"
}

# A route line wins over MX for its recipients.
t_route_override() {
	mx_sink over 127.0.0.8 && mx_sink mx2 127.0.0.3 &&
		mx_relay route="@partner.example 127.0.0.8:$MXPORT" || return 1
	send_to bob@partner.example 250 || return 1
	send_to olga@other.example 250 || return 1
	mx_wait over 1 && mx_has over bob@partner.example || return 1
	[ "$(mx_count mx2)" -eq 0 ] || fail_because "mx2 got mail the route sends elsewhere"
}

# The MX is one of our own listeners: a loop, refused with 5.4.6.
t_loop_own_listener() {
	mx_relay "listen+=127.0.0.6:$MXPORT tls=none" || return 1
	send_to lou@loop.example '554:5\.4\.6'
}

# The MX is localhost: a loop too.
t_loop_localhost() {
	mx_relay || return 1
	send_to lisa@lh.example '554:5\.4\.6'
}

# An MX naming an IP literal is no host: not delivered there, kept for a
# retry (the domain may be fixed), the reason in the queue.
t_ip_literal_mx() {
	mx_sink mx2 127.0.0.3 && mx_relay || return 1
	send_to ivan@literal.example 250 '250:queued' || return 1
	assert_queued ivan@literal.example '4\.4\.3' || return 1
	[ "$(mx_count mx2)" -eq 0 ] || fail_because "delivered to the IP literal's address"
}

# A signed zone validates and is delivered; a bogus signature is never
# delivered (queued, temporary, with the reason).
t_dnssec() {
	mx_sink signed 127.0.0.7 && mx_relay || return 1
	send_to sam@signed.example 250 || return 1
	mx_wait signed 1 && mx_has signed sam@signed.example || return 1
	send_to bo@bogus.example 250 '250:queued' || return 1
	assert_queued bo@bogus.example '4\.4\.3' || return 1
	! mx_has signed bo@bogus.example || fail_because "delivered on a bogus answer"
}

# tls_sink NAME ADDR CERT KEY: a capture sink offering STARTTLS.
tls_sink() {
	mx_sink "$1" "$2" --tls-cert "$3" --tls-key "$4"
}

# DANE-EE (3 1 1) matching the sink's key: delivered over TLS, verified.
t_dane_ee_match() {
	tls_sink dane 127.0.0.9 "$PKI/srv.pem" "$PKI/srv.key" &&
		mx_relay relay_tls=dane || return 1
	send_to dan@dane.example 250 || return 1
	mx_wait dane 1 && mx_has dane dan@dane.example || return 1
	grep -q 'verified=dane (TLSA 3 1 1 at depth 0)' "$CASE_DIR/smrelayd.log" ||
		fail_because "the log does not say the TLSA record matched"
}

# A TLSA record that matches nothing: never delivered (not even in
# plaintext), kept for a retry with the reason.
t_dane_mismatch() {
	tls_sink dane 127.0.0.9 "$PKI/srv.pem" "$PKI/srv.key" &&
		mx_relay relay_tls=dane || return 1
	send_to mia@danebad.example 250 '250:queued' || return 1
	assert_queued mia@danebad.example '4\.7\.5' || return 1
	[ "$(mx_count dane)" -eq 0 ] || fail_because "delivered despite the TLSA mismatch"
}

# A TLSA RRset whose signature is bogus: the host is not used.
t_dane_bogus_tlsa() {
	tls_sink dane 127.0.0.9 "$PKI/srv.pem" "$PKI/srv.key" &&
		mx_relay relay_tls=dane || return 1
	send_to bea@danebogus.example 250 '250:queued' || return 1
	assert_queued bea@danebogus.example '4\.7\.5' || return 1
	[ "$(mx_count dane)" -eq 0 ] || fail_because "delivered on a bogus TLSA answer"
}

# DANE-TA (2 0 1, the CA's certificate): the chain must lead to it and the
# certificate must name the MX host.
t_dane_ta() {
	tls_sink danta 127.0.0.10 "$PKI/ta.pem" "$PKI/ta.key" &&
		mx_relay relay_tls=dane || return 1
	send_to tara@danta.example 250 || return 1
	mx_wait danta 1 && mx_has danta tara@danta.example || return 1
	grep -q 'verified=dane (TLSA 2 0 1 at depth 1)' "$CASE_DIR/smrelayd.log" ||
		fail_because "the log does not say the TLSA record matched the CA"
}

# dane-only and a destination without (secure) TLSA records: refused,
# kept for a retry, nothing delivered.
t_dane_only_no_tlsa() {
	mx_sink signed 127.0.0.7 && mx_relay relay_tls=dane-only || return 1
	send_to sam@signed.example 250 '250:queued' || return 1
	assert_queued sam@signed.example '4\.7\.5' || return 1
	[ "$(mx_count signed)" -eq 0 ] || fail_because "dane-only delivered without TLSA"
}

# dane where DNS is insecure (TLSA records in an unsigned zone count for
# nothing): as may, delivered.
t_dane_insecure_fallback() {
	mx_sink dane 127.0.0.9 && mx_relay relay_tls=dane || return 1
	send_to uma@daneunsigned.example 250 || return 1
	mx_wait dane 1 && mx_has dane uma@daneunsigned.example
}

# A route to a named host with tls=dane: its TLSA records are enforced as
# for an MX host.  Match: delivered.
t_dane_route_match() {
	tls_sink dane 127.0.0.9 "$PKI/srv.pem" "$PKI/srv.key" &&
		mx_relay "route=@good.example mx.dane.example:$MXPORT tls=dane" || return 1
	send_to gus@good.example 250 || return 1
	mx_wait dane 1 && mx_has dane gus@good.example || return 1
	grep -q 'verified=dane (TLSA 3 1 1 at depth 0)' "$CASE_DIR/smrelayd.log" ||
		fail_because "the route's TLSA record was not checked"
}

# ... mismatch: kept, never delivered.
t_dane_route_mismatch() {
	tls_sink dane 127.0.0.9 "$PKI/srv.pem" "$PKI/srv.key" &&
		mx_relay "route=@bad.example mx.danebad.example:$MXPORT tls=dane" || return 1
	send_to bill@bad.example 250 '250:queued' || return 1
	assert_queued bill@bad.example '4\.7\.5' || return 1
	[ "$(mx_count dane)" -eq 0 ] || fail_because "delivered despite the TLSA mismatch"
}

# DNS down (NSD stopped): accepted and spooled, not lost; delivered by
# the queue once DNS answers again (here: at the restart of smrelayd, which
# retries its spool at once).  Last: it stops NSD.
t_dns_down() {
	mx_sink impl 127.0.0.4 && mx_relay || return 1
	nsd_stop
	send_to dora@implicit.example 250 '250:queued' || { nsd_start; return 1; }
	assert_queued dora@implicit.example '4\.4\.3' || { nsd_start; return 1; }
	nsd_start || { fail_because "nsd did not restart"; return 1; }
	stop_smrelayd && start_smrelayd "$CONF" "$PORT" || return 1
	mx_wait impl 1 && mx_has impl dora@implicit.example
}

run_case preference_first_down t_preference_first_down
run_case implicit_mx t_implicit_mx
run_case null_mx t_null_mx
run_case nxdomain t_nxdomain
run_case fan_out t_fan_out
run_case route_override t_route_override
run_case loop_own_listener t_loop_own_listener
run_case loop_localhost t_loop_localhost
run_case ip_literal_mx t_ip_literal_mx
run_case dnssec t_dnssec
run_case dane_ee_match t_dane_ee_match
run_case dane_mismatch t_dane_mismatch
run_case dane_bogus_tlsa t_dane_bogus_tlsa
run_case dane_ta t_dane_ta
run_case dane_only_no_tlsa t_dane_only_no_tlsa
run_case dane_insecure_fallback t_dane_insecure_fallback
run_case dane_route_match t_dane_route_match
run_case dane_route_mismatch t_dane_route_mismatch
run_case dns_down t_dns_down
it_finish
