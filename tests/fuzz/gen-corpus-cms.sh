#!/bin/sh
# gen-corpus-cms.sh [DIR]: remake the seed corpus of fuzz_cms (default
# tests/fuzz/corpus_cms next to this script) with openssl cms: enveloped
# data (AES-CBC, 3DES, AES-GCM AuthEnveloped, RSA-OAEP, ECDH, by key id) for a certificate
# named like the harness's identity ("CN=smrelay fuzz", serial 1), and
# signed data (opaque, detached over the harness's fixed entity, RSA-PSS,
# ECDSA).  Seeds are DER, a few kB each.  Only the seeds are kept.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/corpus_cms}
W=$(mktemp -d /tmp/corpus-cms.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$out"
cd "$W"

# Keys and self-signed certificates; "fuzz" has the harness's name and
# serial, so its RecipientInfos match the harness's certificate.  Signers
# have other names: a signer known under the harness's name would be
# looked up as the harness's certificate, whose key differs.
cert() {
	openssl req -x509 -new -key "$1.key" -subj "$2" -set_serial 1 \
	    -days 3650 -addext "subjectAltName=email:fuzz@example.com" \
	    -out "$1.crt" 2>/dev/null
}
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out fuzz.key 2>/dev/null
cert fuzz "/CN=smrelay fuzz"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key 2>/dev/null
cert ec "/CN=smrelay fuzz ec"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out signer.key 2>/dev/null
cert signer "/CN=smrelay fuzz signer"

printf 'Content-Type: text/plain\r\n\r\nfuzz\r\n' >entity
enc() {
	name=$1
	shift
	openssl cms -encrypt -binary -in entity -outform DER -out "$out/$name" "$@"
}
enc env-aes256cbc -aes-256-cbc -recip fuzz.crt
enc env-aes128cbc -aes-128-cbc -recip fuzz.crt -recip ec.crt
enc authenv-aes256gcm -aes-256-gcm -recip fuzz.crt
enc env-oaep -aes-256-cbc -recip fuzz.crt -keyopt rsa_padding_mode:oaep
enc env-ecdh -aes-256-cbc -recip ec.crt
enc env-des3 -des3 -recip fuzz.crt
enc env-keyid -aes-256-cbc -keyid -recip fuzz.crt

sig() {
	name=$1
	shift
	openssl cms -sign -binary -md sha256 -in entity -outform DER \
	    -out "$out/$name" "$@"
}
sig signed-detached -signer signer.crt -inkey signer.key
sig signed-opaque -nodetach -signer signer.crt -inkey signer.key
sig signed-pss -signer signer.crt -inkey signer.key -keyopt rsa_padding_mode:pss
sig signed-ecdsa -signer ec.crt -inkey ec.key
sig signed-nocerts -nocerts -signer fuzz.crt -inkey fuzz.key
ls -l "$out"
