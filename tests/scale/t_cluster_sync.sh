#!/bin/bash
# tests/scale/t_cluster_sync.sh: two nodes on one PostgreSQL database agree
# without a reload (issue 18, "Proof"):
#   rule_propagates     a policy rule added through node A (`smrelayctl -c
#                       A.conf policy add`) applies on node B within
#                       SYNC_WITHIN (1.0) seconds, measured: messages go to
#                       B directly, one after the other, from the moment the
#                       add returned, until one comes out signed (openssl cms
#                       -verify checks it); the same for the rule's removal
#                       through B, seen on A
#   harvest_propagates  bob's certificate, harvested by node A from a
#                       message bob signed (A's verify rule), is used by node
#                       B to encrypt to bob within SYNC_WITHIN of A's 250
#                       (B refuses mail to bob before: `--if-no-cert
#                       reject`); openssl cms -decrypt with bob's key opens
#                       what the sink got; `cert list` on B shows it
# The topology of topo.sh with TOPO_DB=pg; skipped (77) with the reason when
# the PostgreSQL backend is not there (no tests/lib/pgcluster.sh, or
# `smrelayd -n` refuses `database = postgresql://`).
. "$(dirname "$0")/topo.sh"

SYNC_WITHIN=${SYNC_WITHIN:-1.0}
BODY="The cluster test says hello."

if ! topo_db_choose pg; then
	echo "SKIP all: needs the PostgreSQL store: $TOPO_WHY"
	exit 77
fi
topo_setup_or_die log_level=info

# verifies FILE: openssl cms accepts FILE's signature under the test root.
verifies() {
	openssl cms -verify -CAfile "$P/trust.pem" -purpose smimesign -in "$1" \
		-out "$T/verified.txt" 2>"$T/verify.err" ||
		{ fail_because "openssl cms -verify $(basename "$1"): $(tail -n 1 "$T/verify.err")"; return 1; }
	grep -q -F "$BODY" "$T/verified.txt" ||
		fail_because "the signed content of $(basename "$1") lacks the body"
}

case_rule() {
	local id
	# No rule yet: B relays alice's mail as it is.
	topo_poll B text/plain 0 alice@example.com bob@partner.example ||
		{ IT_REASON="before any rule: $IT_REASON"; return 1; }
	id=$(topo_ctl A policy add --sender alice@example.com --action sign) && [ -n "$id" ] ||
		{ fail_because "policy add on A: $(tail -n 1 "$T/ctl.log")"; return 1; }
	topo_poll B multipart/signed "$SYNC_WITHIN" alice@example.com bob@partner.example ||
		{ IT_REASON="rule $id added through A, not applied on B within $SYNC_WITHIN s: $IT_REASON"; return 1; }
	echo "# rule added through A applied on B $POLL_SECS s after the add ($POLL_N message(s))"
	verifies "$POLL_FILE" || return 1
	# Removed through B: A relays unchanged again.
	topo_ctl B policy remove "$id" >/dev/null ||
		{ fail_because "policy remove $id on B: $(tail -n 1 "$T/ctl.log")"; return 1; }
	topo_poll A text/plain "$SYNC_WITHIN" alice@example.com bob@partner.example ||
		{ IT_REASON="rule $id removed through B, still applied on A after $SYNC_WITHIN s: $IT_REASON"; return 1; }
	echo "# rule removed through B gone on A $POLL_SECS s after the remove ($POLL_N message(s))"
}

case_harvest() {
	local fp t0 f el i
	# (SYNC_WITHIN counts from A's 250: what the poll may take is less the
	# time spent finding A's message at the sink)
	fp=$(openssl x509 -in "$P/bob.pem" -noout -fingerprint -sha256 | cut -d= -f2 |
		tr -d : | tr 'A-F' 'a-f')
	topo_ctl B cert list >"$T/certs0.txt" && ! grep -q -i "$fp" "$T/certs0.txt" ||
		{ fail_because "bob's certificate is in the store before his mail"; return 1; }
	topo_ctl A policy add --recipient alice@example.com --action verify >/dev/null &&
		topo_ctl A policy add --recipient bob@partner.example --action encrypt \
			--if-no-cert reject >/dev/null ||
		{ fail_because "policy add on A: $(tail -n 1 "$T/ctl.log")"; return 1; }
	# Both rules on B: mail to bob is refused there (no certificate).
	topo_poll B refused 3 alice@example.com bob@partner.example ||
		{ IT_REASON="B does not refuse mail to bob without his certificate: $IT_REASON"; return 1; }

	# Bob's signed message through A until A has verified it (A's own
	# verify rule may take a moment to load).
	printf 'Content-Type: text/plain; charset=us-ascii\n\nHello Alice,\n\n%s\n' "$BODY" >"$T/ent.txt"
	openssl cms -sign -in "$T/ent.txt" -signer "$P/bob.pem" -inkey "$P/bob.key" \
		-certfile "$P/chain.pem" -from 'Bob <bob@partner.example>' -to alice@example.com \
		-subject 'signed by bob' >"$T/bob.body" 2>"$T/sign.err" ||
		{ fail_because "openssl cms -sign: $(tail -n 1 "$T/sign.err")"; return 1; }
	for ((i = 1; ; i++)); do
		{ printf 'Message-ID: <bob-%d.%d@partner.example>\n' "$i" $$; cat "$T/bob.body"; } >"$T/bob.eml"
		topo_send A --sender bob@partner.example --rcpt alice@example.com --file "$T/bob.eml" ||
			{ fail_because "bob's signed message through A: $SENT_REPLY"; return 1; }
		t0=$(now_s)
		f=""
		wait_for 10 eval 'f=$(topo_find_id "$T/maildir" -- "bob-$i.$$@partner.example") && [ -n "$f" ]' ||
			{ fail_because "bob's signed message $i not at the sink"; return 1; }
		grep -q -i -E '^Authentication-Results: *nodeA\.test; *smime=pass .*bob@partner\.example' "$f" && break
		[ $i -lt 30 ] || { fail_because "node A did not verify bob's signature: $(grep -i '^Authentication-Results' "$f")"; return 1; }
		sleep 0.1
	done
	# From A's 250 on, B must encrypt to bob within SYNC_WITHIN.
	el=$(secs_since "$t0")
	topo_poll B application/pkcs7-mime "$(awk -v s="$SYNC_WITHIN" -v e="$el" 'BEGIN { printf "%.3f", s - e }')" alice@example.com bob@partner.example ||
		{ IT_REASON="bob's certificate harvested on A not used by B within $SYNC_WITHIN s: $IT_REASON"; return 1; }
	echo "# B encrypted to bob $(awk -v a="$el" -v b="$POLL_SECS" 'BEGIN { printf "%.3f", a + b }') s after A took his signed message ($POLL_N message(s) to B)"
	openssl cms -decrypt -recip "$P/bob.pem" -inkey "$P/bob.key" -in "$POLL_FILE" \
		-out "$T/decrypted.txt" 2>"$T/decrypt.err" ||
		{ fail_because "openssl cms -decrypt with bob's key: $(tail -n 1 "$T/decrypt.err")"; return 1; }
	grep -q -F "$BODY" "$T/decrypted.txt" ||
		{ fail_because "the decrypted message lacks the body"; return 1; }
	topo_ctl B cert list >"$T/certs1.txt" && grep -q -i "$fp" "$T/certs1.txt" ||
		{ fail_because "bob's certificate not in 'cert list' on B: $(tr '\n' '|' <"$T/certs1.txt")"; return 1; }
}

case_stop() {
	topo_node_stop A && topo_node_stop B
}

run_case rule_propagates case_rule
run_case harvest_propagates case_harvest
run_case nodes_stop_cleanly case_stop
it_finish
