#!/bin/sh
# tests/smime/pki.sh DIR: a test PKI for S/MIME made with the openssl program.
#   ca.pem (root), int.pem (intermediate), chain.pem (int), trust.pem (root)
#   alice.{pem,key}        RSA, alice@example.com, emailProtection
#   dora.{pem,key}         RSA, dora@xn--mller-kva.example (müller.example)
#   alice-ec.{pem,key}     EC P-256, alice@example.com
#   bob.{pem,key,p12}      RSA, bob@partner.example
#   bob-ec.{pem,key}       EC P-256, bob@partner.example
#   expired.{pem,key}      alice@example.com, validity over in 2020
#   revoked.{pem,key}      alice@example.com, revoked; crl.pem (both CRLs)
#   erin-revoked.{pem,key} erin@partner.example, revoked (a partner to
#                          refuse encrypting to)
#   noeku.{pem,key}        alice@example.com, serverAuth only
#   selfsigned.{pem,key}   alice@example.com, not under our root
# The p12 files have an empty password and 3DES PBE (gpgsm 2.2 reads no AES).
set -eu
D=$1
mkdir -p "$D"
cd "$D"
O="openssl"
CADB=root.db
export CADB

cat > ca.cnf <<'EOF'
[ ca ]
default_ca = sub
[ sub ]
dir = .
database = $dir/$ENV::CADB
new_certs_dir = $dir/newcerts
serial = $dir/$ENV::CADB.serial
crlnumber = $dir/$ENV::CADB.crlnum
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
default_crl_days = 30
[ any ]
commonName = supplied
emailAddress = optional
organizationName = optional
[ v3_int ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_user ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment, keyAgreement
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:copy
[ v3_noeku ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = email:copy
[ req ]
distinguished_name = dn
[ dn ]
[ v3_root ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_self ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:alice@example.com
EOF
mkdir -p newcerts
for db in root int; do
	: > $db.db
	echo 1000 > $db.db.serial
	echo 1000 > $db.db.crlnum
done

rsa() { $O genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
ec() { $O genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# Root (self-signed) and intermediate.
rsa ca.key
$O req -new -x509 -key ca.key -subj "/O=smrelay test/CN=smrelay Test Root" \
	-days 3650 -config ca.cnf -extensions v3_root -out ca.pem
rsa int.key
$O req -new -key int.key -subj "/O=smrelay test/CN=smrelay Test Intermediate" \
	-config ca.cnf -out int.csr
CADB=root.db $O ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key \
	-extensions v3_int -days 3000 -in int.csr -out int.pem 2>/dev/null

# user NAME KEYTYPE EMAIL EXT [ca options...]
user() {
	n=$1 kt=$2 mail=$3 ext=$4
	shift 4
	$kt "$n.key"
	$O req -new -key "$n.key" -subj "/CN=$n/emailAddress=$mail" \
		-config ca.cnf -out "$n.csr"
	CADB=int.db $O ca -batch -config ca.cnf -cert int.pem -keyfile int.key \
		-extensions "$ext" -in "$n.csr" -out "$n.pem" "$@" 2>/dev/null
}
user alice rsa alice@example.com v3_user -days 825
user alice-ec ec alice@example.com v3_user -days 825
user bob rsa bob@partner.example v3_user -days 825
user bob-ec ec bob@partner.example v3_user -days 825
user expired rsa alice@example.com v3_user \
	-startdate 20190101000000Z -enddate 20200101000000Z
user revoked rsa alice@example.com v3_user -days 825
user noeku rsa alice@example.com v3_noeku -days 825
user erin-revoked rsa erin@partner.example v3_user -days 825
# an internationalized domain (müller.example), in A-labels as RFC 5280
# 7.5 wants it in a certificate
user dora rsa dora@xn--mller-kva.example v3_user -days 825

CADB=int.db $O ca -config ca.cnf -cert int.pem -keyfile int.key \
	-revoke revoked.pem -crl_reason keyCompromise 2>/dev/null
CADB=int.db $O ca -config ca.cnf -cert int.pem -keyfile int.key \
	-revoke erin-revoked.pem -crl_reason keyCompromise 2>/dev/null
CADB=int.db $O ca -config ca.cnf -cert int.pem -keyfile int.key \
	-gencrl -out int.crl 2>/dev/null
CADB=root.db $O ca -config ca.cnf -cert ca.pem -keyfile ca.key \
	-gencrl -out root.crl 2>/dev/null
cat int.crl root.crl > crl.pem

rsa selfsigned.key
$O req -new -x509 -key selfsigned.key -days 825 -config ca.cnf \
	-subj "/CN=selfsigned/emailAddress=alice@example.com" \
	-extensions v3_self -out selfsigned.pem

cp int.pem chain.pem
cp ca.pem trust.pem
for n in alice bob; do
	$O pkcs12 -export -in "$n.pem" -inkey "$n.key" -certfile int.pem \
		-keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 \
		-passout pass: -out "$n.p12"
done
echo "pki.sh: test PKI in $D"
