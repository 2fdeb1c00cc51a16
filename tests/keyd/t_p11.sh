#!/bin/sh
# tests/keyd/t_p11.sh: keys on PKCS#11 tokens (daemon/keyd/keyd_p11.h).
# The URI parser first; then a throwaway SoftHSM2 token (its own config
# and token directory under a temporary directory) with keys of
# tests/smime/pki.sh imported and keys generated on the token, each with
# its certificate under the same id.  Through a key process and its
# client (p11_test ops): CMS signatures verified by `openssl cms -verify`,
# envelopes made by `openssl cms -encrypt` opened; then the errors a user
# would make (p11_test fail).
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
T=${P11_TEST:-$PWD/tests/keyd/p11_test}
W=$(mktemp -d "${TMPDIR:-/tmp}/p11.XXXXXX") || exit 99
trap 'rm -rf "$W"' EXIT
trap 'exit 1' INT TERM
fails=0

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
die() { echo "FAIL: $*"; exit 1; }

[ -x "$T" ] || die "p11_test not built at $T"
if "$T" uri; then pass "pkcs11: URI parser"; else fail "pkcs11: URI parser"; fi

for p in softhsm2-util pkcs11-tool openssl; do
	command -v $p >/dev/null 2>&1 && continue
	[ $fails -eq 0 ] || exit 1
	echo "SKIP: no $p (contrib/install-deps.sh installs it)"
	exit 77
done
MOD=
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib64/pkcs11/libsofthsm2.so \
    /usr/lib/pkcs11/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
	[ -f "$m" ] && { MOD=$m; break; }
done
if [ -z "$MOD" ]; then
	[ $fails -eq 0 ] || exit 1
	echo "SKIP: libsofthsm2.so not found"
	exit 77
fi

# The token: its own configuration, nothing of the machine's.
SOFTHSM2_CONF=$W/softhsm2.conf
export SOFTHSM2_CONF
mkdir "$W/tokens"
cat >"$SOFTHSM2_CONF" <<CONF
directories.tokendir = $W/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
for label in smrelay-test other; do
	softhsm2-util --init-token --free --label $label --pin 1234 \
	    --so-pin 5678 >>"$W/setup.log" 2>&1 || die "softhsm2-util --init-token"
done
p11() {
	pkcs11-tool --module "$MOD" --token-label smrelay-test --login \
	    --pin 1234 "$@" >>"$W/setup.log" 2>&1 ||
	    { cat "$W/setup.log"; die "pkcs11-tool $*"; }
}

P=$W/pki
sh "$srcdir/tests/smime/pki.sh" "$P" >/dev/null 2>"$W/pki.err" ||
	die "pki.sh ($(tail -n 1 "$W/pki.err"))"

# import NAME ID: the pki.sh key and certificate NAME.
import() {
	openssl pkey -in "$P/$1.key" -outform DER -out "$W/$1.key.der" &&
	openssl x509 -in "$P/$1.pem" -outform DER -out "$W/$1.der" ||
	    die "openssl (import $1)"
	# pkcs11-tool's default usage for a key it writes has no derive
	case $1 in
	*-ec) usage="--usage-sign --usage-derive" ;;
	*) usage="--usage-sign --usage-decrypt" ;;
	esac
	# shellcheck disable=SC2086
	p11 --write-object "$W/$1.key.der" --type privkey --id "$2" \
	    --label "$1" $usage
	p11 --write-object "$W/$1.der" --type cert --id "$2" --label "$1"
	cp "$P/$1.pem" "$W/$1.pem"
}
# generate NAME ID TYPE: a key made on the token (never extractable) and a
# certificate for its public key from the test intermediate CA.
generate() {
	p11 --keypairgen --key-type "$3" --id "$2" --label "$1"
	p11 --read-object --type pubkey --id "$2" -o "$W/$1.pub.der"
	openssl pkey -pubin -inform DER -in "$W/$1.pub.der" \
	    -out "$W/$1.pub.pem" &&
	openssl x509 -req -in "$P/alice.csr" -CA "$P/int.pem" \
	    -CAkey "$P/int.key" -force_pubkey "$W/$1.pub.pem" -days 30 \
	    -set_serial "0x50$2" -extfile "$W/user.cnf" -extensions user \
	    -out "$W/$1.pem" 2>>"$W/setup.log" &&
	openssl x509 -in "$W/$1.pem" -outform DER -out "$W/$1.der" ||
	    die "openssl (certificate for $1)"
	p11 --write-object "$W/$1.der" --type cert --id "$2" --label "$1"
}
cat >"$W/user.cnf" <<'CNF'
[ user ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment, keyAgreement
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:alice@example.com
CNF
import alice 01
import alice-ec 02
generate gen-rsa 03 rsa:2048
generate gen-ec 04 EC:prime256v1
p11 --keypairgen --key-type rsa:2048 --id 05 --label lonely
# bob's key, allowed CKM_RSA_PKCS only (CKA_ALLOWED_MECHANISMS): no raw RSA,
# as on HSMs configured so, hence no PSS or OAEP
openssl pkey -in "$P/bob.key" -outform DER -out "$W/bob.key.der" &&
openssl x509 -in "$P/bob.pem" -outform DER -out "$W/bob.der" ||
	die "openssl (bob)"
p11 --write-object "$W/bob.key.der" --type privkey --id 06 --label bob \
    --allowed-mechanisms RSA-PKCS
p11 --write-object "$W/bob.der" --type cert --id 06 --label bob
printf '1234\n' >"$W/pin"

printf 'Content-Type: text/plain\r\n\r\nsigned and sealed on a token\r\n' \
    >"$W/msg.txt"

# The signatures carry the signer's certificate only: the intermediate is
# given to the verifier with the root.
cat "$P/ca.pem" "$P/int.pem" >"$W/anchors.pem"

BASE="pkcs11:token=smrelay-test"
Q="?module-path=$MOD&pin-value=1234"

# ops NAME URI: sign, verify, encrypt to NAME's certificate, decrypt.
ops() {
	name=$1
	uri=$2
	d=$W/out-$name
	mkdir -p "$d"
	set --
	if openssl x509 -in "$W/$name.pem" -noout -text | grep -q rsaEncryption; then
		openssl cms -encrypt -binary -aes-256-cbc -in "$W/msg.txt" \
		    -outform DER -out "$d/enc-pkcs1.der" "$W/$name.pem" &&
		openssl cms -encrypt -binary -aes-256-cbc -in "$W/msg.txt" \
		    -outform DER -out "$d/enc-oaep.der" -recip "$W/$name.pem" \
		    -keyopt rsa_padding_mode:oaep || die "openssl cms -encrypt"
		set -- "$d/enc-pkcs1.der" "$d/enc-oaep.der"
	else
		openssl cms -encrypt -binary -aes-256-cbc -in "$W/msg.txt" \
		    -outform DER -out "$d/enc-ecdh.der" "$W/$name.pem" ||
		    die "openssl cms -encrypt"
		set -- "$d/enc-ecdh.der"
	fi
	if "$T" ops "$uri" "$W/msg.txt" "$d" "$@"; then
		pass "$name: key process with $uri: signs, decrypts $*"
	else
		fail "$name: key process with $uri"
	fi
	for s in "$d"/sig-*.der; do
		[ -f "$s" ] || { fail "$name: no signature made"; continue; }
		if openssl cms -verify -binary -inform DER -in "$s" \
		    -CAfile "$W/anchors.pem" -purpose smimesign \
		    -out "$s.txt" 2>"$s.err" && cmp -s "$s.txt" "$W/msg.txt"; then
			pass "$name: openssl cms -verify ${s##*/}"
		else
			fail "$name: openssl cms -verify ${s##*/}: $(cat "$s.err")"
		fi
	done
	if [ "$(openssl x509 -in "$d/cert.pem" -noout -fingerprint -sha256)" = \
	    "$(openssl x509 -in "$W/$name.pem" -noout -fingerprint -sha256)" ]; then
		pass "$name: keyd_p11_cert gives the token's certificate"
	else
		fail "$name: keyd_p11_cert gives another certificate"
	fi
}

ops alice "$BASE;object=alice$Q"
ops alice-ec "$BASE;id=%02$Q"
ops gen-rsa "$BASE;object=gen-rsa;type=private?module-path=$MOD&pin-source=file:$W/pin"
ops gen-ec "$BASE;object=gen-ec;id=%04$Q"
# No module-path=: the default module (p11-kit's proxy, which loads
# SoftHSM2 with our SOFTHSM2_CONF, or SoftHSM2 itself).
ops alice "$BASE;object=alice?pin-value=1234"

if "$T" mech "$BASE;object=bob$Q"; then
	pass "PKCS#1 v1.5 only: PSS and OAEP refused as the key's limits"
else
	fail "PKCS#1 v1.5 only: PSS and OAEP refused as the key's limits"
fi

# The CLI's import reads only the certificate: no PIN needed.
if "$T" cert "$BASE;object=gen-ec?module-path=$MOD" "$W/c.pem" &&
    [ "$(openssl x509 -in "$W/c.pem" -noout -fingerprint -sha256)" = \
    "$(openssl x509 -in "$W/gen-ec.pem" -noout -fingerprint -sha256)" ]; then
	pass "keyd_p11_cert without a PIN"
else
	fail "keyd_p11_cert without a PIN"
fi

# refused TEXT URI: loading the key fails and says TEXT.
refused() {
	if out=$("$T" fail "$2" "$1" 2>&1); then
		pass "refused: $out"
	else
		fail "refused $2: $out"
	fi
}
long=$(printf '%0300d' 0)
refused "PIN incorrect" "$BASE;object=alice?module-path=$MOD&pin-value=0000"
refused "needs a PIN" "$BASE;object=alice?module-path=$MOD"
refused "no token 'nosuch'" "pkcs11:token=nosuch;object=alice$Q"
refused "has no private key that matches" "$BASE;object=nosuch$Q"
refused "has no private key that matches" "$BASE;object=alice;id=%02$Q"
refused "private keys that match the URI" "$BASE$Q"
refused "2 tokens in PKCS#11 module" "pkcs11:object=alice$Q"
refused "no certificate for the key" "$BASE;object=lonely$Q"
refused "names a certificate" "$BASE;object=alice;type=cert$Q"
refused "slot-id= is not supported" "$BASE;slot-id=1;object=alice$Q"
refused "unsupported path attribute 'x-vendor'" "$BASE;x-vendor=1$Q"
refused "give module-path=" "$BASE;object=alice?module-name=softhsm2&pin-value=1234"
refused "longer than 2048 bytes" "$BASE;object=$long$long$long$long$long$long$long$Q"
refused "object= is longer than 128 bytes" "$BASE;object=$long$Q"
refused "/nonexistent/libnone.so: No such file" \
    "$BASE;object=alice?module-path=/nonexistent/libnone.so&pin-value=1234"
refused "cannot load PKCS#11 module" \
    "$BASE;object=alice?module-path=$SOFTHSM2_CONF&pin-value=1234"
refused "must be a file: URI" "$BASE;object=alice?module-path=$MOD&pin-source=|/bin/echo"
refused "PIN file $W/nopin: No such file" \
    "$BASE;object=alice?module-path=$MOD&pin-source=file:$W/nopin"

echo "t_p11: $fails failure(s)"
[ $fails -eq 0 ]
