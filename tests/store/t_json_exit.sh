#!/bin/sh
# t_json_exit.sh: smrelayctl --json (one libjansson emitter) and the exit
# statuses of smrelayctl(8): every listing parses as a JSON array, empty and
# not; policy test, cert check, route test and apply print one object with
# names, not bit masks; 0 success, 1 a negative answer, 2 usage, 3 failure,
# checked for each class across commands.  Needs openssl and python3.
set -u

CLI_NAME=t_json_exit
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=cli_lib.sh
. "$srcdir/tests/store/cli_lib.sh"
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || { echo "SKIP $CLI_NAME: no python3"; exit 77; }

P=$T/pki
sh "$srcdir/tests/smime/pki.sh" "$P" >/dev/null 2>"$T/pki.err" ||
	{ echo "FAIL pki: pki.sh: $(tail -1 "$T/pki.err")"; exit 1; }
mkdir -p "$T/data"
printf 'relay = 127.0.0.1:2525\ndata_dir = %s/data\nhostname = gw.example\n' \
    "$T" >"$T/smrelay.conf"
printf 'From: Alice <alice@example.com>\r\nTo: bob@partner.example\r\nSubject: t\r\n\r\nhello\r\n' \
    >"$T/msg.txt"

# json NAME PYTHON-ASSERTION ARGS...: `smrelayctl --json ARGS` exits 0 and
# its stdout is one JSON document j for which the assertion holds.
json() {
	name=$1; check=$2; shift 2
	ctl --json "$@"
	sanitizer "$name" || return 1
	if [ "$RC" -ne 0 ]; then
		fail "$name" "exit $RC: $(head -3 "$T/err" | tr '\n' ' ')"
		return 1
	fi
	if "$PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
assert '"$check"', j' "$T/out" 2>"$T/py.err"; then
		pass "$name"
	else
		fail "$name" "$(tail -1 "$T/py.err" | head -c 300) in: $(head -c 300 "$T/out")"
	fi
}

# status NAME WANT ARGS...: smrelayctl ARGS exits WANT (with stdin from
# msg.txt); a non-zero status says why (on stderr; a negative answer may
# be the command's own output).
status() {
	name=$1; want=$2; shift 2
	"$CTL" "$@" <"$T/msg.txt" >"$T/out" 2>"$T/err"
	RC=$?
	sanitizer "$name" || return 1
	if [ "$RC" -ne "$want" ]; then
		fail "$name" "exit $RC, want $want: $(head -2 "$T/err" | tr '\n' ' ')"
	elif [ "$want" -ne 0 ] && ! [ -s "$T/err" ] && ! { [ "$want" -eq 1 ] && [ -s "$T/out" ]; }; then
		fail "$name" "exit $RC without a reason on stderr"
	else
		pass "$name"
	fi
}

# ---- every listing, empty: []
for l in "key list" "cert list" "trust list" "crl list" "policy list" "queue list"; do
	# shellcheck disable=SC2086
	json "empty_${l% *}_list" 'j == []' $l
done

# ---- and not empty
expect_ok import_trust trust import "$P/trust.pem"
expect_ok import_key key import "$P/alice.p12" 2>/dev/null ||
	expect_ok import_key_pem key import "$P/alice.pem"
expect_ok import_cert cert import "$P/bob.pem"
# a CRL whose issuer is not in the store yet: refused, a negative answer
status exit1_crl_refused 1 -c "$T/smrelay.conf" crl import "$P/crl.pem"
expect_ok import_chain cert import "$P/chain.pem"
expect_ok import_crl crl import "$P/crl.pem"
expect_ok add_rule policy add --sender @example.com --recipient @partner.example \
    --action sign,encrypt --if-no-cert reject --priority 5
expect_ok add_reject policy add --recipient bad@partner.example --action reject --priority 9
json key_list 'len(j) == 1 and j[0]["emails"] == ["alice@example.com"] and j[0]["not_after"].endswith("Z")' key list
json cert_list 'len([c for c in j if c["emails"] == ["bob@partner.example"] and isinstance(c["id"], int)]) == 1' cert list
json cert_list_email 'j == []' cert list --email nobody@example.net
json trust_list 'len(j) >= 1 and all("fingerprint" in t for t in j)' trust list
json crl_list 'len(j) >= 1 and all(c["next_update"] for c in j)' crl list
json policy_list 'sorted(r["id"] for r in j) == [1, 2] and [r for r in j if r["id"] == 1][0]["actions"] == ["sign", "encrypt"] and [r for r in j if r["id"] == 2][0]["if_no_cert"] is None' policy list
BOB=$("$CTL" -c "$T/smrelay.conf" cert list --email bob@partner.example | cut -f1 | head -n 1)
json cert_show 'j["id"] == '"${BOB:-0}"' and j["can_encrypt"] == 1' cert show "${BOB:-0}"

# ---- the commands that answer with one object
json policy_test 'j["sender"] == "alice@example.com" and j["rule"]["id"] == 1 and j["rule"]["actions"] == ["sign", "encrypt"] and j["refused"] is False and j["outranks"] == [] and any(s["step"] == "encrypt" for s in j["steps"])' \
    policy test --sender alice@example.com --recipient bob@partner.example
json policy_test_none 'j["rule"] is None and j["steps"][0]["step"] == "no rule matches"' \
    policy test --sender x@example.org --recipient y@example.org
json cert_check 'j["usable"] is True and j["chain"][0]["depth"] == 0 and j["chain"][-1]["trust_anchor"] is True and j["chain"][0]["error"] is None' \
    cert check "${BOB:-0}"
json route_test 'j["address"] == "bob@partner.example" and j["target"] == {"mx": False, "host": "127.0.0.1", "port": 2525} and j["deliverable"] is True and j["hosts"][0]["addresses"] == ["127.0.0.1"]' \
    route test bob@partner.example
ctl_apply_json() { "$CTL" -c "$T/smrelay.conf" --json apply "$@" <"$T/msg.txt"; }
ctl_apply_json --sender alice@example.com --recipient bob@partner.example carol@example.org \
    >"$T/apply.json" 2>"$T/err"
RC=$?
if [ $RC -eq 0 ] && "$PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
enc = [c for c in j["copies"] if c["recipients"] == ["bob@partner.example"]][0]
plain = [c for c in j["copies"] if c["recipients"] == ["carol@example.org"]][0]
assert enc["actions"] == ["sign", "encrypt"] and enc["rule"] == 1, enc
assert "application/pkcs7-mime" in enc["message"], enc["message"][:200]
assert plain["actions"] == [] and plain["rule"] is None and "hello" in plain["message"]
assert j["refused"] == [] and j["held"] == [] and j["failed"] == []' "$T/apply.json" 2>"$T/py.err"; then
	pass apply_json
else
	fail apply_json "exit $RC: $(tail -1 "$T/py.err") $(head -c 300 "$T/apply.json")"
fi

# ---- 0: success
C="-c $T/smrelay.conf"
# shellcheck disable=SC2086
status exit0_cert_check 0 $C cert check "${BOB:-0}"
# shellcheck disable=SC2086
status exit0_route_test 0 $C route test bob@partner.example
# ---- 1: a negative answer
# shellcheck disable=SC2086
{
status exit1_policy_refuses 1 $C policy test --sender a@example.com --recipient bad@partner.example
status exit1_apply_refused 1 $C apply --sender a@example.com --recipient bad@partner.example
status exit1_no_such_cert 1 $C cert remove 999
status exit1_cert_check_none 1 $C cert check 999
status exit1_no_such_rule 1 $C policy remove 999
status exit1_no_such_queue_id 1 $C queue show 0123456789abcdef
status exit1_verify_unsigned 1 $C smime verify
status exit1_encrypt_no_cert 1 $C smime encrypt --to nobody@example.net
}
# ---- 2: usage
# shellcheck disable=SC2086
{
status exit2_unknown_command 2 $C frobnicate
status exit2_unknown_verb 2 $C policy frob
status exit2_bad_id 2 $C cert show abc
status exit2_missing_arg 2 $C policy test --sender a@example.com
status exit2_bad_queue_id 2 $C queue show nonsense
status exit2_bad_address 2 $C route test bob
status exit2_apply_no_rcpt 2 $C apply --sender a@example.com
}
# ---- 3: failure (no configuration; a store that cannot be opened)
for cmd in "key list" "policy list" "queue list" "cert check 1" "route test a@b.example" \
    "apply --sender a@b.example --recipient c@d.example" "smime verify" "crl fetch"; do
	# shellcheck disable=SC2086
	status "exit3_noconf_$(echo "$cmd" | cut -d' ' -f1-2 | tr ' ' _)" 3 -c "$T/none.conf" $cmd
done
: >"$T/notadir"
printf 'relay = 127.0.0.1:2525\ndata_dir = %s/notadir\n' "$T" >"$T/bad.conf"
for cmd in "cert list" "policy test --sender a@b.example --recipient c@d.example" "queue list"; do
	# shellcheck disable=SC2086
	status "exit3_store_$(echo "$cmd" | cut -d' ' -f1-2 | tr ' ' _)" 3 -c "$T/bad.conf" $cmd
done

cli_done
