#!/bin/sh
# tests/smime/t_interop.sh: the CMS engine (proto/cms.c, via smime_tool)
# against openssl cms, gpgsm and NSS cmsutil, in both directions, plus the
# failure verdicts (tampered, expired, untrusted, revoked, wrong purpose,
# From not in the certificate) and the memory bound on a 50 MB entity.
# Prints PASS/FAIL/SKIP per case; exits 1 when a case failed.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
T=${SMIME_TOOL:-$PWD/tests/smime/smime_tool}
W=$(mktemp -d /tmp/smime-interop.XXXXXX)
G=$W/gnupg
N=$W/nss
. "$srcdir/tests/smime/common.sh"
. "$srcdir/tests/smime/gpgsm.sh"

[ -x "$T" ] || { echo "FAIL: smime_tool not built at $T"; exit 1; }
make_pki

# The entity (canonical, CRLF) and a message carrying it.
printf 'Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\nHello Bob,\r\n\r\nthis is signed.\r\n-- \r\nAlice\r\n' > ent.txt
{ printf 'From: Alice <alice@example.com>\r\nTo: Bob <bob@partner.example>\r\nSubject: interop\r\nDate: Sun, 22 Nov 2026 20:00:00 +0000\r\n'; cat ent.txt; } > msg.txt
sed 's/^From: .*/From: Mallory <mallory@example.com>\r/' msg.txt > msg-mallory.txt
sed 's/^From: .*/From: <alice@EXAMPLE.COM>\r/' msg.txt > msg-upper.txt

# same_text A B: equal once CRs are dropped (openssl may write LF).
same_text() { tr -d '\r' < "$1" > "$1.lf"; tr -d '\r' < "$2" > "$2.lf"; cmp -s "$1.lf" "$2.lf"; }

# p7m_der MSG DER: the base64 body of an application/pkcs7-mime message.
p7m_der() { awk 'b { print } /^\r?$/ { b = 1 }' "$1" | tr -d '\r' | base64 -d > "$2"; }
# wrap_p7m TYPE DER: a message around a CMS object.
wrap_p7m() {
	printf 'From: Alice <alice@example.com>\r\nTo: bob@partner.example\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=%s; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7m\r\n\r\n' "$1"
	base64 -w 76 < "$2" | sed 's/$/\r/'
}
# wrap_signed CONTENT SIGDER: a multipart/signed message.
wrap_signed() {
	b="=_interop_$$"
	printf 'From: Alice <alice@example.com>\r\nTo: bob@partner.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;\r\n\tboundary="%s"\r\n\r\n--%s\r\n' "$b" "$b"
	cat "$1"
	printf '\r\n--%s\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n' "$b"
	base64 -w 76 < "$2" | sed 's/$/\r/'
	printf '\r\n--%s--\r\n' "$b"
}
# expect NAME RESULT REASON FILE [verify args]: our verdict on FILE.
expect() {
	name=$1 want=$2 why=$3 f=$4
	shift 4
	"$T" verify --ca "$P/trust.pem" "$@" < "$f" > v.out 2> v.err
	rc=$?
	ar=$(head -n 1 v.out)
	case "$ar" in
	*"smime=$want"*"$why"*)
		if [ "$want" = pass ] && [ $rc -ne 0 ]; then
			fail "$name" "exit $rc on pass"
		elif [ "$want" != pass ] && [ $rc -ne 1 ]; then
			fail "$name" "exit $rc on $want"
		else
			pass "$name"
		fi ;;
	*) fail "$name" "got: $ar $(lastline v.err)" ;;
	esac
}
# ours_sign NAME [sign args]: sign msg.txt into NAME.eml.
ours_sign() {
	_n=$1
	shift
	"$T" sign "$@" < msg.txt > "$_n.eml" 2> "$_n.err" ||
		{ fail "sign $_n" "$(lastline "$_n.err")"; return 1; }
}

# --- our signatures, verified by openssl cms ------------------------------
for v in "rsa:--cert $P/alice.pem --key $P/alice.key" \
    "rsa-pss:--cert $P/alice.pem --key $P/alice.key --pss" \
    "ec:--cert $P/alice-ec.pem --key $P/alice-ec.key" \
    "rsa-opaque:--cert $P/alice.pem --key $P/alice.key --opaque" \
    "rsa-pss-opaque:--cert $P/alice.pem --key $P/alice.key --pss --opaque" \
    "ec-opaque:--cert $P/alice-ec.pem --key $P/alice-ec.key --opaque"; do
	n=${v%%:*}
	# shellcheck disable=SC2086
	ours_sign "s-$n" ${v#*:} --chain "$P/chain.pem" || continue
	if openssl cms -verify -CAfile "$P/trust.pem" -purpose smimesign \
	    -in "s-$n.eml" -out "s-$n.out" 2> "s-$n.oerr" &&
	    same_text "s-$n.out" ent.txt; then
		pass "sign $n: openssl cms -verify"
	else
		fail "sign $n: openssl cms -verify" "$(lastline "s-$n.oerr")"
	fi
	expect "sign $n: our verify" pass "alice@example.com" "s-$n.eml"
done
grep -q 'micalg=sha-256' s-ec.eml && pass "sign ec: micalg=sha-256" ||
	fail "sign ec: micalg=sha-256"
openssl cms -cmsout -print -in s-rsa-pss.eml 2>/dev/null | grep -q rsassaPss &&
	pass "sign rsa-pss: RSASSA-PSS algorithm" || fail "sign rsa-pss: RSASSA-PSS algorithm"
openssl cms -cmsout -print -in s-rsa.eml > s-rsa.print 2>&1
grep -q 'signingTime' s-rsa.print && grep -q 'S/MIME Capabilities' s-rsa.print &&
    grep -q 'smrelay Test Intermediate' s-rsa.print &&
	pass "sign rsa: signingTime, SMIMECapabilities, chain included" ||
	fail "sign rsa: signingTime, SMIMECapabilities, chain included"
expect "verify: signer SMIMECapabilities parsed" pass "" s-rsa.eml
# A key that is not the certificate's: refused, detached and opaque.
for o in "" --opaque; do
	# shellcheck disable=SC2086
	if "$T" sign --cert "$P/alice.pem" --key "$P/bob.key" $o < msg.txt > wrongkey.eml 2> wrongkey.err; then
		fail "sign with bob's key under alice's certificate ${o:-detached}: refused" "signed"
	else
		grep -q 'signer key does not match certificate' wrongkey.err &&
			pass "sign with bob's key under alice's certificate ${o:-detached}: refused" ||
			fail "sign with bob's key under alice's certificate ${o:-detached}: refused" "$(lastline wrongkey.err)"
	fi
done
# The signer's certificate given again in the chain: each certificate once.
cat "$P/alice.pem" "$P/chain.pem" "$P/alice.pem" > chain-dup.pem
if ours_sign s-dup --cert "$P/alice.pem" --key "$P/alice.key" --chain chain-dup.pem; then
	split_signed s-dup.eml dup-c.bin dup-s.der
	ncerts=$(PYTHONPATH="$SMIME_PY" python3 -c '
import sys, der
root, _ = der.parse(open(sys.argv[1], "rb").read(), 0)
sd = root[1][1][1][0][1]
print(sum(len(f[1]) for f in sd if f[0] == 0xa0))' dup-s.der)
	want=$(( $(grep -c "BEGIN CERTIFICATE" "$P/chain.pem") + 1 ))
	[ "$ncerts" = "$want" ] && pass "signer certificate repeated in the chain: $want certificates, each once" ||
		fail "signer certificate repeated in the chain" "$ncerts certificates, want $want"
	expect "signer certificate repeated in the chain: our verify" pass "alice@example.com" s-dup.eml
fi
grep -q '^caps=aes256-gcm' v.out && pass "verify: caps list AES-256-GCM" ||
	fail "verify: caps list AES-256-GCM" "$(cat v.out)"

# --- verdicts --------------------------------------------------------------
# Tamper one byte of the signed text ("Bob" -> "Bab").
sed 's/^Hello Bob,/Hello Bab,/' s-rsa.eml > tampered.eml
expect "tampered content: fail" fail "signature mismatch" tampered.eml
sed 's/^Hello Bob,/Hello Bab,/' s-rsa-opaque.eml > tampered-o.eml
p7m_der s-rsa-opaque.eml o.der
python3 -c 'import sys; d=bytearray(open(sys.argv[1],"rb").read()); i=d.index(b"Hello Bob"); d[i+7]^=1; open(sys.argv[2],"wb").write(d)' o.der o-bad.der
wrap_p7m signed-data o-bad.der > tampered-o.eml
expect "tampered opaque: fail" fail "signature mismatch" tampered-o.eml
# Algorithms we cannot check are said as such (RFC 8601 neutral), never
# "signature mismatch": an unknown digest OID in place of SHA-256, and an
# unknown signature algorithm OID in place of the SignerInfo's rsaEncryption.
printf 'Content-Type: text/plain\r\n\r\nHello Bob, unknown algorithms.\r\n' > alg.txt
if openssl cms -sign -binary -outform DER -in alg.txt -signer "$P/alice.pem" \
    -inkey "$P/alice.key" -certfile "$P/chain.pem" -out alg.der 2> alg.err; then
	python3 - alg.der <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
sha256 = bytes.fromhex('0609608648016503040201')
open('alg-dig.der', 'wb').write(d.replace(sha256, sha256[:-1] + b'\x63'))
rsa = bytes.fromhex('06092a864886f70d010101')
i = d.rfind(rsa)   # the SignerInfo's, after the certificates' keys
open('alg-sig.der', 'wb').write(d[:i] + rsa[:-1] + b'\x63' + d[i + len(rsa):])
PY
	wrap_signed alg.txt alg-dig.der > alg-dig.eml
	expect "unknown digest algorithm: neutral" neutral \
	    "unsupported digest algorithm 2.16.840.1.101.3.4.2.99" alg-dig.eml
	wrap_signed alg.txt alg-sig.der > alg-sig.eml
	expect "unknown signature algorithm: neutral" neutral \
	    "unsupported signature algorithm 1.2.840.113549.1.1.99" alg-sig.eml
	wrap_signed alg.txt alg.der > alg-ok.eml
	expect "the same signature unchanged: pass" pass "" alg-ok.eml
else
	fail "openssl cms -sign for the algorithm cases" "$(lastline alg.err)"
fi
ours_sign s-expired --cert "$P/expired.pem" --key "$P/expired.key" --chain "$P/chain.pem" &&
	expect "expired signer: fail" fail "certificate has expired" s-expired.eml
ours_sign s-self --cert "$P/selfsigned.pem" --key "$P/selfsigned.key" &&
	expect "untrusted (self-signed) signer: fail" fail "self-signed certificate" s-self.eml
ours_sign s-revoked --cert "$P/revoked.pem" --key "$P/revoked.key" --chain "$P/chain.pem" &&
	expect "revoked signer with CRLs: fail" fail "certificate revoked" s-revoked.eml --crl "$P/crl.pem"
expect "good signer with CRLs: pass" pass "alice@example.com" s-rsa.eml --crl "$P/crl.pem"
ours_sign s-noeku --cert "$P/noeku.pem" --key "$P/noeku.key" --chain "$P/chain.pem" &&
	expect "signer without emailProtection: fail" fail "unsuitable certificate purpose" s-noeku.eml
"$T" sign --cert "$P/alice.pem" --key "$P/alice.key" --chain "$P/chain.pem" < msg-mallory.txt > s-mallory.eml
expect "From not in signer certificate: policy" policy "does not carry the From address" s-mallory.eml
"$T" sign --cert "$P/alice.pem" --key "$P/alice.key" --chain "$P/chain.pem" < msg-upper.txt > s-upper.eml
expect "From domain in upper case: pass" pass "alice@example.com" s-upper.eml
expect "unsigned message: none" none "" msg.txt
printf 'From: alice@example.com\r\nContent-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\nTUlJ\r\n' > garbage.eml
expect "malformed signature: permerror" permerror "malformed" garbage.eml

# --- openssl cms -sign / -encrypt, read by us ------------------------------
openssl cms -sign -signer "$P/alice.pem" -inkey "$P/alice.key" -certfile "$P/chain.pem" \
    -binary -in ent.txt -out o-det.p7s -outform DER 2>/dev/null &&
	wrap_signed ent.txt o-det.p7s > o-det.eml &&
	expect "openssl cms -sign detached: our verify" pass "alice@example.com" o-det.eml
openssl cms -sign -nodetach -signer "$P/alice-ec.pem" -inkey "$P/alice-ec.key" \
    -certfile "$P/chain.pem" -binary -in ent.txt -out o-op.der -outform DER 2>/dev/null &&
	wrap_p7m signed-data o-op.der > o-op.eml &&
	expect "openssl cms -sign opaque (EC): our verify" pass "alice@example.com" o-op.eml --out o-op.out &&
	{ cmp -s o-op.out ent.txt && pass "openssl opaque: content returned" ||
	    fail "openssl opaque: content returned"; }
openssl cms -sign -nocerts -signer "$P/alice.pem" -inkey "$P/alice.key" \
    -binary -in ent.txt -out o-nocerts.p7s -outform DER 2>/dev/null &&
	wrap_signed ent.txt o-nocerts.p7s > o-nocerts.eml &&
	expect "signature without certificates: fail" fail "signer certificate not found" o-nocerts.eml &&
	cat "$P/alice.pem" "$P/int.pem" > known.pem &&
	expect "signature without certificates, signer known: pass" pass "alice@example.com" o-nocerts.eml --certs known.pem
# A twin of alice's certificate: the same issuer name and serial number
# (what a SignerInfo names its signer by), mallory's key, issued by a
# self-made "intermediate" of the same name.  Signed with it, carrying
# alice's real certificate too (or with alice's known): the signature is
# mallory's, whichever certificate is looked at first, and must fail.
openssl req -x509 -new -key "$P/selfsigned.key" -days 30 -out fakeint.pem \
    -subj "$(openssl x509 -in "$P/int.pem" -noout -subject -nameopt compat |
    sed 's/^subject=//')" 2>/dev/null &&
openssl req -new -key "$P/selfsigned.key" -out twin.csr \
    -subj "$(openssl x509 -in "$P/alice.pem" -noout -subject -nameopt compat |
    sed 's/^subject=//')" 2>/dev/null &&
printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=emailProtection\nsubjectAltName=email:alice@example.com\n' > twin.ext &&
openssl x509 -req -in twin.csr -CA fakeint.pem -CAkey "$P/selfsigned.key" -days 30 \
    -set_serial "0x$(openssl x509 -in "$P/alice.pem" -noout -serial | cut -d= -f2)" \
    -extfile twin.ext -out twin.pem 2>/dev/null ||
	fail "twin certificate made" "openssl"
[ "$(openssl x509 -in twin.pem -noout -issuer -serial)" = \
    "$(openssl x509 -in "$P/alice.pem" -noout -issuer -serial)" ] &&
	pass "twin certificate: alice's issuer and serial" ||
	fail "twin certificate: alice's issuer and serial" "$(openssl x509 -in twin.pem -noout -issuer -serial)"
for order in twin-first alice-first; do
	if [ $order = twin-first ]; then c="twin.pem $P/alice.pem"; else c="$P/alice.pem twin.pem"; fi
	# shellcheck disable=SC2086
	cat $c > twin-certs.pem
	openssl cms -sign -nocerts -signer twin.pem -inkey "$P/selfsigned.key" \
	    -certfile twin-certs.pem -binary -in ent.txt -out tw.p7s -outform DER 2>/dev/null &&
		wrap_signed ent.txt tw.p7s > tw-$order.eml &&
		expect "twin signer certificate ($order): fail" fail "" tw-$order.eml
done
openssl cms -sign -signer twin.pem -inkey "$P/selfsigned.key" -binary -in ent.txt \
    -out tw.p7s -outform DER 2>/dev/null && wrap_signed ent.txt tw.p7s > tw-known.eml &&
	expect "twin signer certificate, alice's known: fail" fail "" tw-known.eml --certs known.pem
openssl cms -sign -signer "$P/alice.pem" -inkey "$P/alice.key" -certfile "$P/chain.pem" \
    -in ent.txt -out o-smime.eml 2>/dev/null &&
	expect "openssl cms -sign S/MIME (text mode): our verify" pass "" o-smime.eml --from alice@example.com

# ossl_enc NAME CERT [openssl cms -encrypt args]: their envelope, our decrypt.
ossl_enc() {
	n=$1 cert=$2
	shift 2
	if ! openssl cms -encrypt -binary -recip "$cert" "$@" -in ent.txt \
	    -out "oe-$n.der" -outform DER 2> "oe-$n.err"; then
		fail "openssl cms -encrypt $n" "$(lastline "oe-$n.err")"
		return
	fi
	wrap_p7m enveloped-data "oe-$n.der" > "oe-$n.eml"
	if "$T" decrypt --cert "$P/alice.pem" --key "$P/alice.key" \
	    --cert "$cert" --key "${cert%.pem}.key" < "oe-$n.eml" > "oe-$n.out" \
	    2> "oe-$n.err" && grep -q '^this is signed' "oe-$n.out"; then
		pass "openssl cms -encrypt $n: our decrypt"
	else
		fail "openssl cms -encrypt $n: our decrypt" "$(lastline "oe-$n.err")"
	fi
}
ossl_enc aes256-cbc "$P/bob.pem" -aes256
ossl_enc aes256-gcm "$P/bob.pem" -aes-256-gcm
ossl_enc oaep "$P/bob.pem" -aes256 -keyopt rsa_padding_mode:oaep
ossl_enc ec "$P/bob-ec.pem" -aes256
ossl_enc des3 "$P/bob.pem" -des3
ossl_enc aes128-cbc "$P/bob.pem" -aes128
ossl_enc camellia256 "$P/bob.pem" -camellia-256-cbc
ossl_enc keyid "$P/bob.pem" -aes256 -keyid
# reenc DER OUT: bob's RecipientInfo naming his issuer with its strings
# as PrintableString instead of UTF8String (the same name to X.509, not
# the same bytes), or with the content cipher's OID made RC2's (which
# OpenSSL 3 leaves to its legacy provider) when $2 is "rc2".
reenc() {
	PYTHONPATH="$SMIME_PY" python3 - "$1" "$2" "$3" <<'PYEOF'
import sys, der
root, _ = der.parse(open(sys.argv[1], 'rb').read(), 0)
ed = root[1][1][1][0][1]
if sys.argv[3] == "rc2":
    eci = [f for f in ed if f[0] == 0x30][0][1]
    eci[1][1][0][1] = bytes.fromhex("2a864886f70d0302")   # rc2-cbc
else:
    ris = [f for f in ed if f[0] == 0x31][0][1]
    n = 0
    def walk(node):
        global n
        if node[0] == 0x0c:
            node[0] = 0x13
            n += 1
        elif node[0] & 0x20:
            for c in node[1]:
                walk(c)
    for ri in ris:
        walk(ri[1][1][1][0])      # the issuer Name
    assert n > 0, "no UTF8String in the issuer"
open(sys.argv[2], 'wb').write(der.enc(root))
PYEOF
}
reenc oe-aes256-cbc.der re-utf8.der utf8 && wrap_p7m enveloped-data re-utf8.der > re-utf8.eml &&
	"$T" decrypt --cert "$P/bob.pem" --key "$P/bob.key" < re-utf8.eml > re-utf8.out 2> re-utf8.err &&
	grep -q '^this is signed' re-utf8.out &&
	pass "issuer named in PrintableString, certificate's in UTF8String: decrypted" ||
	fail "issuer named in PrintableString, certificate's in UTF8String: decrypted" "$(lastline re-utf8.err)"
reenc oe-aes256-cbc.der re-rc2.der rc2 && wrap_p7m enveloped-data re-rc2.der > re-rc2.eml &&
	! "$T" decrypt --cert "$P/bob.pem" --key "$P/bob.key" < re-rc2.eml > re-rc2.out 2> re-rc2.err &&
	[ ! -s re-rc2.out ] && grep -q 'unsupported content encryption algorithm rc2-cbc' re-rc2.err &&
	pass "RC2 content cipher: refused as unsupported ($(lastline re-rc2.err))" ||
	fail "RC2 content cipher: refused as unsupported" "$(lastline re-rc2.err)"

# --- our envelopes, opened by openssl cms ----------------------------------
for c in "aes256-cbc::rsa" "aes256-gcm:--gcm:rsa" "oaep:--oaep:rsa" \
    "gcm-oaep:--gcm --oaep:rsa" "ec:--to $P/bob-ec.pem:ec"; do
	n=${c%%:*}
	rest=${c#*:}
	o=${rest%:*}
	# shellcheck disable=SC2086
	"$T" encrypt --to "$P/bob.pem" --to "$P/alice.pem" $o < msg.txt > "e-$n.eml" 2> "e-$n.err" ||
		{ fail "encrypt $n" "$(lastline "e-$n.err")"; continue; }
	r=bob
	[ "${rest##*:}" = ec ] && r=bob-ec
	if openssl cms -decrypt -recip "$P/$r.pem" -inkey "$P/$r.key" -in "e-$n.eml" \
	    -out "e-$n.out" 2> "e-$n.oerr" && same_text "e-$n.out" ent.txt; then
		pass "encrypt $n: openssl cms -decrypt"
	else
		fail "encrypt $n: openssl cms -decrypt" "$(lastline "e-$n.oerr")"
	fi
	if "$T" decrypt --cert "$P/$r.pem" --key "$P/$r.key" < "e-$n.eml" > "e-$n.our" 2> "e-$n.err" &&
	    grep -q '^this is signed' "e-$n.our"; then
		pass "encrypt $n: our decrypt"
	else
		fail "encrypt $n: our decrypt" "$(lastline "e-$n.err")"
	fi
done
grep -q 'smime-type=authEnveloped-data' e-aes256-gcm.eml &&
	pass "encrypt gcm: smime-type=authEnveloped-data" ||
	fail "encrypt gcm: smime-type=authEnveloped-data"
openssl cms -cmsout -print -in e-oaep.eml 2>/dev/null | grep -q rsaesOaep &&
	pass "encrypt oaep: RSAES-OAEP key transport" || fail "encrypt oaep: RSAES-OAEP key transport"
# Flip one bit of the GCM tag (the last 16-byte OCTET STRING).
p7m_der e-aes256-gcm.eml gcm.der
python3 -c 'import sys; d=bytearray(open(sys.argv[1],"rb").read()); i=d.rindex(b"\x04\x10"); d[i+5]^=1; open(sys.argv[2],"wb").write(d)' gcm.der gcm-bad.der
wrap_p7m authEnveloped-data gcm-bad.der > gcm-bad.eml
if "$T" decrypt --cert "$P/bob.pem" --key "$P/bob.key" < gcm-bad.eml > gcm-bad.out 2> gcm-bad.err; then
	fail "tampered GCM tag: decrypt refused" "decrypted"
elif [ -s gcm-bad.out ]; then
	fail "tampered GCM tag: decrypt refused" "output written"
else
	pass "tampered GCM tag: decrypt refused ($(lastline gcm-bad.err))"
fi
"$T" decrypt --cert "$P/alice-ec.pem" --key "$P/alice-ec.key" < e-aes256-cbc.eml > /dev/null 2> nokey.err
grep -q 'no private key matches any recipient (recipients: .*smrelay Test Intermediate' nokey.err &&
	pass "decrypt without a matching key: clear error" ||
	fail "decrypt without a matching key: clear error" "$(lastline nokey.err)"
# Bleichenbacher's oracle (RFC 3218 section 2.3): a content key that does
# not unwrap (the right certificate with the wrong key, a random encrypted
# key with bad PKCS#1 padding, a well-padded key of the wrong length) must
# be refused in the same words as a content that does not decrypt (a
# well-padded key of the right length that is not the content's: only
# GCM's tag tells that for sure), nothing written: a sender who can watch
# the answer learns nothing about the padding.
# refused NAME PATTERN OUT ERR: the decryption wrote nothing to OUT and
# said PATTERN (grep) in ERR.
refused() {
	if [ -s "$3" ]; then
		fail "$1" "output written"
	elif grep -q "$2" "$4"; then
		pass "$1 ($(lastline "$4"))"
	else
		fail "$1" "$(lastline "$4")"
	fi
}
openssl x509 -in "$P/bob.pem" -noout -pubkey > bob.pub
# rewrap MSG EKFILE OUT: MSG's envelope with bob's encrypted key replaced.
rewrap() {
	p7m_der "$1" rw.der
	python3 "$SMIME_PY/rewrap.py" rw.der "$2" rw-new.der --serial \
	    "$(openssl x509 -in "$P/bob.pem" -noout -serial | cut -d= -f2)" || return 1
	wrap_p7m "$(sed -n 's/.*smime-type=\([A-Za-z-]*\).*/\1/p' "$1" | head -1)" \
	    rw-new.der > "$3"
}
head -c 16 /dev/urandom > k16
head -c 32 /dev/urandom > k32
openssl pkeyutl -encrypt -pubin -inkey bob.pub -in k16 -out ek16 2>/dev/null
openssl pkeyutl -encrypt -pubin -inkey bob.pub -in k32 -out ek32 2>/dev/null
# 255 random bytes under bob's 2048-bit modulus: no valid padding (the
# chance that they hold one is below 2^-16 per try; the first byte 0x00
# and the second 0x02 are set to make the padding check the one failing)
python3 "$SMIME_PY/rewrap.py" badpad > ekpad
for n in aes256-cbc aes256-gcm; do
	case $n in
	*gcm) want=': decryption failed: authentication tag mismatch$' ;;
	*) want=': decryption failed$' ;;
	esac
	"$T" decrypt --cert "$P/bob.pem" --key "$P/alice.key" < "e-$n.eml" > wk.out 2> wk.err
	refused "$n: bob's certificate, alice's key: refused as a bad content" \
	    "$want" wk.out wk.err
	rewrap "e-$n.eml" ekpad ekpad.eml
	"$T" decrypt --cert "$P/bob.pem" --key "$P/bob.key" < ekpad.eml > kp.out 2> kp.err
	refused "$n: encrypted key with bad padding: refused as a bad content" \
	    "$want" kp.out kp.err
	rewrap "e-$n.eml" ek16 ek-short.eml
	"$T" decrypt --cert "$P/bob.pem" --key "$P/bob.key" < ek-short.eml > ks.out 2> ks.err
	refused "$n: content key of the wrong length: refused as a bad content" \
	    "$want" ks.out ks.err
	if [ "$n" = aes256-gcm ]; then
		rewrap "e-$n.eml" ek32 ek-other.eml
		"$T" decrypt --cert "$P/bob.pem" --key "$P/bob.key" < ek-other.eml > ko.out 2> ko.err
		refused "$n: a well-padded key that is not the content's: refused" \
		    "$want" ko.out ko.err
	fi
	if cmp -s wk.err kp.err && cmp -s kp.err ks.err; then
		pass "$n: the same answer whatever the key's fault"
	else
		fail "$n: the same answer whatever the key's fault" \
		    "$(lastline wk.err) / $(lastline kp.err) / $(lastline ks.err)"
	fi
done
# Sign, then encrypt the whole multipart/signed entity.
"$T" encrypt --to "$P/bob.pem" < s-rsa.eml > se.eml &&
	openssl cms -decrypt -recip "$P/bob.pem" -inkey "$P/bob.key" -in se.eml -out se.inner 2>/dev/null &&
	openssl cms -verify -CAfile "$P/trust.pem" -in se.inner -out se.out 2>/dev/null &&
	same_text se.out ent.txt && pass "sign then encrypt: openssl decrypt + verify" ||
	fail "sign then encrypt: openssl decrypt + verify"
"$T" decrypt --cert "$P/bob.pem" --key "$P/bob.key" < se.eml > se.our 2>/dev/null
expect "sign then encrypt: our decrypt + verify" pass "alice@example.com" se.our

# --- gpgsm -----------------------------------------------------------------
if command -v gpgsm >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then
	gpgsm_home "$P" > /dev/null 2>&1
	gs_import_keys "$P/bob.p12" "$P/alice.p12" 2> g-imp.err || {
		cat g-imp.err
		fail "gpgsm: import p12" "$(lastline g-imp.err)"
	}
	split_signed s-rsa.eml g-c.bin g-s.der
	gs --status-fd 1 --verify g-s.der g-c.bin > g-v.out 2> g-v.err
	grep -q 'GOODSIG' g-v.out && grep -q 'TRUST_FULLY' g-v.out &&
		pass "sign rsa: gpgsm --verify" || fail "sign rsa: gpgsm --verify" "$(lastline g-v.err)"
	p7m_der s-rsa-opaque.eml g-o.der
	gs --status-fd 1 --verify g-o.der > g-vo.out 2> g-vo.err
	grep -q 'GOODSIG' g-vo.out && grep -q 'TRUST_FULLY' g-vo.out &&
		pass "sign rsa-opaque: gpgsm --verify" || fail "sign rsa-opaque: gpgsm --verify" "$(lastline g-vo.err)"
	p7m_der e-aes256-cbc.eml g-e.der
	gs --decrypt g-e.der > g-e.out 2> g-e.err && same_text g-e.out ent.txt &&
		pass "encrypt aes256-cbc: gpgsm --decrypt" ||
		fail "encrypt aes256-cbc: gpgsm --decrypt" "$(lastline g-e.err)"
	gs -u alice@example.com --detach-sign ent.txt > g-det.p7s 2> g-det.err &&
		wrap_signed ent.txt g-det.p7s > g-det.eml &&
		expect "gpgsm --detach-sign: our verify" pass "alice@example.com" g-det.eml ||
		fail "gpgsm --detach-sign" "$(lastline g-det.err)"
	gs -u alice@example.com --sign ent.txt > g-op.der 2> g-op.err &&
		wrap_p7m signed-data g-op.der > g-op.eml &&
		expect "gpgsm --sign (opaque): our verify" pass "alice@example.com" g-op.eml ||
		fail "gpgsm --sign" "$(lastline g-op.err)"
	gs -r bob@partner.example --encrypt ent.txt > g-enc.der 2> g-enc.err &&
		wrap_p7m enveloped-data g-enc.der > g-enc.eml &&
		"$T" decrypt --cert "$P/bob.pem" --key "$P/bob.key" < g-enc.eml > g-enc.out 2> g-enc.err &&
		grep -q '^this is signed' g-enc.out &&
		pass "gpgsm --encrypt: our decrypt" ||
		fail "gpgsm --encrypt: our decrypt" "$(lastline g-enc.err)"
else
	skip "gpgsm cases (gpgsm or python3 not installed)"
fi

# --- NSS cmsutil -----------------------------------------------------------
if command -v cmsutil >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then
	mkdir "$N"
	db="sql:$N"
	certutil -N --empty-password -d "$db" &&
	    certutil -A -d "$db" -n testroot -t "C,C,C" -i "$P/ca.pem" &&
	    certutil -A -d "$db" -n testint -t ",," -i "$P/int.pem" &&
	    pk12util -i "$P/bob.p12" -d "$db" -W '' > /dev/null 2>&1 &&
	    pk12util -i "$P/alice.p12" -d "$db" -W '' > /dev/null 2>&1 ||
		fail "nss: database setup"
	alice=$(certutil -L -d "$db" | sed -n 's/^\(alice[^ ]*\( [^ ,]\{1,\}\)*\) \{2,\}u,u,u.*/\1/p')
	split_signed s-rsa.eml n-c.bin n-s.der
	cmsutil -D -i n-s.der -c n-c.bin -d "$db" -u 4 -n -h 1 > n-v.out 2> n-v.err &&
	    grep -q 'signer0.status=GoodSignature' n-v.out &&
		pass "sign rsa: cmsutil -D" || fail "sign rsa: cmsutil -D" "$(lastline n-v.err)"
	p7m_der s-ec-opaque.eml n-o.der
	cmsutil -D -i n-o.der -d "$db" -u 4 -h 1 > n-vo.out 2> n-vo.err &&
	    grep -q 'signer0.status=GoodSignature' n-vo.out &&
		pass "sign ec-opaque: cmsutil -D" || fail "sign ec-opaque: cmsutil -D" "$(lastline n-vo.err)"
	p7m_der e-aes256-cbc.eml n-e.der
	cmsutil -D -i n-e.der -d "$db" -p '' > n-e.out 2> n-e.err && same_text n-e.out ent.txt &&
		pass "encrypt aes256-cbc: cmsutil -D" ||
		fail "encrypt aes256-cbc: cmsutil -D" "$(lastline n-e.err)"
	cmsutil -S -N "$alice" -T -G -P -H SHA256 -i ent.txt -o n-det.p7s -d "$db" -p '' 2> n-det.err &&
		wrap_signed ent.txt n-det.p7s > n-det.eml &&
		expect "cmsutil -S detached: our verify" pass "alice@example.com" n-det.eml ||
		fail "cmsutil -S detached" "$(lastline n-det.err)"
	cmsutil -S -N "$alice" -G -P -H SHA256 -i ent.txt -o n-op.der -d "$db" -p '' 2> n-op.err &&
		wrap_p7m signed-data n-op.der > n-op.eml &&
		expect "cmsutil -S opaque: our verify" pass "alice@example.com" n-op.eml ||
		fail "cmsutil -S opaque" "$(lastline n-op.err)"
	cmsutil -E -r bob@partner.example -i ent.txt -o n-enc.der -d "$db" 2> n-enc.err &&
		wrap_p7m enveloped-data n-enc.der > n-enc.eml &&
		"$T" decrypt --cert "$P/bob.pem" --key "$P/bob.key" < n-enc.eml > n-enc.out 2> n-enc.err &&
		grep -q '^this is signed' n-enc.out &&
		pass "cmsutil -E: our decrypt" || fail "cmsutil -E: our decrypt" "$(lastline n-enc.err)"
else
	skip "NSS cases (cmsutil or python3 not installed)"
fi

# --- a 50 MB entity: streamed, bounded memory ------------------------------
{ printf 'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n'
  head -c 48700000 /dev/zero | tr '\0' 'a' | fold -w 76 | sed 's/$/\r/'; } > big.ent
asan=0
if ldd "$T" 2>/dev/null | grep -q 'libasan'; then asan=1; fi
# rss NAME FILE: maxrss_kb from the tool's --stats line, checked when no ASan.
rss() {
	kb=$(sed -n 's/^maxrss_kb=//p' "$2")
	if [ -z "$kb" ]; then
		fail "$1" "no stats"
	elif [ $asan -eq 1 ]; then
		pass "$1 (${kb} kB, bound not checked under ASan)"
	elif [ "$kb" -lt 150000 ]; then
		pass "$1 (${kb} kB)"
	else
		fail "$1" "${kb} kB"
	fi
}
if "$T" sign --raw --stats --cert "$P/alice.pem" --key "$P/alice.key" \
    --chain "$P/chain.pem" < big.ent > big.signed 2> big.err; then
	rss "sign 50 MB: peak RSS under 150 MB" big.err
	expect "sign 50 MB: our verify" pass "" big.signed --from alice@example.com
else
	fail "sign 50 MB" "$(lastline big.err)"
fi
rm -f big.signed
if "$T" encrypt --raw --stats --to "$P/bob.pem" < big.ent > big.enc 2> big.err; then
	rss "encrypt 50 MB: peak RSS under 150 MB" big.err
	head -c 2000 big.enc | grep -q 'enveloped-data' &&
		pass "encrypt 50 MB: envelope written" || fail "encrypt 50 MB: envelope written"
else
	fail "encrypt 50 MB" "$(lastline big.err)"
fi

if [ $fails -ne 0 ]; then
	echo "t_interop.sh: $fails case(s) failed"
	exit 1
fi
exit 0
