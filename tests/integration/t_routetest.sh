#!/bin/bash
# t_routetest.sh: `smrelayctl route test ADDR` against a real authoritative
# DNS server (NSD, some zones DNSSEC-signed, their DS records the trust
# anchors): MX hosts by preference with their IPv6 and IPv4 addresses, a
# signed zone's TLSA records shown as secure, TLSA not looked up in an
# unsigned zone, a route line (its line, target and tls=), a route to a
# fixed host name, implicit and null MX, NXDOMAIN, a bogus TLSA signature,
# dane-only without TLSA, --json, bad addresses, and DNS down (a clear
# error within the lookup timeout).  It reads only the configuration: the
# data_dir does not exist, and it runs as an unprivileged user too.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../dns/nsd.sh"
need_bins
nsd_have || { echo "SKIP: nsd or ldnsutils not installed"; exit 77; }

trap 'rc=$?; nsd_stop; (exit $rc); it_cleanup' EXIT

TLSA_HEX=$(printf 'mx.signed.example key' | sha256sum | cut -c1-64)
nsd_init "$IT_TMP/nsd" || exit 99
nsd_zone partner.example <<'EOF'
@ IN MX 20 mx2
@ IN MX 10 mx1
mx1 IN AAAA ::1
mx1 IN A 127.0.0.2
mx2 IN A 127.0.0.3
_25._tcp.mx1 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
EOF
nsd_zone signed.example < <(cat <<EOF
@ IN MX 10 mx
mx IN A 127.0.0.7
_25._tcp.mx IN TLSA 3 1 1 $TLSA_HEX
EOF
)
nsd_zone bogus.example < <(cat <<EOF
@ IN MX 10 mx
mx IN A 127.0.0.8
_25._tcp.mx IN TLSA 3 1 1 $TLSA_HEX
EOF
)
nsd_zone implicit.example <<'EOF'
@ IN A 127.0.0.4
EOF
nsd_zone strict.example <<'EOF'
@ IN MX 10 mx
mx IN A 127.0.0.9
EOF
nsd_zone nullmx.example <<'EOF'
@ IN MX 0 .
EOF
nsd_sign signed.example || exit 99
nsd_sign bogus.example || exit 99
nsd_tamper bogus.example _25._tcp.mx.bogus.example. TLSA || exit 99
nsd_start || { echo "ERROR: nsd did not start"; exit 99; }
chmod 755 "$NSD_DIR"
chmod 644 "$NSD_TA"

# The configuration: data_dir does not exist (route test must not need
# the store, the spool or the key file).  The route lines are lines 8-10.
CONF=$IT_TMP/smrelay.conf
cat >"$CONF" <<EOF
# t_routetest.sh
listen = 127.0.0.1:$(free_port) tls=none
hostname = relay.test
data_dir = $IT_TMP/no-such-dir
relay = mx
dns_resolver = $NSD_ADDR
dns_trust_anchor = $NSD_TA
route = @dane.example mx.signed.example:25 tls=dane
route = @literal.example 192.0.2.1:2525 tls=encrypt
route = @strict.example mx tls=dane-only
EOF
chmod 644 "$CONF"

# rt [ARGS...]: run route test; stdout in $CASE_DIR/out, stderr in
# $CASE_DIR/err, the exit status in RC, the seconds it took in SECS.
rt() {
	local t0=$SECONDS
	"$SMRELAYCTL" -c "$CONF" route test "$@" >"$CASE_DIR/out" 2>"$CASE_DIR/err"
	RC=$?
	SECS=$((SECONDS - t0))
	cp "$CASE_DIR/out" "$CASE_DIR/out.log"
	cp "$CASE_DIR/err" "$CASE_DIR/err.log"
}

# has FIELD...: the output has exactly this line (fields joined by tabs).
has() {
	local IFS=$'\t' want
	want="$*"
	grep -qxF -- "$want" "$CASE_DIR/out" ||
		fail_because "no line \"${want//$'\t'/\\t}\" in: $(tr '\t\n' ' |' <"$CASE_DIR/out")"
}

# rc_is N: the exit status was N.
rc_is() {
	[ "$RC" -eq "$1" ] ||
		fail_because "exit status $RC, want $1 (stderr: $(cat "$CASE_DIR/err"))"
}

# err_has ERE: stderr matches.
err_has() {
	grep -qE -- "$1" "$CASE_DIR/err" ||
		fail_because "stderr lacks /$1/: $(cat "$CASE_DIR/err")"
}

# Two MX preferences (written in the zone the other way round): by
# preference, each host's addresses IPv6 first; unsigned: no TLSA lookup
# (the TLSA record in the zone is not shown).
t_mx_preference() {
	rt bob@partner.example || true
	rc_is 0 || return 1
	[ -s "$CASE_DIR/err" ] && { fail_because "stderr: $(cat "$CASE_DIR/err")"; return 1; }
	has address bob@partner.example && has rule relay &&
		has target mx partner.example 25 && has tls may &&
		has dns "$NSD_ADDR" "$NSD_TA" &&
		has mx partner.example OK insecure "" &&
		has host mx1.partner.example 10 OK insecure "" &&
		has host mx2.partner.example 20 OK insecure "" &&
		has tlsa _25._tcp.mx1.partner.example - - "not looked up: MX/host insecure" &&
		has tlsa _25._tcp.mx2.partner.example - - "not looked up: MX/host insecure" ||
		return 1
	local order
	order=$(grep -E '^(host|addr)	' "$CASE_DIR/out" | cut -f1,2,3 | tr '\t\n' ' |')
	[ "$order" = "host mx1.partner.example 10|addr mx1.partner.example ::1|addr mx1.partner.example 127.0.0.2|host mx2.partner.example 20|addr mx2.partner.example 127.0.0.3|" ] ||
		fail_because "order: $order"
}

# A signed zone: MX, host and TLSA secure, the record's data in hex.
t_signed_tlsa() {
	rt sam@Signed.Example || true
	rc_is 0 || return 1
	has target mx signed.example 25 &&
		has mx signed.example OK secure "" &&
		has host mx.signed.example 10 OK secure "" &&
		has addr mx.signed.example 127.0.0.7 &&
		has tlsa _25._tcp.mx.signed.example OK secure "3 1 1 $TLSA_HEX"
}

# A route line: its line number and pattern, its fixed target (a name in
# the signed zone: addresses and TLSA shown the same way), its tls=.
t_route_host() {
	rt '<dan@dane.example>' || true
	rc_is 0 || return 1
	has address dan@dane.example && has rule route 8 @dane.example &&
		has target host mx.signed.example 25 && has tls dane &&
		has host mx.signed.example - OK secure "" &&
		has addr mx.signed.example 127.0.0.7 &&
		has tlsa _25._tcp.mx.signed.example OK secure "3 1 1 $TLSA_HEX" ||
		return 1
	grep -q '^mx' "$CASE_DIR/out" && fail_because "an MX line for a fixed host"
	return 0
}

# A route to an IP address: nothing looked up, no TLSA.
t_route_literal() {
	rt lee@literal.example || true
	rc_is 0 || return 1
	has rule route 9 @literal.example && has target host 192.0.2.1 2525 &&
		has tls encrypt && has host 192.0.2.1 - literal - "" &&
		has addr 192.0.2.1 192.0.2.1 &&
		has tlsa _2525._tcp.192.0.2.1 - - "not looked up: IP address, no name"
}

# dane-only to an unsigned domain: nowhere to go, exit 1.
t_dane_only_insecure() {
	rt sid@strict.example || true
	rc_is 1 || return 1
	has rule route 10 @strict.example && has tls dane-only &&
		has mx strict.example OK insecure "" &&
		has host mx.strict.example 10 OK insecure "" &&
		has addr mx.strict.example 127.0.0.9 &&
		has tlsa _25._tcp.mx.strict.example - - "not looked up: MX/host insecure" ||
		return 1
	err_has 'sid@strict.example: no host with an address and DNSSEC-secure TLSA records \(dane-only\)'
}

# No MX records: the domain itself (implicit MX).
t_implicit_mx() {
	rt ina@implicit.example || true
	rc_is 0 || return 1
	has mx implicit.example OK insecure "implicit MX: no MX records, the domain itself" &&
		has host implicit.example 0 OK insecure "" &&
		has addr implicit.example 127.0.0.4
}

# Null MX: shown, exit 1 with the reason.
t_null_mx() {
	rt nora@nullmx.example || true
	rc_is 1 || return 1
	has mx nullmx.example OK insecure "null MX: the domain accepts no mail" ||
		return 1
	grep -q '^host' "$CASE_DIR/out" && { fail_because "hosts for a null MX"; return 1; }
	err_has 'nora@nullmx.example: nullmx.example accepts no mail \(null MX\)'
}

# A domain that does not exist: the answer shown, exit 1.
t_nxdomain() {
	rt erin@nosuch.partner.example || true
	rc_is 1 || return 1
	has mx nosuch.partner.example NXDOMAIN insecure "the domain does not exist" ||
		return 1
	err_has 'does not exist \(NXDOMAIN\)'
}

# A broken signature over the TLSA records: BOGUS, not their data.
t_bogus_tlsa() {
	rt bo@bogus.example || true
	rc_is 0 || return 1
	has host mx.bogus.example 10 OK secure "" || return 1
	grep -qE "^tlsa	_25\._tcp\.mx\.bogus\.example	BOGUS	insecure	.+" "$CASE_DIR/out" ||
		fail_because "no BOGUS tlsa line: $(tr '\t\n' ' |' <"$CASE_DIR/out")"
	grep -q "$TLSA_HEX" "$CASE_DIR/out" && fail_because "bogus TLSA data shown"
	return 0
}

# --json (global or after the address): one object.
t_json() {
	local a
	for a in "--json route test sam@signed.example" "route test sam@signed.example --json"; do
		# shellcheck disable=SC2086
		"$SMRELAYCTL" -c "$CONF" $a >"$CASE_DIR/out" 2>"$CASE_DIR/err" ||
			{ fail_because "$a: exit $?: $(cat "$CASE_DIR/err")"; return 1; }
		"$PYTHON" - "$CASE_DIR/out" "$TLSA_HEX" <<'EOF' || { fail_because "$a: $(cat "$CASE_DIR/out")"; return 1; }
import json, sys
j = json.load(open(sys.argv[1]))
assert j["address"] == "sam@signed.example"
assert j["rule"] == {"kind": "relay"}
assert j["target"] == {"mx": True, "domain": "signed.example", "port": 25}
assert j["tls"] == "may" and j["deliverable"] is True
assert j["mx"]["status"] == "OK" and j["mx"]["secure"] is True
h, = j["hosts"]
assert h["name"] == "mx.signed.example" and h["preference"] == 10
assert h["secure"] is True and h["addresses"] == ["127.0.0.7"]
t = h["tlsa"]
assert t["looked_up"] and t["secure"] and t["name"] == "_25._tcp.mx.signed.example"
assert t["records"] == [{"usage": 3, "selector": 1, "mtype": 1, "data": sys.argv[2]}]
EOF
	done
}

# Bad addresses: a usage error (exit 2) with the reason; a wrong call: usage, exit 2.
t_bad_address() {
	local a
	for a in bob bob@ @partner.example; do
		rt "$a" || true
		rc_is 2 || return 1   # a usage error (smrelayctl(8) EXIT STATUS)
		err_has "bad address \"$a\"" || return 1
		[ -s "$CASE_DIR/out" ] && { fail_because "$a: output: $(cat "$CASE_DIR/out")"; return 1; }
	done
	rt || true
	rc_is 2 && err_has '^usage: smrelayctl route test ADDR' || return 1
	rt a@partner.example b@partner.example || true
	rc_is 2
}

# Not root: the same answer as an unprivileged user.
t_unprivileged() {
	[ "$(id -u)" -eq 0 ] || { rt bob@partner.example; rc_is 0; return; }
	have setpriv || { skip "no setpriv"; return 0; }
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$SMRELAYCTL" -c "$CONF" route test sam@signed.example \
		>"$CASE_DIR/out" 2>"$CASE_DIR/err"
	RC=$?
	rc_is 0 && has tlsa _25._tcp.mx.signed.example OK secure "3 1 1 $TLSA_HEX"
}

# DNS down (NSD stopped): exit 1, a clear reason, within the lookup
# timeout (10 s) and some slack.  Last: it stops NSD.
t_dns_down() {
	nsd_stop
	rt bob@partner.example || true
	rc_is 1 || return 1
	err_has 'MX lookup for partner.example: (TEMPFAIL|the domain)' || return 1
	[ "$SECS" -le 25 ] || fail_because "took $SECS s"
}

run_case mx_preference t_mx_preference
run_case signed_tlsa t_signed_tlsa
run_case route_host t_route_host
run_case route_literal t_route_literal
run_case dane_only_insecure t_dane_only_insecure
run_case implicit_mx t_implicit_mx
run_case null_mx t_null_mx
run_case nxdomain t_nxdomain
run_case bogus_tlsa t_bogus_tlsa
run_case json t_json
run_case bad_address t_bad_address
run_case unprivileged t_unprivileged
run_case dns_down t_dns_down
it_finish
