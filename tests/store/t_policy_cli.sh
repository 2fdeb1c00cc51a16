#!/bin/sh
# t_policy_cli.sh: smrelayctl policy add|list|remove|test against a PKI from
# tests/smime/pki.sh: outputs, exit codes, error messages, and the dry run's
# account of keys, certificates (usable or why not) and ciphers.  Prints
# `PASS name` or `FAIL name: reason` per case; exits 1 if any failed.
set -u

CLI_NAME=t_policy_cli
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=cli_lib.sh
. "$srcdir/tests/store/cli_lib.sh"

# ---- the PKI: pki.sh, plus two unusable certificates for carol
P=$T/pki
sh "$srcdir/tests/smime/pki.sh" "$P" >/dev/null 2>"$T/pki.err" ||
	{ echo "FAIL pki: pki.sh: $(tail -1 "$T/pki.err")"; exit 1; }
(
	cd "$P" || exit 1
	CADB=int.db; export CADB	# ca.cnf reads it, even for req
	ossl() { openssl "$@" >>"$P/log" 2>&1 || { echo "openssl $*" >&2; exit 1; }; }
	printf '[ v3_signonly ]\nbasicConstraints = CA:false\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = emailProtection\nsubjectAltName = email:copy\n' >>ca.cnf
	for n in future signonly; do
		ossl req -new -newkey rsa:2048 -nodes -keyout "$n.key" \
		    -subj "/CN=carol $n/emailAddress=carol@partner.example" \
		    -config ca.cnf -out "$n.csr"
	done
	ossl ca -batch -config ca.cnf -cert int.pem -keyfile int.key \
	    -extensions v3_user -in future.csr -out future.pem \
	    -startdate 20900101000000Z -enddate 20910101000000Z
	ossl ca -batch -config ca.cnf -cert int.pem -keyfile int.key \
	    -extensions v3_signonly -in signonly.csr -out signonly.pem -days 30
) || { echo "FAIL pki: openssl failed (see above)"; exit 1; }
mkdir -p "$T/data"
printf 'relay = 127.0.0.1:2525\ndata_dir = %s/data\nhostname = gw.example\n' \
    "$T" >"$T/smrelay.conf"
printf 'From: Alice <alice@example.com>\nTo: bob@partner.example\nSubject: t\n\nhello\n' \
    >"$T/msg.txt"

# ---- an empty store
expect_ok list_empty policy list &&
    { [ -s "$T/out" ] && fail list_empty_output "$OUT" || pass list_empty_output; }
expect_ok list_empty_json policy list --json && out_has list_empty_json_array '^\[\]$'
expect_ok test_no_rules policy test --sender a@example.com --recipient b@example.org &&
    out_has test_no_rules_passes '^no rule matches: the message passes unchanged'

# ---- add
expect_ok add_pass policy add --action pass && out_has add_pass_id '^1$'
expect_ok add_encrypt policy add --recipient @partner.example --action encrypt \
    --if-no-cert plain --priority 10 && out_has add_encrypt_id '^2$'
expect_ok add_sign_encrypt policy add --sender alice@example.com \
    --recipient '*@example.com' --action encrypt,sign --if-no-cert hold &&
    out_has add_sign_encrypt_id '^3$'
expect_ok add_reject policy add --recipient bad@example.com --action REJECT \
    --priority -5 && out_has add_reject_id '^4$'
expect_ok add_subdomains policy add --sender '*.lab.example' --action decrypt,verify &&
    out_has add_subdomains_id '^5$'
expect_ok add_nocert_ignored policy add --recipient x@sub.example --action sign \
    --if-no-cert plain && out_has add_nocert_ignored_id '^6$'
grep -q 'if-no-cert applies to encrypt only' "$T/err" &&
    pass add_nocert_ignored_warning || fail add_nocert_ignored_warning "$ERR"

# ---- bad input: nothing added
expect_err add_bad_sender "--sender: bad pattern 'x@': empty domain" \
    policy add --sender 'x@' --action sign
expect_err add_bad_recipient "--recipient: bad pattern 'example.com': no '@'" \
    policy add --recipient example.com --action sign
expect_err add_bad_wildcard "bad pattern 'a\*@example.com'" \
    policy add --recipient 'a*@example.com' --action sign
expect_err add_bad_subdomain "bad pattern '\*.': empty domain" \
    policy add --recipient '*.' --action sign
expect_err add_bad_action "unknown action 'bogus'" \
    policy add --action sign,bogus
expect_err add_pass_combined 'pass cannot be combined with other actions' \
    policy add --action pass,sign
expect_err add_reject_combined 'reject cannot be combined with other actions' \
    policy add --action encrypt,reject
expect_err add_empty_action 'empty item' policy add --action sign,
expect_err add_no_action 'missing --action LIST' policy add --sender '*'
expect_err add_bad_nocert 'bad --if-no-cert "drop"' \
    policy add --action encrypt --if-no-cert drop
expect_err add_bad_priority 'bad --priority "high"' \
    policy add --action encrypt --priority high
expect_err add_twice '--sender given twice' \
    policy add --sender '*' --sender '*' --action sign
expect_err add_extra 'unexpected argument "extra"' policy add --action sign extra

# ---- list
expect_ok list policy list && {
	n=$(wc -l <"$T/out")
	[ "$n" -eq 6 ] && pass list_lines || fail list_lines "$n lines"
	out_has list_pass '^1	0	\*	\*	pass	-$'
	out_has list_encrypt '^2	10	\*	@partner.example	encrypt	plain$'
	out_has list_sign_encrypt '^3	0	alice@example.com	\*@example.com	sign,encrypt	hold$'
	out_has list_reject '^4	-5	\*	bad@example.com	reject	-$'
	out_has list_subdomains '^5	0	\*.lab.example	\*	decrypt,verify	-$'
	out_has list_nocert_ignored '^6	0	\*	x@sub.example	sign	-$'
}
expect_ok list_json policy list --json && {
	out_has list_json_open '^\[$'
	out_has list_json_rule '^{"id":3,"priority":0,"sender":"alice@example.com","recipient":"\*@example.com","actions":\["sign","encrypt"\],"if_no_cert":"hold"},$'
	out_has list_json_null '"id":1,.*"if_no_cert":null}'
}
expect_ok list_json_global --json policy list &&
    out_has list_json_global_rule '"id":2,"priority":10,'

# ---- remove
expect_ok remove policy remove 4 && {
	ctl policy list
	out_lacks remove_gone '^4	'
}
expect_err remove_again 'policy rule 4: no such rule' policy remove 4
expect_err remove_unknown 'policy rule 999: no such rule' policy remove 999
expect_err remove_bad_id 'bad id "abc"' policy remove abc
expect_err remove_missing 'missing ID' policy remove

# ---- test: rule choice
expect_err test_missing 'missing --recipient ADDR' policy test --sender a@b.example
expect_ok test_default policy test --sender '<>' --recipient z@other.example && {
	out_has test_default_sender '^sender: <>$'
	out_has test_default_rule '^rule: 1 priority=0 sender=\* recipient=\* actions=pass if-no-cert=-$'
	out_has test_default_pass '^pass: the message is relayed unchanged$'
}
expect_ok test_priority policy test --sender alice@example.com \
    --recipient BOB@Partner.Example && {
	out_has test_priority_rule '^rule: 2 priority=10 sender=\* recipient=@partner.example actions=encrypt if-no-cert=plain$'
	out_has test_priority_match '^match: recipient BOB@Partner.Example matches @partner.example (domain), sender alice@example.com matches \* (any)$'
	out_has test_priority_outranks '^outranks: 1 '
}
expect_ok test_subdomains policy test --sender a@x.lab.example --recipient q@r.example &&
    out_has test_subdomains_rule '^rule: 5 ' &&
    out_has test_subdomains_verify '^verify: .*gw.example; smime='
expect_ok test_subdomains_not_domain policy test --sender a@lab.example \
    --recipient q@r.example && out_has test_subdomains_not_domain_rule '^rule: 1 '

# ---- test: encrypt without any certificate
expect_ok test_nocert policy test --sender x@y.example --recipient bob@partner.example && {
	out_has test_nocert_none '^encrypt: no usable certificate for bob@partner.example$'
	out_has test_nocert_stored '^encrypt: no certificate stored for bob@partner.example$'
	out_has test_nocert_plain '^if-no-cert: plain: the copy for bob@partner.example is relayed unencrypted$'
	out_lacks test_nocert_cipher '^cipher:'
}

# ---- test: encrypt with a usable certificate
expect_ok import_bob cert import "$P/bob.pem"
bobid=$(cut -f1 "$T/out")
bobfp=$(openssl x509 -in "$P/bob.pem" -noout -fingerprint -sha256 |
    cut -d= -f2 | tr -d : | tr 'A-F' 'a-f')
expect_ok test_cert policy test --sender x@y.example --recipient bob@partner.example && {
	out_has test_cert_line "^encrypt: certificate $bobid subject=\".*CN=bob\" fingerprint=$bobfp not_after=20[0-9-]*T[0-9:]*Z$"
	out_has test_cert_cbc '^cipher: aes256-cbc '
	out_lacks test_cert_no_nocert '^if-no-cert:'
}

# ---- test: only unusable certificates, each with its reason
expect_ok import_future cert import "$P/future.pem"
expect_ok import_signonly cert import "$P/signonly.pem"
expect_ok test_unusable policy test --sender '' --recipient carol@partner.example && {
	out_has test_unusable_none '^encrypt: no usable certificate for carol@partner.example$'
	out_has test_unusable_future '^encrypt: certificate [0-9]* subject=".*,CN=carol future" unusable: not valid before 2090-01-01'
	out_has test_unusable_ku '^encrypt: certificate [0-9]* subject=".*,CN=carol signonly" unusable: no encryption key usage (keyEncipherment missing)$'
	out_has test_unusable_plain '^if-no-cert: plain: '
}
expect_ok import_expired cert import --force "$P/expired.pem"
expect_ok import_noeku cert import "$P/noeku.pem"
expect_ok test_expired policy test --sender alice@example.com --recipient Alice@Example.com && {
	out_has test_expired_rule '^rule: 3 priority=0 sender=alice@example.com recipient=\*@example.com actions=sign,encrypt if-no-cert=hold$'
	out_has test_expired_nokey '^sign: no signing key for alice@example.com (at run time the From header address is tried too)$'
	out_has test_expired_order '^order: sign, then encrypt$'
	out_has test_expired_reason '^encrypt: certificate [0-9]* subject=".*CN=expired" unusable: expired on 2020-01-01T00:00:00Z$'
	out_has test_expired_eku '^encrypt: certificate [0-9]* subject=".*CN=noeku" unusable: wrong extended key usage (no emailProtection)$'
	out_has test_expired_hold '^if-no-cert: hold: the copy for Alice@Example.com is spooled'
}

# ---- test: a key for sign; the usable certificate wins over the others
expect_ok import_key key import "$P/alice.p12" && keyid=$(cut -f1 "$T/out")
alicefp=$(openssl x509 -in "$P/alice.pem" -noout -fingerprint -sha256 |
    cut -d= -f2 | tr -d : | tr 'A-F' 'a-f')
expect_ok test_key policy test --sender alice@example.com --recipient alice@example.com && {
	out_has test_key_sign "^sign: key $keyid for alice@example.com subject=\".*CN=alice\" fingerprint=$alicefp not_after="
	out_has test_key_cert "^encrypt: certificate [0-9]* subject=\".*CN=alice\" fingerprint=$alicefp "
	out_has test_key_not_used '^encrypt: certificate [0-9]* subject=".*CN=expired" not used: expired on'
	out_has test_key_cbc '^cipher: aes256-cbc '
	out_lacks test_key_no_hold '^if-no-cert:'
}

# ---- test: a harvested signature announcing AES-GCM switches the cipher
expect_ok trust trust import "$P/trust.pem"
"$CTL" -c "$T/smrelay.conf" smime sign --from alice@example.com \
    <"$T/msg.txt" >"$T/signed.eml" 2>"$T/err" &&
    "$CTL" -c "$T/smrelay.conf" smime verify <"$T/signed.eml" \
    >"$T/verified.eml" 2>>"$T/err" && pass harvest ||
    fail harvest "$(tail -1 "$T/err")"
expect_ok test_gcm policy test --sender alice@example.com --recipient alice@example.com &&
    out_has test_gcm_cipher '^cipher: aes256-gcm '

cli_done
