#!/bin/sh
# t_keyfile.sh: the key file (key_file, key_passphrase_file) through
# smrelayctl and smrelayd -n, checked with openssl(1) and sqlite3(1): its
# mode, where `key import|list|remove` put and show keys, the passphrase
# (a wrong or missing one refused, the key encrypted in the file as PKCS#8
# that `openssl pkcs8` opens), and the upgrade of a store.db that still
# holds a key: the key moves to the key file, `smime sign` still signs,
# and the RSA prime p is no longer anywhere in smrelay.db.  Prints
# `PASS name` or `FAIL name: reason` per case; exits 1 if any failed.
set -u

CLI_NAME=t_keyfile
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=cli_lib.sh
. "$srcdir/tests/store/cli_lib.sh"
DAEMON=${SMRELAYD:-$BUILD/smrelayd}
if ! command -v sqlite3 >/dev/null 2>&1; then
	echo "SKIP $CLI_NAME: no sqlite3 program"
	exit 77
fi

# smrelayd -n checks that the network process's user (smrelay, when run
# as root) can get to data_dir, as the daemon's start does
chmod 755 "$T"
P=$T/pki
sh "$srcdir/tests/smime/pki.sh" "$P" >/dev/null 2>"$T/pki.err" ||
	{ echo "FAIL pki: $(tail -n 1 "$T/pki.err")"; exit 1; }
printf 'correct horse battery staple\n' >"$T/pw"
printf 'Tr0ub4dor&3\n' >"$T/badpw"
: >"$T/emptypw"
printf 'From: alice@example.com\nTo: bob@partner.example\nSubject: t\n\nhello\n' >"$T/msg.txt"

# conf NAME [EXTRA]: the config $T/NAME.conf, data in $T/NAME; ctl uses it.
conf() {
	mkdir -p "$T/$1"
	printf 'relay = 127.0.0.1:2525\nlisten = 127.0.0.1:2599\ndata_dir = %s/%s\nhostname = gw.example\n%s' \
	    "$T" "$1" "${2:-}" >"$T/$1.conf"
	cp "$T/$1.conf" "$T/smrelay.conf"
	D=$T/$1
}

# The RSA prime p of alice's key, as `openssl pkey -text` prints it, in
# lowercase hex without the sign byte.
p=$(openssl pkey -in "$P/alice.key" -noout -text |
    awk '/^prime1:/ { on = 1; next } /^[a-z]/ { on = 0 } on' |
    tr -d ' :\n' | sed 's/^00//')
[ "${#p}" -ge 200 ] || { echo "FAIL prime: no prime1 in openssl pkey -text"; exit 1; }

# has_p FILE...: one of the files (those that exist) holds p.
has_p() {
	for f in "$@"; do
		[ -f "$f" ] || continue
		od -An -v -tx1 "$f" | tr -d ' \n' | grep -q "$p" && return 0
	done
	return 1
}

# signs NAME: `smime sign` works and `openssl cms -verify` accepts it.
signs() {
	ctl smime sign --from alice@example.com <"$T/msg.txt"
	if [ "$RC" -ne 0 ]; then
		fail "$1" "smime sign: exit $RC: $ERR"
	elif openssl cms -verify -CAfile "$P/trust.pem" -purpose smimesign \
	    -in "$T/out" -out /dev/null 2>"$T/verr"; then
		pass "$1"
	else
		fail "$1" "openssl cms -verify: $(tail -n 1 "$T/verr")"
	fi
}

# ---- a new key file: mode 0600 whatever the umask, keys in it only
conf plain
(umask 000; "$CTL" -c "$T/smrelay.conf" key import "$P/alice.p12") \
    >"$T/out" 2>"$T/err" && pass import ||
    fail import "$(cat "$T/err")"
mode=$(stat -c %a "$D/keys.db" 2>/dev/null)
[ "$mode" = 600 ] && pass keyfile_mode_0600 || fail keyfile_mode_0600 "mode $mode"
has_p "$D/keys.db" && pass keyfile_has_key || fail keyfile_has_key "no p in keys.db"
has_p "$D/smrelay.db" "$D/smrelay.db-wal" &&
    fail store_has_no_key "p in smrelay.db" || pass store_has_no_key
expect_ok list key list &&
    out_has list_location "	file:$D/keys.db\$"
# no PEM, no line of the key's base64, no p
grep -v -- '-----' "$P/alice.key" >"$T/b64"
if grep -q 'PRIVATE\|BEGIN' "$T/out" || grep -qF -f "$T/b64" "$T/out" ||
    has_p "$T/out"; then
	fail list_no_key_material "$(head -c 300 "$T/out")"
else
	pass list_no_key_material
fi
expect_ok list_json key list --json &&
    out_has list_json_location "\"location\":\"file:$D/keys.db\""
signs sign_plain
chmod 644 "$D/keys.db"
expect_err mode_0644_refused 'mode 0644 .*chmod 600' key list
"$DAEMON" -n -c "$T/smrelay.conf" >/dev/null 2>"$T/err" &&
    fail daemon_mode_0644 "smrelayd -n accepted it" ||
    { grep -q 'chmod 600' "$T/err" && pass daemon_mode_0644 ||
    fail daemon_mode_0644 "$(cat "$T/err")"; }
chmod 600 "$D/keys.db"

# ---- a plain key file that holds keys does not take a passphrase
conf plain "key_passphrase_file = $T/pw
"
expect_err plain_with_passphrase 'not encrypted' key list
conf plain
expect_ok remove key remove 1
n=$(sqlite3 "$D/keys.db" 'SELECT count(*) FROM keys')
[ "$n" = 0 ] && pass remove_keyfile_row || fail remove_keyfile_row "$n rows"
has_p "$D/keys.db" "$D/keys.db-journal" &&
    fail remove_no_trace "p still in keys.db" || pass remove_no_trace

# ---- encrypted
conf enc "key_passphrase_file = $T/pw
"
expect_ok enc_import key import "$P/alice.p12"
has_p "$D/keys.db" && fail enc_no_plain_key "p in keys.db" ||
    pass enc_no_plain_key
sqlite3 "$D/keys.db" "SELECT writefile('$T/k.der', pkey) FROM keys" >/dev/null
openssl asn1parse -inform DER -in "$T/k.der" >"$T/asn1" 2>&1
if grep -q 'OBJECT *:PBES2$' "$T/asn1" && grep -q 'OBJECT *:scrypt$' "$T/asn1" &&
    grep -q 'OBJECT *:aes-256-cbc$' "$T/asn1"; then
	pass enc_pbes2_scrypt_aes256
else
	fail enc_pbes2_scrypt_aes256 "$(grep OBJECT "$T/asn1" | head -5)"
fi
if openssl pkcs8 -inform DER -in "$T/k.der" -passin "file:$T/pw" \
    -out "$T/k.pem" 2>"$T/verr" &&
    openssl pkey -in "$T/k.pem" -noout -text | tr -d ' :\n' | grep -q "$p"; then
	pass enc_openssl_pkcs8_opens_it
else
	fail enc_openssl_pkcs8_opens_it "$(tail -n 1 "$T/verr")"
fi
signs sign_encrypted
"$DAEMON" -n -c "$T/smrelay.conf" >"$T/out" 2>"$T/err" &&
    pass daemon_passphrase || fail daemon_passphrase "$(cat "$T/err")"
cp "$T/pw" "$T/pw.keep"
cp "$T/badpw" "$T/pw"
expect_err enc_wrong_passphrase "wrong passphrase (in key_passphrase_file $T/pw)" key list
"$DAEMON" -n -c "$T/smrelay.conf" >/dev/null 2>"$T/err" &&
    fail daemon_wrong_passphrase "smrelayd -n accepted it" ||
    { grep -q 'wrong passphrase' "$T/err" && pass daemon_wrong_passphrase ||
    fail daemon_wrong_passphrase "$(cat "$T/err")"; }
cp "$T/emptypw" "$T/pw"
expect_err enc_empty_passphrase 'empty passphrase' key list
cp "$T/pw.keep" "$T/pw"
conf enc
expect_err enc_no_passphrase 'encrypted keys: set key_passphrase_file' key list

# ---- upgrade: a store.db of schema 6 holding alice's key as PKCS#8,
# made from one of ours with sqlite3, and no key file yet
# old NAME [EXTRA]: that store in $T/NAME
old() {
	conf "$1" "${2:-}"
	expect_ok "$1_setup" key import "$P/alice.p12" || return 1
	openssl pkcs8 -topk8 -nocrypt -in "$P/alice.key" -outform DER \
	    -out "$T/alice.p8"
	sqlite3 "$D/smrelay.db" "UPDATE keys SET pkey = readfile('$T/alice.p8');
	    ALTER TABLE keys DROP COLUMN location; PRAGMA user_version = 6;" ||
	    { fail "$1_setup" "sqlite3"; return 1; }
	rm -f "$D/keys.db" "$D/keys.db-journal"
	has_p "$D/smrelay.db" "$D/smrelay.db-wal" && pass "$1_control_p_in_store" ||
	    fail "$1_control_p_in_store" "no p in the old smrelay.db"
}
if old up; then
	expect_ok up_list key list
	grep -q 'moved 1 private key(s) from .*smrelay.db to .*keys.db' "$T/err" &&
	    pass up_moved_said || fail up_moved_said "stderr: $ERR"
	out_has up_list_location "	file:$D/keys.db\$"
	out_has up_list_alice '^1	alice@example.com	'
	v=$(sqlite3 "$D/smrelay.db" 'PRAGMA user_version; SELECT max(length(pkey)) FROM keys' | tr '\n' ' ')
	[ "$v" = "8 0 " ] && pass up_schema_8_empty_pkey || fail up_schema_8_empty_pkey "$v"
	has_p "$D/smrelay.db" "$D/smrelay.db-wal" && fail up_p_gone "p still in smrelay.db" ||
	    pass up_p_gone
	has_p "$D/keys.db" && pass up_p_in_keyfile || fail up_p_in_keyfile "no p in keys.db"
	mode=$(stat -c %a "$D/keys.db" 2>/dev/null)
	[ "$mode" = 600 ] && pass up_keyfile_mode || fail up_keyfile_mode "mode $mode"
	signs up_sign
	expect_ok up_again key list
	[ -s "$T/err" ] && fail up_idempotent "stderr: $ERR" || pass up_idempotent
fi
# the same into an encrypted key file
if old upenc "key_passphrase_file = $T/pw
"; then
	expect_ok upenc_list key list
	has_p "$D/smrelay.db" "$D/smrelay.db-wal" "$D/keys.db" &&
	    fail upenc_p_gone "p in smrelay.db or keys.db" || pass upenc_p_gone
	signs upenc_sign
fi

cli_done
