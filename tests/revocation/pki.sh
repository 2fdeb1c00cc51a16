# tests/revocation/pki.sh: a CA hierarchy made with `openssl ca`, in the
# current directory, for the revocation tests (sourced; $O names openssl).
#
#   ca_setup H       ca.cnf; the root (ca.pem), the issuing CA (int.pem) and
#                    the OCSP CA (ocspca.pem), both publishing their CRL
#                    at H/root.crl; the OCSP CA's delegated responder
#                    (responder.pem, id-kp-OCSPSigning); the key every leaf
#                    and the responder share (leaf.key)
#   leafext NAME URL an extension section v3_NAME: a leaf whose CRL is at URL
#   ocspext NAME URL an extension section v3_NAME: a leaf with no CRL whose
#                    OCSP responder is URL (Authority Information Access)
#   leaf NAME EXT EMAIL      NAME.pem issued by int with section v3_EXT
#   ocspleaf NAME EXT EMAIL  NAME.pem issued by the OCSP CA
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

# issue CADB CACERT CAKEY NAME EXT EMAIL: NAME.pem for leaf.key
issue() {
	$O req -new -key leaf.key -subj "/CN=$4/emailAddress=$6" -config ca.cnf -out "$4.csr" &&
	CADB=$1 $O ca -batch -config ca.cnf -cert "$2" -keyfile "$3" \
		-extensions "v3_$5" -days 30 -in "$4.csr" -out "$4.pem" 2>/dev/null
}
leaf() { issue int.db int.pem int.key "$@"; }
ocspleaf() { issue ocspca.db ocspca.pem ocspca.key "$@"; }

# a key for each CA (RSA 2048, as CAs have)
cakey() {
	$O genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
}

ca_setup() {
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
crlDistributionPoints = URI:$1/root.crl
[ v3_responder ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
CNF
	for db in root int ocspca; do
		: > $db.db; echo 1000 > $db.db.serial; echo 1000 > $db.db.crlnum
	done
	CADB=root.db
	export CADB
	cakey ca.key && cakey int.key && cakey ocspca.key && cakey leaf.key &&
	$O req -new -x509 -key ca.key -subj "/O=crlfetch test/CN=Fetch Root" -days 30 \
		-config ca.cnf -extensions v3_root -out ca.pem &&
	$O req -new -key int.key -subj "/O=crlfetch test/CN=Fetch Issuing CA" \
		-config ca.cnf -out int.csr &&
	CADB=root.db $O ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key \
		-extensions v3_int -days 30 -in int.csr -out int.pem 2>/dev/null &&
	$O req -new -key ocspca.key -subj "/O=crlfetch test/CN=Fetch OCSP CA" \
		-config ca.cnf -out ocspca.csr &&
	CADB=root.db $O ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key \
		-extensions v3_int -days 30 -in ocspca.csr -out ocspca.pem 2>/dev/null &&
	ocspleaf responder responder ocsp@example.com
}

ca_crls() {
	CADB=int.db $O ca -config ca.cnf -cert int.pem -keyfile int.key -gencrl \
		-out int.crl.pem 2>/dev/null &&
	CADB=root.db $O ca -config ca.cnf -cert ca.pem -keyfile ca.key -gencrl \
		-out root.crl.pem 2>/dev/null &&
	$O crl -in int.crl.pem -outform DER -out www/int.crl &&
	$O crl -in root.crl.pem -outform DER -out www/root.crl
}
