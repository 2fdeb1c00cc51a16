#!/bin/bash
# tests/scale/t_cluster_badrows.sh: rows another version (or an attacker)
# wrote into the shared PostgreSQL database (issue 18, "Bad input and
# faults": "holding rows another version wrote").
#
# The topology of topo.sh with TOPO_DB=pg.  Before the nodes start,
# smrelayctl puts in good rules (sign mail from alice; encrypt to bob,
# carol, dave, each "--if-no-cert reject") and bob's certificate; then psql,
# straight into the database as the nodes' role, writes what a buggy or newer
# node, or someone with database access, could:
#   certificates  for bob, ranked above his good one (newer not_before): a
#                 row whose DER is garbage, one with his DER truncated, one
#                 with a DER of 17 MB (over db_pg.c's PG_MAX_VALUE);
#                 for dave only a row of garbage DER; a cert_emails row that
#                 gives carol's address to bob's (good) certificate
#   policy_rules  unknown action bits (2^32 + sign: truncated to "sign" if
#                 read as 32 bits), a malformed pattern, an unknown
#                 if-no-cert value, a sender of 17 MB, a NULL recipient (NOT
#                 NULL dropped first) with "encrypt, reject" for everyone
#   trust_anchors a row of garbage DER
# Cases:
#   bad_rows_skipped  both nodes start and serve: alice's mail to someone
#                 else is signed (the good rule loaded, the NULL row not
#                 read as '*'); to bob encrypted, and bob's key opens it (his
#                 good certificate, past the bad rows); to carol and dave
#                 refused (no encryption to a certificate from a bad row);
#                 each node's log names each skipped row (table and id)
#   newer_schema  meta's schema version set past ours (the change counter
#                 left alone): both
#                 nodes log that they refuse it, keep serving the cached
#                 policy (alice's mail signed), /healthz answers and says
#                 so; `smrelayctl policy list` exits non-zero saying so;
#                 their connections cut (pg_terminate_backend): they
#                 reconnect, still refuse the store and serve on; a
#                 signer A harvests meanwhile is kept, not written; set
#                 back, it is written, and a rule change through A
#                 applies on B again
#   nodes_stop_cleanly  SIGTERM: exit 0 (a sanitizer's report fails it)
# Skipped (77) with the reason when the PostgreSQL backend is not there.
. "$(dirname "$0")/topo.sh"

BIG=$((17 * 1024 * 1024))

if ! topo_db_choose pg; then
	echo "SKIP all: needs the PostgreSQL store: $TOPO_WHY"
	exit 77
fi

# sql: psql as the nodes' role on their database, SQL on stdin; -A -t.
# shellcheck disable=SC2120
sql() {
	"$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@" 2>>"$T/psql.err"
}

# cert_like FP DER_EXPR EMAIL DBEFORE: a copy of the certificates row of
# fingerprint FP with der DER_EXPR, a new fingerprint, not_before moved by
# DBEFORE seconds, and the address EMAIL; prints the new id.
cert_like() {
	local fp=$1 der=$2 email=$3 dnb=$4 cols sel id
	cols=$(echo "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'certificates' AND column_name <> 'id'" | sql) || return 1
	sel=$(echo "$cols" | tr ',' '\n' | awk -v der="$der" -v dnb="$dnb" -v fp="bad$RANDOM$RANDOM" '
		$0 == "der" { print der; next }
		$0 == "fingerprint" { print "'\''" fp "'\''"; next }
		$0 == "not_before" { print "not_before + " dnb; next }
		{ print }' | paste -s -d,)
	id=$(printf "INSERT INTO certificates (%s) SELECT %s FROM certificates WHERE fingerprint = '%s' RETURNING id;\n" \
		"$cols" "$sel" "$fp" | sql) && [ -n "$id" ] || return 1
	echo "INSERT INTO cert_emails (cert_id, email) VALUES ($id, '$email');" | sql || return 1
	echo "$id"
}

# rule_row SENDER RECIPIENT ACTIONS NOCERT: a policy_rules row as written
# (SQL expressions); prints its id.
rule_row() {
	printf 'INSERT INTO policy_rules (sender, recipient, actions, nocert, priority, added) VALUES (%s, %s, %s, %s, 0, 0) RETURNING id;\n' \
		"$1" "$2" "$3" "$4" | sql
}

topo_store_hook() {
	local r fp
	for r in "--sender alice@example.com --action sign" \
		"--recipient bob@partner.example --action sign,encrypt --if-no-cert reject" \
		"--recipient carol@partner.example --action sign,encrypt --if-no-cert reject" \
		"--recipient dave@partner.example --action sign,encrypt --if-no-cert reject" \
		"--recipient alice@example.com --action verify"; do
		# shellcheck disable=SC2086
		topo_ctl A policy add $r >/dev/null ||
			{ fail_because "policy add $r: $(tail -n 1 "$T/ctl.log")"; return 1; }
	done
	topo_ctl A cert import "$P/chain.pem" >/dev/null &&
		topo_ctl A cert import "$P/bob.pem" >/dev/null ||
		{ fail_because "cert import: $(tail -n 1 "$T/ctl.log")"; return 1; }
	fp=$(openssl x509 -in "$P/bob.pem" -noout -fingerprint -sha256 | cut -d= -f2 |
		tr -d : | tr 'A-F' 'a-f')
	BAD_CERTS=()
	# bob: garbage, truncated, oversized, all ranked above his good one
	# (the same not_before, a higher id)
	BAD_CERTS+=("$(cert_like "$fp" "decode('3082deadbeef00', 'hex')" bob@partner.example 0)") &&
		BAD_CERTS+=("$(cert_like "$fp" "substring(der from 1 for length(der) - 40)" bob@partner.example 0)") &&
		BAD_CERTS+=("$(cert_like "$fp" "decode(repeat('30', $BIG), 'hex')" bob@partner.example 0)") &&
		DAVE_CERT=$(cert_like "$fp" "decode('300d06092a864886f70d01010b0500', 'hex')" dave@partner.example 0) ||
		{ fail_because "bad certificate rows: $(tail -n 2 "$T/psql.err" | tr '\n' ' ')"; return 1; }
	# carol's address on bob's certificate
	echo "INSERT INTO cert_emails (cert_id, email) SELECT id, 'carol@partner.example' FROM certificates WHERE fingerprint = '$fp';" | sql ||
		{ fail_because "cert_emails row: $(tail -n 2 "$T/psql.err" | tr '\n' ' ')"; return 1; }
	BAD_RULES=()
	echo "ALTER TABLE policy_rules ALTER COLUMN recipient DROP NOT NULL;" | sql &&
		BAD_RULES+=("$(rule_row "'*'" "'x@partner.example'" $(((1 << 32) + 1)) 0)") &&
		BAD_RULES+=("$(rule_row "'a@@b <x>'" "'*'" 1 0)") &&
		BAD_RULES+=("$(rule_row "'*'" "'y@partner.example'" 1 99)") &&
		BAD_RULES+=("$(rule_row "repeat('s', $BIG)" "'*'" 1 0)") &&
		BAD_RULES+=("$(rule_row "'*'" NULL 3 0)") ||
		{ fail_because "bad policy rows: $(tail -n 2 "$T/psql.err" | tr '\n' ' ')"; return 1; }
	BAD_ANCHOR=$(echo "INSERT INTO trust_anchors (der, fingerprint, subject, not_after, added) VALUES (decode('3003020101', 'hex'), 'badanchor', 'CN=bad', 4102444800, 0) RETURNING id;" | sql) &&
		[ -n "$BAD_ANCHOR" ] || { fail_because "bad trust anchor row: $(tail -n 2 "$T/psql.err" | tr '\n' ' ')"; return 1; }
	echo "# bad rows: certificates ${BAD_CERTS[*]} (bob) $DAVE_CERT (dave), policy_rules ${BAD_RULES[*]}, trust_anchors $BAD_ANCHOR"
}
topo_setup_or_die log_level=info

# healthy_200 NODE: /healthz answers 200.
healthy_200() {
	local h
	h=$(topo_health "$1") || return 1
	echo "$1 $(echo "$h" | tr '\n' ' ')" >>"$T/health.log"
	[ "${h%%$'\n'*}" = 200 ]
}

# logged NODE TABLE ID [ERE]: NODE's log names row ID of TABLE (skipped,
# then ERE).
logged() {
	grep -q -E "$2 id=$3 skipped: ${4:-}" "$T/$1.log"
}

case_bad_rows() {
	local n id
	for n in A B; do
		topo_poll $n multipart/signed 10 alice@example.com other@else.example ||
			{ IT_REASON="[$n] alice to someone else: $IT_REASON"; return 1; }
		topo_poll $n application/pkcs7-mime 10 alice@example.com bob@partner.example ||
			{ IT_REASON="[$n] alice to bob: $IT_REASON"; return 1; }
		openssl cms -decrypt -recip "$P/bob.pem" -inkey "$P/bob.key" -in "$POLL_FILE" \
			-out /dev/null 2>"$T/decrypt.err" ||
			{ fail_because "[$n] bob's key does not open what was sent to him: $(tail -n 1 "$T/decrypt.err")"; return 1; }
		topo_poll $n refused 0 alice@example.com carol@partner.example ||
			{ IT_REASON="[$n] alice to carol (bob's certificate under her address): $IT_REASON"; return 1; }
		topo_poll $n refused 0 alice@example.com dave@partner.example ||
			{ IT_REASON="[$n] alice to dave (a row of garbage DER): $IT_REASON"; return 1; }
		kill -0 "${NODE_PID[$n]}" 2>/dev/null || { fail_because "node $n died"; return 1; }
		wait_for 10 healthy_200 $n || { fail_because "node $n: /healthz not 200: $(tail -n 1 "$T/health.log")"; return 1; }
		for id in "${BAD_RULES[@]}"; do
			logged $n policy_rules "$id" ||
				{ fail_because "node $n's log does not name policy_rules id=$id"; return 1; }
		done
		for id in "${BAD_CERTS[@]}"; do
			logged $n certificates "$id" 'not used for bob@partner\.example' ||
				{ fail_because "node $n's log does not name certificates id=$id (not used for bob)"; return 1; }
		done
		logged $n certificates "$DAVE_CERT" 'not used for dave@partner\.example' ||
			{ fail_because "node $n's log does not name certificates id=$DAVE_CERT (not used for dave)"; return 1; }
		logged $n trust_anchors "$BAD_ANCHOR" ||
			{ fail_because "node $n's log does not name trust_anchors id=$BAD_ANCHOR"; return 1; }
		logged $n certificates "[0-9]+" 'not used for carol@partner\.example: the certificate does not' ||
			{ fail_because "node $n's log does not say bob's certificate is not carol's"; return 1; }
	done
	echo "# A: $(grep -m1 -E 'policy_rules id=' "$T/A.log")"
	echo "# A: $(grep -m1 -E 'not used for carol@partner' "$T/A.log")"
}

# pending_writes NODE: NODE keeps harvested certificates to write.
pending_writes() {
	local v
	"$PYTHON" "$HTTP_PY" get "http://127.0.0.1:${NODE_MPORT[$1]}/metrics" >"$T/metrics.txt" 2>/dev/null || return 1
	v=$("$PYTHON" "$HTTP_PY" sample "$T/metrics.txt" smrelay_store_pending_writes 2>/dev/null) || return 1
	awk -v v="$v" 'BEGIN { exit !(v + 0 >= 1) }'
}

case_newer() {
	local n id out ecfp f
	echo "UPDATE meta SET value = value + 1 WHERE name = 'schema';" | sql ||
		{ fail_because "psql: $(tail -n 2 "$T/psql.err" | tr '\n' ' ')"; return 1; }
	for n in A B; do
		wait_for 15 grep -q -i 'newer than this program' "$T/$n.log" ||
			{ fail_because "node $n does not log that the schema is newer"; return 1; }
		topo_poll $n multipart/signed 0 alice@example.com other@else.example ||
			{ IT_REASON="[$n] with the newer schema, alice's mail: $IT_REASON"; return 1; }
		kill -0 "${NODE_PID[$n]}" 2>/dev/null || { fail_because "node $n died"; return 1; }
		out=$(topo_health $n) && echo "$out" | grep -q -i 'newer' ||
			{ fail_because "node $n: /healthz does not say the schema is newer: $(echo "$out" | tr '\n' ' ')"; return 1; }
	done
	echo "# A: $(grep -m1 -i 'newer than this program' "$T/A.log")"
	echo "# /healthz: $(topo_health A | tr '\n' ' ')"
	# The nodes' connections cut: they reconnect (db_pg.c, or a new
	# store_open_pg, which refuses a newer schema), still do not load
	# it, and go on serving what they have.
	echo "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = current_user AND pid <> pg_backend_pid();" | sql >/dev/null ||
		{ fail_because "psql: $(tail -n 2 "$T/psql.err" | tr '\n' ' ')"; return 1; }
	for n in A B; do
		wait_for 15 eval 'topo_health '$n' | grep -q -i "degraded.*newer than this program"' ||
			{ fail_because "node $n: /healthz does not say why it serves what it has (newer schema): $(topo_health $n | tr '\n' ' ')"; return 1; }
		topo_poll $n multipart/signed 0 alice@example.com other@else.example ||
			{ IT_REASON="[$n] reconnected to a newer schema, alice's mail: $IT_REASON"; return 1; }
		kill -0 "${NODE_PID[$n]}" 2>/dev/null || { fail_because "node $n died"; return 1; }
	done
	echo "# after a reconnect, /healthz: $(topo_health A | tr '\n' ' ')"
	if "$SMRELAYCTL" -c "$T/A.conf" policy list >"$T/newer.out" 2>"$T/newer.err"; then
		fail_because "smrelayctl policy list exits 0 on a newer schema"
		return 1
	fi
	grep -q -i 'newer than this program' "$T/newer.err" ||
		{ fail_because "smrelayctl does not say the schema is newer: $(tr '\n' ' ' <"$T/newer.err")"; return 1; }
	# A signer harvested meanwhile is kept, not written into a schema
	# this program does not know.
	ecfp=$(openssl x509 -in "$P/bob-ec.pem" -noout -fingerprint -sha256 | cut -d= -f2 |
		tr -d : | tr 'A-F' 'a-f')
	printf 'Content-Type: text/plain\n\nsigned by bob (EC)\n' >"$T/ent.txt"
	{ printf 'Message-ID: <bob-ec.%d@partner.example>\n' $$
	  openssl cms -sign -in "$T/ent.txt" -signer "$P/bob-ec.pem" -inkey "$P/bob-ec.key" \
		-certfile "$P/chain.pem" -from bob@partner.example -to alice@example.com \
		-subject 'signed by bob' 2>"$T/sign.err"; } >"$T/bob-ec.eml" ||
		{ fail_because "openssl cms -sign: $(tail -n 1 "$T/sign.err")"; return 1; }
	topo_send A --sender bob@partner.example --rcpt alice@example.com --file "$T/bob-ec.eml" ||
		{ fail_because "bob's signed message through A: $SENT_REPLY"; return 1; }
	wait_for 10 eval 'f=$(topo_find_id "$T/maildir" -- "bob-ec.$$@partner.example") && [ -n "$f" ]' ||
		{ fail_because "bob's signed message not at the sink"; return 1; }
	grep -q -i -E '^Authentication-Results: .*smime=pass' "$f" ||
		{ fail_because "A did not verify bob's signature: $(grep -i '^Authentication-Results' "$f")"; return 1; }
	wait_for 10 pending_writes A ||
		{ fail_because "A does not keep bob's certificate for later (smrelay_store_pending_writes)"; return 1; }
	[ "$(echo "SELECT count(*) FROM certificates WHERE fingerprint = '$ecfp';" | sql)" = 0 ] ||
		{ fail_because "bob's harvested certificate written into the newer schema"; return 1; }
	echo "# A keeps bob's harvested certificate while the schema is newer"
	# back: the nodes load again (without a change: the version is
	# asked at every check), write what they kept, and a change through
	# A applies on B
	echo "UPDATE meta SET value = value - 1 WHERE name = 'schema';" | sql ||
		{ fail_because "psql: $(tail -n 2 "$T/psql.err" | tr '\n' ' ')"; return 1; }
	wait_for 20 eval '[ "$(echo "SELECT count(*) FROM certificates WHERE fingerprint = '\''$ecfp'\'';" | sql)" = 1 ]' ||
		{ fail_because "bob's kept certificate not written once the schema is ours again"; return 1; }
	id=$(topo_ctl A policy add --recipient other@else.example --action pass --priority 9) && [ -n "$id" ] ||
		{ fail_because "policy add on A: $(tail -n 1 "$T/ctl.log")"; return 1; }
	topo_poll B text/plain 40 alice@example.com other@else.example ||
		{ IT_REASON="schema set back, a rule added through A: $IT_REASON"; return 1; }
	for n in A B; do
		wait_for 30 eval "healthy_200 $n && ! topo_health $n | grep -q -i -E 'newer|degraded'" ||
			{ fail_because "node $n: /healthz after the schema was set back: $(topo_health $n | tr '\n' ' ')"; return 1; }
	done
}

case_stop() { topo_node_stop A && topo_node_stop B; }

run_case bad_rows_skipped case_bad_rows
run_case newer_schema case_newer
run_case nodes_stop_cleanly case_stop
it_finish
