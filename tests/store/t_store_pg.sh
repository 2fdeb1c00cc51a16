#!/bin/bash
# t_store_pg.sh: the store on PostgreSQL (a throwaway cluster from
# tests/lib/pgcluster.sh): test_store against a new database; a schema
# newer than the program refused by smrelayctl; rows another version or an
# attacker wrote (a truncated certificate, bob's certificate under carol's
# address, rules with unknown actions, a NULL or a 17 MB sender, a garbage
# trust anchor) skipped and named by table and id, the rest used; smrelayctl store migrate
# from a SQLite store made with smrelayctl (same listings through the
# PostgreSQL database afterwards, ids kept; a second migrate into it
# refused; a bad target refused).  `PASS name` / `FAIL name: reason` per
# case; exit 1 if any failed, 77 without PostgreSQL's server binaries.
set -u

CLI_NAME=t_store_pg
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=cli_lib.sh
. "$srcdir/tests/store/cli_lib.sh"
# shellcheck source=../lib/pgcluster.sh
. "$srcdir/tests/lib/pgcluster.sh"

if ! pg_bindir >/dev/null; then
	echo "SKIP $CLI_NAME: no PostgreSQL server binaries"
	exit 77
fi
# the cluster's owner (not root) must reach it: a world-searchable parent
chmod 755 "$T"
trap 'pg_cleanup; rm -rf "$T"' EXIT
if ! pg_start "$T/pg" 2>"$T/pg.err"; then
	echo "FAIL pg_start: $(tail -3 "$T/pg.err")"
	exit 1
fi

# ---- the store's own tests on an empty database
URL1=$(pg_createdb unit) || { echo "FAIL createdb"; exit 1; }
if SMRELAY_TEST_DATABASE=$URL1 "$BUILD/tests/store/test_store" \
    >"$T/unit.out" 2>&1; then
	pass test_store_pg
else
	fail test_store_pg "$(grep -m3 -i 'fail\|error' "$T/unit.out" |
	    tr '\n' ' ')"
fi

# ---- a SQLite store, filled with smrelayctl
P=$T/pki
sh "$srcdir/tests/smime/pki.sh" "$P" >/dev/null 2>"$T/pki.err" ||
	{ echo "FAIL pki: pki.sh: $(tail -1 "$T/pki.err")"; exit 1; }
cat "$P/bob.pem" "$P/bob.key" >"$P/bob-all.pem"
mkdir -p "$T/data"
printf 'relay = 127.0.0.1:2525\ndata_dir = %s/data\nhostname = gw.example\n' \
    "$T" >"$T/sqlite.conf"
cp "$T/sqlite.conf" "$T/smrelay.conf"
expect_ok fill_trust trust import "$P/ca.pem"
expect_ok fill_cert cert import "$P/alice.pem"
expect_ok fill_chain cert import "$P/chain.pem"
expect_ok fill_crl crl import "$P/crl.pem"
expect_ok fill_key key import "$P/bob-all.pem"
expect_ok fill_policy policy add --recipient @partner.example \
    --action sign,encrypt --if-no-cert hold --priority 5
expect_ok fill_policy2 policy add --sender '*' --action pass
# a gap in the ids: migrate keeps them, new rows go on past them
expect_ok fill_policy_rm policy remove 1
for what in trust cert crl key policy; do
	expect_ok "list_sqlite_$what" "$what" list && cp "$T/out" "$T/sqlite.$what"
done

# ---- migrate into a new database
URL2=$(pg_createdb migrated) || { echo "FAIL createdb"; exit 1; }
expect_ok migrate store migrate --to "$URL2" &&
	out_has migrate_certs '^certificates	[1-9]' &&
	out_has migrate_rules '^policy_rules	1$' &&
	out_has migrate_anchor '^trust_anchors	1$'
# the password is never printed
if grep -q "$PGPASSWORD" "$T/out" "$T/err"; then
	fail migrate_password "the password is in the output"
else
	pass migrate_password
fi
printf 'database = %s\n' "$URL2" >>"$T/smrelay.conf"
for what in trust cert crl key policy; do
	if expect_ok "list_pg_$what" "$what" list; then
		if cmp -s "$T/out" "$T/sqlite.$what"; then
			pass "same_$what"
		else
			fail "same_$what" "$(diff "$T/sqlite.$what" "$T/out" |
			    head -5 | tr '\n' '|')"
		fi
	fi
done
# the identity goes on past the copied ids
expect_ok pg_policy_add policy add --recipient @other.example \
    --action encrypt && out_has pg_policy_next_id '^3$\|^3	\|rule 3\|^id 3'
expect_ok pg_policy_list policy list && out_has pg_policy_id3 '^3	'

# ---- migrate again: the target holds rows
cp "$T/sqlite.conf" "$T/smrelay.conf"
expect_err migrate_again 'not empty' store migrate --to "$URL2"
[ "$RC" -eq 1 ] && pass migrate_again_exit ||
	fail migrate_again_exit "exit $RC, expected 1"
expect_err migrate_json_bad 'postgresql://' store migrate --to sqlite
URL3=$(pg_createdb json) || { echo "FAIL createdb"; exit 1; }
expect_ok migrate_json store migrate --to "$URL3" --json &&
	if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["copied"]["trust_anchors"] == 1 and "to" in d else 1)' "$T/out"; then
		pass migrate_json_doc
	else
		fail migrate_json_doc "$(head -c 300 "$T/out")"
	fi

# ---- rows another version or an attacker wrote: each skipped, named by
# table and id on stderr, the rest loaded
URL4=$(pg_createdb rows) || { echo "FAIL createdb"; exit 1; }
printf 'relay = 127.0.0.1:2525\ndata_dir = %s/data\nhostname = gw.example\ndatabase = %s\n' \
    "$T" "$URL4" >"$T/smrelay.conf"
expect_ok rows_trust trust import "$P/trust.pem"
expect_ok rows_chain cert import "$P/chain.pem"
expect_ok rows_bob cert import "$P/bob.pem"
expect_ok rows_rule policy add --sender alice@example.com --action sign
rows_sql() {
	psql -X -q -A -t -v ON_ERROR_STOP=1 "$URL4" 2>>"$T/psql.err"
}
BOBFP=$(openssl x509 -in "$P/bob.pem" -noout -fingerprint -sha256 |
    cut -d= -f2 | tr -d : | tr 'A-F' 'a-f')
# a copy of bob's row with other DER, ranked first for bob (a higher id)
COLS=$(echo "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'certificates' AND column_name NOT IN ('id', 'der', 'fingerprint')" | rows_sql)
BADCERT=$(echo "INSERT INTO certificates (der, fingerprint, $COLS) SELECT substring(der from 1 for length(der) - 10), 'bad-truncated', $COLS FROM certificates WHERE fingerprint = '$BOBFP' RETURNING id;" | rows_sql)
echo "INSERT INTO cert_emails (cert_id, email) VALUES ($BADCERT, 'bob@partner.example');
INSERT INTO cert_emails (cert_id, email) SELECT id, 'carol@partner.example' FROM certificates WHERE fingerprint = '$BOBFP';
ALTER TABLE policy_rules ALTER COLUMN sender DROP NOT NULL;" | rows_sql
BADRULE1=$(echo "INSERT INTO policy_rules (sender, recipient, actions, nocert, priority, added) VALUES ('*', '*', 4294967298, 0, 0, 0) RETURNING id;" | rows_sql)
BADRULE2=$(echo "INSERT INTO policy_rules (sender, recipient, actions, nocert, priority, added) VALUES (NULL, '*', 1, 0, 0, 0) RETURNING id;" | rows_sql)
BADRULE3=$(echo "INSERT INTO policy_rules (sender, recipient, actions, nocert, priority, added) VALUES (repeat('x', 17000000), '*', 1, 0, 0, 0) RETURNING id;" | rows_sql)
BADANCHOR=$(echo "INSERT INTO trust_anchors (der, fingerprint, subject, not_after, added) VALUES (decode('3003020101', 'hex'), 'bad', 'CN=bad', 4102444800, 0) RETURNING id;" | rows_sql)
if [ -n "$BADCERT" ] && [ -n "$BADRULE1" ] && [ -n "$BADRULE2" ] &&
    [ -n "$BADRULE3" ] && [ -n "$BADANCHOR" ]; then
	pass rows_written
else
	fail rows_written "$(tail -3 "$T/psql.err" | tr '\n' ' ')"
fi
# err_has NAME PATTERN: the last stderr matches PATTERN.
err_has() {
	if grep -q -- "$2" "$T/err"; then
		pass "$1"
	else
		fail "$1" "stderr lacks '$2': $(head -c 600 "$T/err" | tr '\n' '|')"
	fi
}
expect_ok rows_policy_list policy list && out_has rows_good_rule 'alice@example.com' &&
	err_has rows_named1 "policy_rules id=$BADRULE1 skipped: actions 4294967298" &&
	err_has rows_named2 "policy_rules id=$BADRULE2 skipped: sender is NULL" &&
	err_has rows_named3 "policy_rules id=$BADRULE3 skipped: sender is NULL or over"
# bob: the truncated row skipped, his good certificate chosen
expect_ok rows_bob_check cert check --email bob@partner.example &&
	err_has rows_bob_named "certificates id=$BADCERT skipped: not used for bob@partner.example"
# carol: bob's certificate under her address is not hers
expect_err rows_carol 'no usable certificate' cert check --email carol@partner.example
err_has rows_carol_named "skipped: not used for carol@partner.example: the certificate does not hold"
expect_ok rows_trust_list trust list
expect_ok rows_anchor_check cert check --email bob@partner.example &&
	err_has rows_anchor_named "trust_anchors id=$BADANCHOR skipped"
cp "$T/sqlite.conf" "$T/smrelay.conf"

# ---- a schema newer than this program: refused, by name
echo "UPDATE meta SET value = 99 WHERE name = 'schema'" |
    psql -q -v ON_ERROR_STOP=1 "$URL2" >/dev/null 2>"$T/psql.err" ||
	fail newer_set "$(cat "$T/psql.err")"
printf 'database = %s\n' "$URL2" >>"$T/smrelay.conf"
expect_err newer_refused 'newer than this program' trust list
if grep -q "$PGPASSWORD" "$T/err"; then
	fail newer_password "the password is in the error"
else
	pass newer_password
fi

cli_done
