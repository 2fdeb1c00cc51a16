# tests/revocation/pki.sh: a CA hierarchy made with `openssl ca`, in the
# current directory, for the revocation tests and bench/revocation.sh
# (sourced; $O names openssl).
#
#   ca_setup H [SUBJ]  ca_cnf H; the root (ca.pem, database root.db), the
#                    issuing CA (int.pem) and the OCSP CA (ocspca.pem), both
#                    publishing their CRL at H/root.crl (H empty: naming no
#                    CRL); the OCSP CA's delegated responder (responder.pem,
#                    id-kp-OCSPSigning); the key every leaf and the
#                    responder share (leaf.key).  The CAs' subjects are
#                    SUBJ Root, SUBJ Issuing CA, SUBJ OCSP CA (SUBJ:
#                    "/O=crlfetch test/CN=Fetch")
#   ca_cnf [H]       ca.cnf (sections v3_root, v3_int: a CA whose CRL is at
#                    H/root.crl, v3_responder), newcerts/ and www/
#   leafext NAME URL an extension section v3_NAME: a leaf whose CRL is at URL
#   ocspext NAME URL an extension section v3_NAME: a leaf with no CRL whose
#                    OCSP responder is URL (Authority Information Access)
#   leaf NAME EXT EMAIL      NAME.pem issued by int with section v3_EXT
#   ocspleaf NAME EXT EMAIL  NAME.pem issued by the OCSP CA
#   issue CADB CACERT CAKEY NAME EXT EMAIL  the same from any CA
#   selfca NAME SUBJECT  a self-signed CA: NAME.pem, NAME.key, NAME.db
#   server NAME SAN CA   NAME.pem, a TLS server certificate (serverAuth,
#                    subjectAltName SAN, e.g. IP:127.0.0.1) for server.key
#                    (EC P-256, made on first use), issued by selfca CA
#   cacrl CADB CACERT CAKEY NAME  the CA's CRL, NAME.crl.pem and, DER,
#                    www/NAME.crl
#   ca_crls          the issuing CA's and the root's CRLs, DER, in www/
#
# Revoke with `CADB=int.db $O ca -config ca.cnf -cert int.pem -keyfile
# int.key -revoke F` (ocspca.db for the OCSP CA) before ca_crls.
O=${O:-openssl}

# The extensions every leaf has (emailProtection, its address copied).
LEAF_EXT='basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:copy'

leafext() {
	printf '[ v3_%s ]\n%s\ncrlDistributionPoints = URI:%s\n' "$1" "$LEAF_EXT" "$2" >> ca.cnf
}
ocspext() {
	printf '[ v3_%s ]\n%s\nauthorityInfoAccess = OCSP;URI:%s\n' "$1" "$LEAF_EXT" "$2" >> ca.cnf
}

# sign CADB CACERT CAKEY KEY SUBJECT EXT NAME: NAME.pem for KEY, with
# section v3_EXT
sign() {
	$O req -new -key "$4" -subj "$5" -config ca.cnf -out "$7.csr" &&
	CADB=$1 $O ca -batch -config ca.cnf -cert "$2" -keyfile "$3" \
		-extensions "v3_$6" -days 30 -in "$7.csr" -out "$7.pem" 2>/dev/null
}
# issue CADB CACERT CAKEY NAME EXT EMAIL: NAME.pem for leaf.key
issue() { sign "$1" "$2" "$3" leaf.key "/CN=$4/emailAddress=$6" "$5" "$4"; }
leaf() { issue int.db int.pem int.key "$@"; }
ocspleaf() { issue ocspca.db ocspca.pem ocspca.key "$@"; }

# a key for each CA (RSA 2048, as CAs have)
cakey() {
	$O genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
}

# cadb NAME: an empty database NAME.db for `openssl ca`
cadb() {
	: > "$1.db" && echo 1000 > "$1.db.serial" && echo 1000 > "$1.db.crlnum"
}

ca_cnf() {
	mkdir -p newcerts www
	cat > ca.cnf <<CNF
[ ca ]
default_ca = sub
[ sub ]
dir = .
database = \$dir/\$ENV::CADB
new_certs_dir = \$dir/newcerts
serial = \$dir/\$ENV::CADB.serial
crlnumber = \$dir/\$ENV::CADB.crlnum
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
default_crl_days = 30
[ any ]
commonName = supplied
emailAddress = optional
organizationName = optional
[ req ]
distinguished_name = dn
[ dn ]
[ v3_root ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_int ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
${1:+crlDistributionPoints = URI:$1/root.crl}
[ v3_responder ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
CNF
	CADB=root.db
	export CADB
}

ca_setup() {
	_subj=${2:-/O=crlfetch test/CN=Fetch}
	ca_cnf "$1" && cadb root && cadb int && cadb ocspca &&
	cakey ca.key && cakey int.key && cakey ocspca.key && cakey leaf.key &&
	$O req -new -x509 -key ca.key -subj "$_subj Root" -days 30 \
		-config ca.cnf -extensions v3_root -out ca.pem &&
	sign root.db ca.pem ca.key int.key "$_subj Issuing CA" int int &&
	sign root.db ca.pem ca.key ocspca.key "$_subj OCSP CA" int ocspca &&
	ocspleaf responder responder ocsp@example.com
}

selfca() {
	cadb "$1" && cakey "$1.key" &&
	$O req -new -x509 -key "$1.key" -subj "$2" -days 30 -config ca.cnf \
		-extensions v3_root -out "$1.pem"
}

server() {
	[ -s server.key ] || $O genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out server.key 2>/dev/null || return 1
	printf '[ v3_%s ]\nbasicConstraints = CA:false\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\nsubjectAltName = %s\n' \
		"$1" "$2" >> ca.cnf &&
	sign "$3.db" "$3.pem" "$3.key" server.key "/CN=$1" "$1" "$1"
}

cacrl() {
	CADB=$1 $O ca -config ca.cnf -cert "$2" -keyfile "$3" -gencrl \
		-out "$4.crl.pem" 2>/dev/null &&
	$O crl -in "$4.crl.pem" -outform DER -out "www/$4.crl"
}

ca_crls() {
	cacrl int.db int.pem int.key int && cacrl root.db ca.pem ca.key root
}
