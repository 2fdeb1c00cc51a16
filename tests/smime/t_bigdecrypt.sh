#!/bin/sh
# tests/smime/t_bigdecrypt.sh: streaming decryption (proto/cms.c,
# smime_decrypt) of a 20 MB entity enveloped by real peers in each of the
# encodings they write: openssl cms -encrypt -stream (indefinite-length BER,
# 4 KB chunks, CBC and GCM), openssl cms without -stream (DER, one
# primitive content), gpgsm and NSS cmsutil; the same envelope re-encoded
# with nested, empty and one-byte chunks; truncated and tampered envelopes
# refused.  The decrypted entity must equal the original byte for byte.
# Prints PASS/FAIL/SKIP per case; exits 1 when a case failed.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
T=${SMIME_TOOL:-$PWD/tests/smime/smime_tool}
W=$(mktemp -d "${TMPDIR:-/tmp}/smime-bigdec.XXXXXX") || exit 99
G=$W/gnupg
N=$W/nss
. "$srcdir/tests/smime/common.sh"

command -v openssl >/dev/null 2>&1 || { echo "SKIP: no openssl program"; exit 77; }
[ -x "$T" ] || { echo "FAIL: smime_tool not built at $T"; exit 1; }
make_pki

# The entity: 20 MB of base64 lines (random, so no two chunks alike).
{ printf 'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n'
  head -c 15000000 /dev/urandom | base64 -w 76 | sed 's/$/\r/'; } > ent
HDR='From: Alice <alice@example.com>\r\nTo: bob@partner.example\r\n'
{ printf "$HDR"; printf 'MIME-Version: 1.0\r\n'; cat ent; } > want

# opens NAME TYPE DER [KEY]: our decrypt of DER gives back the entity.
opens() {
	_k=${4:-bob}
	wrap_p7m "$2" "$3" > "$1.eml"
	if "$T" decrypt --cert "$P/$_k.pem" --key "$P/$_k.key" < "$1.eml" \
	    > "$1.out" 2> "$1.err" && cmp -s "$1.out" want; then
		pass "$1: our decrypt, content equal"
	elif [ -s "$1.err" ]; then
		fail "$1: our decrypt" "$(lastline "$1.err")"
	else
		fail "$1: our decrypt" "content differs"
	fi
	rm -f "$1.eml" "$1.out"
}
# refused NAME TYPE DER: our decrypt of DER fails and writes nothing.
refused() {
	wrap_p7m "$2" "$3" > "$1.eml"
	if "$T" decrypt --cert "$P/bob.pem" --key "$P/bob.key" < "$1.eml" \
	    > "$1.out" 2> "$1.err"; then
		fail "$1: refused" "decrypted"
	elif [ -s "$1.out" ]; then
		fail "$1: refused" "output written"
	elif grep -q 'Sanitizer\|runtime error:' "$1.err"; then
		fail "$1: refused" "$(grep -m1 'SUMMARY\|runtime error:' "$1.err")"
	else
		pass "$1: refused ($(lastline "$1.err"))"
	fi
	rm -f "$1.eml" "$1.out"
}
# encoding NAME DER WHAT: the first bytes of the content show its form.
encoding() {
	if openssl asn1parse -inform DER -dlimit 4 -in "$2" 2>/dev/null | grep -q "$3"; then
		pass "$1: envelope is $4"
	else
		fail "$1: envelope is $4"
	fi
}

# --- openssl cms -------------------------------------------------------------
ossl() {
	_n=$1
	shift
	openssl cms -encrypt -binary -in ent -outform DER -out "$_n.der" \
	    -recip "$P/bob.pem" "$@" 2> "$_n.oerr" || { fail "$_n: openssl cms -encrypt" "$(lastline "$_n.oerr")"; return 1; }
}
ossl o-stream -stream -aes256 &&
	encoding o-stream o-stream.der 'l=inf  *cons: cont \[ 0 \]' "indefinite-length, chunked" &&
	opens o-stream enveloped-data o-stream.der
ossl o-der -aes256 &&
	encoding o-der o-der.der 'prim: cont \[ 0 \]' "DER, one primitive content" &&
	opens o-der enveloped-data o-der.der
ossl o-gcm -stream -aes-256-gcm &&
	opens o-gcm authEnveloped-data o-gcm.der
ossl o-oaep -stream -aes128 -keyopt rsa_padding_mode:oaep &&
	opens o-oaep enveloped-data o-oaep.der
openssl cms -encrypt -binary -stream -aes256 -in ent -outform DER -out o-ec.der \
    "$P/bob-ec.pem" 2> o-ec.oerr &&
	opens o-ec enveloped-data o-ec.der bob-ec ||
	fail "o-ec: openssl cms -encrypt (EC recipient)" "$(lastline o-ec.oerr)"

# --- the same envelopes, re-encoded or damaged ------------------------------
# rechunk IN OUT: every length definite, the content a constructed [0]
# holding a nested indefinite-length constructed OCTET STRING with an empty
# and one-byte chunks, then chunks of odd sizes (X.690 8.7.3).
rechunk() {
	python3 - "$1" "$2" <<'EOF'
import sys
d = open(sys.argv[1], 'rb').read()
def parse(i):
    """((tag, bytes or list of elements), next offset) of the BER at i."""
    t = i
    i += 1
    if d[t] & 0x1f == 0x1f:
        while d[i] & 0x80:
            i += 1
        i += 1
    tag, l = d[t:i], d[i]
    i += 1
    if l == 0x80:
        kids = []
        while d[i:i + 2] != b'\0\0':
            k, i = parse(i)
            kids.append(k)
        return (tag, kids), i + 2
    if l & 0x80:
        n = l & 0x7f
        l, i = int.from_bytes(d[i:i + n], 'big'), i + n
    if not tag[0] & 0x20:
        return (tag, d[i:i + l]), i + l
    kids, j = [], i
    while j < i + l:
        k, j = parse(j)
        kids.append(k)
    return (tag, kids), i + l
def enc(n):
    """DER-style definite lengths; a None tag is raw bytes."""
    tag, v = n
    if tag is None:
        return v
    if isinstance(v, list):
        v = b''.join(enc(k) for k in v)
    if len(v) < 0x80:
        return tag + bytes([len(v)]) + v
    b = len(v).to_bytes((len(v).bit_length() + 7) // 8, 'big')
    return tag + bytes([0x80 | len(b)]) + b + v
def payload(n):
    return b''.join(payload(k) for k in n[1]) if isinstance(n[1], list) else n[1]
root, _ = parse(0)
env = root[1][1][1][0]
eci = [k for k in env[1] if k[0] == b'\x30'][0]
data = payload(eci[1][2])
nested = b'\x24\x80' + enc((b'\x04', data[:1])) + enc((b'\x04', b'')) + \
    enc((b'\x04', data[1:1000])) + b'\0\0'
rest = [(b'\x04', data[i:i + 3001]) for i in range(1000, len(data), 3001)]
eci[1][2] = (b'\xa0', [(None, nested)] + rest)
open(sys.argv[2], 'wb').write(enc(root))
EOF
}
if command -v python3 >/dev/null 2>&1 && [ -f o-stream.der ]; then
	if rechunk o-stream.der re.der 2> re.err; then
		encoding re re.der 'l=inf  *cons: OCTET STRING' "nested chunks, definite outer"
		opens re enveloped-data re.der
	else
		fail "re: re-encoding" "$(lastline re.err)"
	fi
else
	skip "re-encoded envelope (python3 not installed)"
fi
if [ -f o-stream.der ]; then
	sz=$(wc -c < o-stream.der)
	head -c $((sz - 2)) o-stream.der > cut-eoc.der
	refused "cut-eoc" enveloped-data cut-eoc.der
	head -c $((sz / 2)) o-stream.der > cut-half.der
	refused "cut-half" enveloped-data cut-half.der
fi
if [ -f o-gcm.der ]; then
	# Flip one bit in the middle of the GCM ciphertext.
	python3 -c 'import sys; d=bytearray(open(sys.argv[1],"rb").read()); d[len(d)//2]^=1; open(sys.argv[2],"wb").write(d)' \
	    o-gcm.der gcm-bad.der 2>/dev/null &&
		refused "gcm-bad" authEnveloped-data gcm-bad.der
fi

# --- gpgsm -------------------------------------------------------------------
if command -v gpgsm >/dev/null 2>&1; then
	mkdir -m 700 "$G"
	printf 'disable-crl-checks\n' > "$G/gpgsm.conf"
	gs() { GNUPGHOME=$G gpgsm --batch "$@"; }
	gs --import "$P/ca.pem" "$P/int.pem" "$P/bob.pem" > /dev/null 2>&1
	openssl x509 -in "$P/ca.pem" -noout -fingerprint -sha1 | cut -d= -f2 | sed 's/$/ S/' > "$G/trustlist.txt"
	if gs -r bob@partner.example --encrypt ent > g.der 2> g.err; then
		encoding gpgsm g.der 'l=inf  *cons: cont \[ 0 \]' "indefinite-length, chunked"
		opens gpgsm enveloped-data g.der
	else
		fail "gpgsm --encrypt" "$(lastline g.err)"
	fi
else
	skip "gpgsm cases (gpgsm not installed)"
fi

# --- NSS cmsutil -------------------------------------------------------------
if command -v cmsutil >/dev/null 2>&1 && command -v certutil >/dev/null 2>&1; then
	mkdir "$N"
	db="sql:$N"
	if certutil -N --empty-password -d "$db" &&
	    certutil -A -d "$db" -n testroot -t "C,C,C" -i "$P/ca.pem" &&
	    certutil -A -d "$db" -n testint -t ",," -i "$P/int.pem" &&
	    certutil -A -d "$db" -n bob -t ",," -i "$P/bob.pem"; then
		if cmsutil -E -r bob@partner.example -i ent -o n.der -d "$db" 2> n.err; then
			opens cmsutil enveloped-data n.der
		else
			fail "cmsutil -E" "$(lastline n.err)"
		fi
	else
		fail "nss: database setup"
	fi
else
	skip "NSS cases (cmsutil not installed)"
fi

if [ $fails -ne 0 ]; then
	echo "t_bigdecrypt.sh: $fails case(s) failed"
	exit 1
fi
exit 0
