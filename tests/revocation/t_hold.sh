#!/bin/bash
# tests/revocation/t_hold.sh: a signed message whose signer's revocation
# is not known yet is held while smrelayd fetches it (revocation_wait),
# then decided on what came: swaks -> smrelayd (verify rule) -> sink, with
# a CA made with `openssl ca` whose certificates name CRL distribution
# points served by `python3 -m http.server` and an OCSP responder
# (`openssl ocsp`), nothing imported but the root.  Also: a responder that
# never finishes holds the message no longer than revocation_wait, and the
# daemon serves others meanwhile; revocation_wait = 0 decides at once.
# Harness: tests/integration/lib.sh.
set -u
TOP_SRC=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../integration/lib.sh
. "$TOP_SRC/tests/integration/lib.sh"
need_bins
for b in swaks openssl; do
	have $b || { echo "SKIP all: $b not installed"; exit 77; }
done
HOST=relay.test
C=$IT_TMP/ca
HPORT=$(free_port)      # python3 -m http.server: the CRLs
BPORT=$(free_port)      # badhttp.py: a CRL sent at 1 byte/s
OPORT=$(free_port)      # openssl ocsp, for the OCSP CA
ROPORT=$(free_port)     # openssl ocsp, for the root
DPORT=$(free_port)      # nothing listens here
H=http://127.0.0.1:$HPORT

# ---------------------------------------------------------------- the CA
# tests/revocation/pki.sh's: root -> issuing CA (its CRL at $H/root.crl)
# -> leaves, each naming where its revocation is found: good, revoked (CRL
# at $H/int.crl), slow (a CRL that never finishes), down (a closed port);
# ocsp, from the OCSP CA, with only an OCSP responder; direct, issued by
# the root itself (which publishes no CRL), with only an OCSP responder.
make_ca() {
	mkdir -p "$C" && cd "$C" || return 1
	# shellcheck source=pki.sh
	. "$TOP_SRC/tests/revocation/pki.sh"
	ca_setup "$H" &&
		leafext good "$H/int.crl" &&
		leafext slow "http://127.0.0.1:$BPORT/slow.crl" &&
		leafext down "http://127.0.0.1:$DPORT/int.crl" &&
		ocspext ocsp "http://127.0.0.1:$OPORT/" &&
		ocspext rootocsp "http://127.0.0.1:$ROPORT/" &&
		leaf good good good@partner.example &&
		leaf revoked good revoked@partner.example &&
		leaf slow slow slow@partner.example &&
		leaf down down down@partner.example &&
		ocspleaf ocsp ocsp ocsp@partner.example &&
		issue root.db ca.pem ca.key direct rootocsp direct@partner.example &&
		CADB=int.db $O ca -config ca.cnf -cert int.pem -keyfile int.key \
			-revoke revoked.pem -crl_reason keyCompromise &&
		ca_crls
}
(make_ca) >"$IT_TMP/ca.log" 2>&1 || { echo "FAIL setup: the CA: $(tail -n 3 "$IT_TMP/ca.log" | tr '\n' ' ')"; exit 1; }

# ---------------------------------------------------------------- servers
# (started once for the whole file: not in IT_PIDS, which every case's end
# kills)
SERVERS=()
hold_cleanup() {
	local rc=$? p
	for p in "${SERVERS[@]+"${SERVERS[@]}"}"; do kill "$p" 2>/dev/null; done
	(exit $rc)
	it_cleanup
}
trap hold_cleanup EXIT
"$PYTHON" -m http.server --bind 127.0.0.1 --directory "$C/www" "$HPORT" >"$IT_TMP/http.log" 2>&1 &
SERVERS+=($!)
wait_listen "$HPORT" $! || { echo "FAIL setup: http.server did not start"; exit 1; }
"$PYTHON" "$TOP_SRC/tests/revocation/badhttp.py" "$BPORT" >"$IT_TMP/badhttp.log" 2>&1 &
SERVERS+=($!)
wait_listen "$BPORT" $! || { echo "FAIL setup: badhttp.py did not start"; exit 1; }
(cd "$C" && exec openssl ocsp -index ocspca.db -port "$OPORT" -rsigner responder.pem \
	-rkey leaf.key -CA ocspca.pem -ndays 1) >"$IT_TMP/ocsp.log" 2>&1 &
SERVERS+=($!)
(cd "$C" && exec openssl ocsp -index root.db -port "$ROPORT" -rsigner ca.pem \
	-rkey ca.key -CA ca.pem -ndays 1) >"$IT_TMP/rocsp.log" 2>&1 &
SERVERS+=($!)
# (not probed by connecting: openssl ocsp then waits on the probe for good)
wait_for 10 grep -q "waiting for OCSP client" "$IT_TMP/ocsp.log" &&
	wait_for 10 grep -q "waiting for OCSP client" "$IT_TMP/rocsp.log" ||
	{ echo "FAIL setup: openssl ocsp did not start: $(tail -n 2 "$IT_TMP/ocsp.log")"; exit 1; }

# ---------------------------------------------------------------- helpers
ctl() { "$SMRELAYCTL" -c "$CONF" "$@" 2>>"$CASE_DIR/ctl.log"; }

# setup [KEY=VALUE...]: a sink, smrelayd's config (write_conf's defaults and
# these), only the root trusted, one rule: verify what comes for us.
setup() {
	start_sink || return 1
	it_certs || return 1
	PORT=$(free_port)
	CONF=$CASE_DIR/smrelayd.conf
	mkdir -p "$CASE_DIR/data"
	write_conf "$CONF" "$@"
	ctl trust import "$C/ca.pem" >/dev/null &&
		ctl policy add --recipient '@example.com' --action verify >/dev/null ||
		{ fail_because "setup: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	start_smrelayd "$CONF" "$PORT"
}

# signed NAME [CA]: a message signed by NAME@partner.example (its CA's
# certificate in it: int.pem, or CA) in $CASE_DIR/NAME.eml.
signed() {
	local d=$CASE_DIR
	set -- "$1" "${2:-int.pem}"
	printf 'Content-Type: text/plain\n\nsigned by %s\n' "$1" >"$d/$1.txt"
	openssl cms -sign -in "$d/$1.txt" -signer "$C/$1.pem" -inkey "$C/leaf.key" \
		-certfile "$C/$2" -from "$1@partner.example" -to alice@example.com \
		-subject "from $1" >"$d/$1.eml" 2>"$d/sign.err" ||
		{ fail_because "openssl cms -sign: $(tail -n 1 "$d/sign.err")"; return 1; }
}

# ar_of NAME: the Authentication-Results of NAME's message at the sink,
# into AR.
ar_of() {
	local f
	for f in $(sink_files); do
		grep -q "^Subject: from $1" "$f" || continue
		AR=$(grep -i '^Authentication-Results:' "$f" | head -n 1 | tr -d '\r')
		return 0
	done
	fail_because "no message from $1 at the sink ($(sink_count) there)"
	return 1
}

# send_signed NAME [CA]: NAME's signed message through smrelayd; its
# Authentication-Results at the sink into AR.
send_signed() {
	signed "$@" &&
		swaks_send --from "$1@partner.example" --to alice@example.com \
			--data "@$CASE_DIR/$1.eml" && ar_of "$1"
}

# expect_ar ERE: the last Authentication-Results matches.
expect_ar() {
	[[ $AR =~ $1 ]] || { fail_because "Authentication-Results: '$AR', expected /$1/"; return 1; }
}

# ---------------------------------------------------------------- cases
# The first message of a new signer is decided by the CRLs fetched for it
# (the issuing CA's, signed by a CA nobody imported, and the root's).
case_crl_first_message() {
	setup || return 1
	send_signed revoked && expect_ar "smime=fail \\(certificate revoked" || return 1
	send_signed good && expect_ar "smime=pass \\(revocation: CRL from $H/int.crl\\)" || return 1
	assert_file_matches "$CASE_DIR/smrelayd.log" "held up to 5 s while the revocation" \
		"log of the hold" &&
		assert_file_matches "$CASE_DIR/smrelayd.log" "revocation fetch done after [0-9]+ ms" \
			"log of the end of the hold"
}

# OCSP only: the responder's answer decides the first message.
case_ocsp_first_message() {
	setup || return 1
	send_signed ocsp ocspca.pem &&
		expect_ar "smime=pass \\(revocation: OCSP from http://127.0.0.1:$OPORT/\\)"
}

# revocation = hard: the OCSP answer about a leaf of the root decides the
# whole path (the root, a trust anchor, has no CRL and needs none: RFC
# 5280 6.1 does not check an anchor).
case_hard_ocsp() {
	setup revocation=hard || return 1
	send_signed direct ca.pem &&
		expect_ar "smime=pass \\(revocation: OCSP from http://127.0.0.1:$ROPORT/\\)"
}

# revocation_wait = 0: nothing is held; the first message says unknown.
case_no_wait() {
	setup revocation_wait=0 || return 1
	send_signed good && expect_ar "smime=pass \\(revocation unknown: no usable CRL for good" &&
		assert_file_lacks "$CASE_DIR/smrelayd.log" "held up to" "log of a hold"
}

# A distribution point that sends 1 byte/s: held revocation_wait (2 s),
# then decided per revocation (soft: pass, saying unknown), while another
# client is served.
case_slow_bounded() {
	setup revocation_wait=2s && signed slow || return 1
	swaks_send --from slow@partner.example --to alice@example.com \
		--data "@$CASE_DIR/slow.eml" &
	local spid=$! banner
	wait_for 10 grep -q "held up to 2 s" "$CASE_DIR/smrelayd.log" ||
		{ fail_because "no hold logged"; wait $spid; return 1; }
	banner=$(timeout 5 "$PYTHON" -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),3); s.settimeout(3); print(s.recv(200).decode(errors="replace").strip())' "$PORT" 2>&1)
	wait $spid || { fail_because "swaks failed: $(tail -n 2 "$CASE_DIR"/swaks.*.log | tr '\n' ' ')"; return 1; }
	[[ $banner == 220* ]] || { fail_because "no greeting for another client during the hold: '$banner'"; return 1; }
	ar_of slow && expect_ar "smime=pass \\(revocation unknown: no usable CRL for slow" &&
		assert_file_matches "$CASE_DIR/smrelayd.log" "revocation fetch unfinished after" \
			"log of the hold running out"
}

# revocation = hard and a distribution point that is down: temperror,
# with the failed fetch in the log.
case_hard_down() {
	setup revocation=hard || return 1
	send_signed down && expect_ar "smime=temperror \\(unable to get certificate CRL; revocation unknown: no usable CRL for down" &&
		assert_file_matches "$CASE_DIR/smrelayd.log" "crl fetch http://127.0.0.1:$DPORT/int.crl: " \
			"log of the failed fetch"
}

# The issuing CA that comes with every message of down@ (whose CRL cannot
# be fetched: each message has a link no CRL decides) is offered to the
# store once (it chains to the root: stored), not again for each message:
# each offer reads and checks the whole trust store on the store thread.
case_ca_offered_once() {
	local i n
	setup || return 1
	for i in 1 2 3 4; do
		send_signed down && expect_ar "smime=pass \\(revocation unknown" || return 1
	done
	n=$(grep -c "CAs of the signer's chain offered to the store" "$CASE_DIR/smrelayd.log")
	assert_eq 1 "$n" "offers of the issuing CA to the store for 4 messages" || return 1
	wait_for 10 eval 'ctl cert list | grep -q "Fetch Issuing CA"' ||
		fail_because "the issuing CA is not in the store: $(ctl cert list | tr '\n' '|')"
}

run_case crl_first_message case_crl_first_message
run_case ocsp_first_message case_ocsp_first_message
run_case hard_ocsp case_hard_ocsp
run_case no_wait case_no_wait
run_case slow_bounded case_slow_bounded
run_case hard_down case_hard_down
run_case ca_offered_once case_ca_offered_once
it_finish
