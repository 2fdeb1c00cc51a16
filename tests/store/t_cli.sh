#!/bin/sh
# t_cli.sh: smrelayctl key/cert/trust/crl against a PKI made with openssl(1):
# outputs, exit codes, error messages, the database file mode.  Prints
# `PASS name` or `FAIL name: reason` per case; exits 1 if any failed.
set -u

CLI_NAME=t_cli
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=cli_lib.sh
. "$srcdir/tests/store/cli_lib.sh"

# ---- the PKI
P=$T/pki
mkdir -p "$P" "$T/data"
printf 'relay = 127.0.0.1:2525\ndata_dir = %s/data\n' "$T" >"$T/smrelay.conf"
(
	cd "$P" || exit 1
	ossl() { openssl "$@" >>"$P/log" 2>&1 || { echo "openssl $*" >&2; exit 1; }; }
	ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem \
	    -subj "/CN=Test CA/O=smrelay" -days 30 \
	    -addext basicConstraints=critical,CA:TRUE \
	    -addext keyUsage=critical,keyCertSign,cRLSign
	ossl req -x509 -newkey rsa:2048 -nodes -keyout other.key \
	    -out other.pem -subj "/CN=Other CA" -days 30 \
	    -addext basicConstraints=critical,CA:TRUE
	# user certificates: $1 name, $2 key spec, $3 extension lines, $4 days
	user() {
		# shellcheck disable=SC2086
		ossl req -newkey $2 -nodes -keyout "$1.key" -out "$1.csr" \
		    -subj "/CN=$1"
		printf '%b' "$3" >"$1.ext"
		ossl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key \
		    -CAcreateserial -out "$1.pem" -days "$4" -extfile "$1.ext"
	}
	user alice rsa:2048 'keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\nsubjectAltName=email:Alice@Example.COM\n' 20
	user bob 'ec -pkeyopt ec_paramgen_curve:P-256' 'keyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=emailProtection\nsubjectAltName=email:bob@example.org,email:robert@example.org\n' 20
	user noemail rsa:2048 'keyUsage=digitalSignature\n' 20
	# an expired certificate: `openssl ca` takes explicit past dates
	ossl req -newkey rsa:2048 -nodes -keyout old.key -out old.csr -subj "/CN=old"
	: >index2.txt; echo 1000 >serial2
	printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s/index2.txt\nnew_certs_dir=%s\nserial=%s/serial2\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n[e]\nsubjectAltName=email:old@example.com\n' "$P" "$P" "$P" >old.cnf
	ossl ca -config old.cnf -batch -notext -in old.csr -cert ca.pem \
	    -keyfile ca.key -out old.pem -startdate 20200101000000Z \
	    -enddate 20210101000000Z -extensions e
	cat alice.pem bob.pem >both.pem
	openssl x509 -in alice.pem -outform DER -out alice.der
	ossl crl2pkcs7 -nocrl -certfile both.pem -outform DER -out both.p7b
	printf 'secret\n' >pw
	printf 'not the password\n' >badpw
	ossl pkcs12 -export -in alice.pem -inkey alice.key -certfile ca.pem \
	    -out alice.p12 -passout pass:secret
	ossl pkcs12 -export -legacy -in bob.pem -inkey bob.key \
	    -certfile ca.pem -out bob-legacy.p12 -passout pass:secret
	cat bob.pem bob.key ca.pem >bob-all.pem
	cat alice.pem bob.key >mismatch.pem
	ossl pkey -in alice.key -aes256 -passout pass:secret -out alice-enc.key
	cat alice.pem alice-enc.key >alice-enc.pem
	cat noemail.pem noemail.key >noemail-id.pem
	# a CRL revoking nothing, and one from a CA we do not trust
	: >index.txt; echo 01 >crlnumber
	printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s/index.txt\ncrlnumber=%s/crlnumber\ndefault_md=sha256\ndefault_crl_days=7\n' "$P" "$P" >ca.cnf
	ossl ca -config ca.cnf -gencrl -keyfile ca.key -cert ca.pem -out ca.crl
	openssl crl -in ca.crl -outform DER -out ca.crl.der
	ossl ca -config ca.cnf -gencrl -keyfile other.key -cert other.pem \
	    -out other.crl
	printf 'garbage\n' >garbage.txt
) || { echo "FAIL pki: openssl failed (see above)"; exit 1; }

# ---- cert
expect_ok cert_import_pem cert import "$P/alice.pem" &&
    { out_has cert_import_prints_id '^1	alice@example.com	'; }
DB=$T/data/smrelay.db
mode=$(stat -c %a "$DB" 2>/dev/null)
[ "$mode" = 600 ] && pass db_mode_0600 || fail db_mode_0600 "mode $mode"
expect_ok cert_import_again cert import "$P/alice.pem" &&
    out_has cert_import_idempotent '^1	'
grep -q 'already present' "$T/err" && pass cert_import_dup_note ||
    fail cert_import_dup_note "no note on stderr"
expect_ok cert_import_many cert import "$P/both.pem" &&
    out_has cert_import_many_bob '^2	bob@example.org,robert@example.org	'
expect_ok cert_import_der cert import "$P/alice.der" &&
    out_has cert_import_der_same '^1	'
expect_ok cert_import_p7b cert import "$P/both.p7b" &&
    [ "$(wc -l <"$T/out")" -eq 2 ] && out_has cert_import_p7b_ids '^2	'
expect_err cert_import_missing 'No such file' cert import "$P/nope.pem"
expect_err cert_import_garbage 'no certificate found (expected PEM or DER X.509' \
    cert import "$P/garbage.txt"
expect_err cert_import_expired 'expired on 2021-01-01' cert import "$P/old.pem"
expect_err cert_import_noemail 'no certificate with an e-mail address' \
    cert import "$P/noemail.pem"
expect_ok cert_import_force cert import --force "$P/old.pem" &&
    out_has cert_import_force_id '^3	old@example.com	'

expect_ok cert_list cert list && {
	n=$(wc -l <"$T/out")
	[ "$n" -eq 3 ] && pass cert_list_lines || fail cert_list_lines "$n lines"
	out_has cert_list_fields '^1	alice@example.com	CN=alice	20[0-9-]*T[0-9:]*Z	[0-9a-f]\{64\}	import$'
}
expect_ok cert_list_email cert list --email ALICE@example.com &&
    [ "$(wc -l <"$T/out")" -eq 1 ] && out_has cert_list_email_case '^1	'
expect_ok cert_list_json --json cert list &&
    out_has cert_list_json_emails '"emails":\["bob@example.org","robert@example.org"\]'
expect_ok cert_list_json2 cert list --email nobody@example.com --json &&
    out_has cert_list_json_empty '^\[\]$'
expect_ok cert_show cert show 2 && {
	out_has cert_show_issuer '^issuer: O=smrelay,CN=Test CA$'
	out_has cert_show_ku '^key_usage: digitalSignature, keyAgreement$'
	out_has cert_show_eku '^ext_key_usage: emailProtection$'
	out_has cert_show_key '^key: EC 256$'
}
expect_ok cert_show_json cert show 3 --json &&
    out_has cert_show_json_obj '^{"id":3,'
expect_err cert_show_missing 'no such certificate' cert show 99
expect_err cert_show_badid 'bad id' cert show abc
expect_ok cert_remove cert remove 3 && {
	ctl cert list
	grep -q 'old@' "$T/out" && fail cert_remove_gone "still listed" ||
	    pass cert_remove_gone
}
expect_err cert_remove_again 'no such certificate' cert remove 3

# ---- trust
expect_ok trust_import trust import "$P/ca.pem" &&
    out_has trust_import_id '^1	O=smrelay,CN=Test CA$'
expect_err trust_import_leaf 'not a CA' trust import "$P/alice.pem"
expect_ok trust_list trust list && out_has trust_list_row '^1	O=smrelay,CN=Test CA	'
expect_ok trust_list_json trust list --json &&
    out_has trust_list_json_row '"subject":"O=smrelay,CN=Test CA"'

# ---- crl
expect_ok crl_import crl import "$P/ca.crl" && out_has crl_import_id '^1	'
expect_ok crl_import_der crl import "$P/ca.crl.der" &&
    out_has crl_import_der_same '^1	'
expect_err crl_import_untrusted 'is neither a trust anchor nor an intermediate' crl import "$P/other.crl"
expect_err crl_import_garbage 'no CRL found' crl import "$P/garbage.txt"
# a file with two CRLs: each is imported or refused on its own
cat "$P/ca.crl" "$P/other.crl" > "$T/two.crl"
expect_err crl_import_two 'is neither a trust anchor nor an intermediate' crl import "$T/two.crl" &&
    out_has crl_import_two_first '^1	O=smrelay,CN=Test CA$'
{ cat "$P/ca.crl"; printf -- '-----BEGIN X509 CRL-----\n!!\n-----END X509 CRL-----\n'; } > "$T/tail.crl"
expect_err crl_import_tail 'damaged data after CRL 1' crl import "$T/tail.crl"
expect_ok crl_list crl list && out_has crl_list_row '^1	O=smrelay,CN=Test CA	'

# ---- key
expect_err key_import_nopw 'wrong password for' key import "$P/alice.p12"
expect_err key_import_badpw "wrong password for $P/alice.p12" \
    key import "$P/alice.p12" --password-file "$P/badpw"
expect_ok key_import_p12 key import "$P/alice.p12" --password-file "$P/pw" &&
    out_has key_import_p12_id '^1	alice@example.com	'
# The legacy file must really need the legacy provider (RC2-40).
if openssl pkcs12 -in "$P/bob-legacy.p12" -passin pass:secret -nokeys \
    -out /dev/null >/dev/null 2>&1; then
	fail legacy_p12_is_legacy "openssl reads it without -legacy"
else
	pass legacy_p12_is_legacy
fi
expect_ok key_import_legacy key import "$P/bob-legacy.p12" \
    --password-file "$P/pw" && out_has key_import_legacy_id '^2	bob@'
expect_ok key_import_pem key import "$P/bob-all.pem" &&
    out_has key_import_pem_same '^2	'
expect_err key_import_mismatch 'matches no certificate' key import "$P/mismatch.pem"
expect_err key_import_pem_badpw 'wrong password for' \
    key import "$P/alice-enc.pem" --password-file "$P/badpw"
expect_ok key_import_pem_pw key import "$P/alice-enc.pem" \
    --password-file "$P/pw" && out_has key_import_pem_pw_same '^1	'
expect_err key_import_noemail 'no e-mail address' key import "$P/noemail-id.pem"
expect_err key_import_garbage 'not a PKCS#12 file' key import "$P/garbage.txt"
expect_ok key_list key list && {
	[ "$(wc -l <"$T/out")" -eq 2 ] && pass key_list_lines ||
	    fail key_list_lines "$(wc -l <"$T/out") lines"
	grep -q 'PRIVATE' "$T/out" && fail key_list_no_secret "key printed" ||
	    pass key_list_no_secret
}
expect_ok key_list_json key list --json && out_has key_list_json_row '"id":2,'
expect_err cert_remove_keycert 'belongs to a key' cert remove 1
expect_ok key_remove key remove 2 && pass key_remove
expect_err key_remove_again 'no such key' key remove 2

# ---- misc
expect_err usage_extra 'unexpected argument' cert list extra
expect_err trust_remove_missing 'no such trust anchor' trust remove 42
expect_ok trust_remove trust remove 1 && pass trust_remove
mode=$(stat -c %a "$DB" 2>/dev/null)
[ "$mode" = 600 ] && pass db_mode_still_0600 || fail db_mode_still_0600 "mode $mode"

cli_done
