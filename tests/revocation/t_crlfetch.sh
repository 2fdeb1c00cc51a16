#!/bin/sh
# tests/revocation/t_crlfetch.sh: `smrelayctl crl fetch` against a CA
# hierarchy made with `openssl ca` (root -> intermediate -> leaves) whose
# certificates name HTTP CRL distribution points, served by
# `python3 -m http.server`; and against distribution points that misbehave
# (badhttp.py: slow, endless, garbage, redirect loop, 404; a closed port,
# a non-http URL, our own listener, a CRL forged under the intermediate's
# name).  Then revocation decided with no manual import.  Prints PASS/FAIL
# per case; exits 1 when one failed.
set -u
srcdir=$(cd "${srcdir:-$(dirname "$0")/../..}" && pwd)
CTL=${SMRELAYCTL:-$PWD/smrelayctl}
DAEMON=${SMRELAYD:-$PWD/smrelayd}
W=$(mktemp -d "${TMPDIR:-/tmp}/crlfetch.XXXXXX") || exit 99
G=$W/gnupg
pids=""
. "$srcdir/tests/smime/common.sh"
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; cleanup' EXIT

command -v openssl >/dev/null 2>&1 || { echo "SKIP: no openssl"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
[ -x "$CTL" ] || { echo "FAIL: smrelayctl not built at $CTL"; exit 1; }
cd "$W" || exit 1

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_port PORT: until something accepts on it (at most 10 s).
wait_port() {
	python3 - "$1" <<'PY'
import socket, sys, time
end = time.time() + 10
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}
# wait_log FILE TEXT: until FILE has TEXT (at most 10 s).
wait_log() {
	python3 - "$1" "$2" <<'PY'
import sys, time
end = time.time() + 10
while time.time() < end:
    try:
        if sys.argv[2] in open(sys.argv[1]).read():
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(1)
PY
}
HPORT=$(free_port)
BPORT=$(free_port)
DPORT=$(free_port)      # nothing listens there
LPORT=$(free_port)      # our (configured) SMTP listener
OPORT=$(free_port)      # openssl ocsp, the OCSP CA's responder
FPORT=$(free_port)      # openssl ocsp signing with a key nobody delegated
H=http://127.0.0.1:$HPORT
B=http://127.0.0.1:$BPORT

# --- the CA hierarchy -----------------------------------------------------
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
crlDistributionPoints = URI:$H/root.crl
CNF
# a leaf section per distribution point
leafext() {
	printf '[ v3_%s ]\nbasicConstraints = CA:false\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = emailProtection\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\nsubjectAltName = email:copy\ncrlDistributionPoints = URI:%s\n' "$1" "$2" >> ca.cnf
}
leafext good "$H/int.crl"
leafext slow "$B/slow.crl"
leafext huge "$B/huge.crl"
leafext garbage "$B/garbage.crl"
leafext loop "$B/loop.crl"
leafext missing "$B/missing.crl"
leafext down "http://127.0.0.1:$DPORT/int.crl"
leafext ftp "ftp://127.0.0.1/int.crl"
leafext self "http://127.0.0.1:$LPORT/int.crl"
leafext forged "$H/forged.crl"
# an issuing CA that publishes no CRL but answers OCSP, through a
# delegated responder (id-kp-OCSPSigning)
printf '[ v3_ocspleaf ]\nbasicConstraints = CA:false\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = emailProtection\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\nsubjectAltName = email:copy\nauthorityInfoAccess = OCSP;URI:http://127.0.0.1:%s/\n' "$OPORT" >> ca.cnf
printf '[ v3_ocspforged ]\nbasicConstraints = CA:false\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = emailProtection\nsubjectAltName = email:copy\nauthorityInfoAccess = OCSP;URI:http://127.0.0.1:%s/\n' "$FPORT" >> ca.cnf
printf '[ v3_responder ]\nbasicConstraints = CA:false\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = OCSPSigning\n' >> ca.cnf
printf '[ v3_ocspgarbage ]\nbasicConstraints = CA:false\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = emailProtection\nsubjectAltName = email:copy\nauthorityInfoAccess = OCSP;URI:%s/garbage.crl\n' "$B" >> ca.cnf
for db in root int rogue ocspca; do : > $db.db; echo 1000 > $db.db.serial; echo 1000 > $db.db.crlnum; done
O="openssl"
CADB=root.db
export CADB
$O genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ca.key 2>/dev/null
$O req -new -x509 -key ca.key -subj "/O=crlfetch test/CN=Fetch Root" -days 30 \
	-config ca.cnf -extensions v3_root -out ca.pem
$O genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out int.key 2>/dev/null
$O req -new -key int.key -subj "/O=crlfetch test/CN=Fetch Issuing CA" -config ca.cnf -out int.csr
CADB=root.db $O ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key \
	-extensions v3_int -days 30 -in int.csr -out int.pem 2>/dev/null
$O genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out leaf.key 2>/dev/null
# leaf NAME EXT EMAIL
leaf() {
	$O req -new -key leaf.key -subj "/CN=$1/emailAddress=$3" -config ca.cnf -out "$1.csr" &&
	CADB=int.db $O ca -batch -config ca.cnf -cert int.pem -keyfile int.key \
		-extensions "v3_$2" -days 30 -in "$1.csr" -out "$1.pem" 2>/dev/null
}
leaf good good alice@example.com
leaf revoked good mallory@example.com
for m in slow huge garbage loop missing down ftp self forged; do
	leaf "$m" "$m" "$m@partner.example"
done
# the OCSP CA, its responder, a good and a revoked leaf, and one whose
# responder signs with a key the CA never delegated to
$O genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ocspca.key 2>/dev/null
$O req -new -key ocspca.key -subj "/O=crlfetch test/CN=Fetch OCSP CA" -config ca.cnf -out ocspca.csr
CADB=root.db $O ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key \
	-extensions v3_int -days 30 -in ocspca.csr -out ocspca.pem 2>/dev/null
# ocspleaf NAME EXT EMAIL
ocspleaf() {
	$O req -new -key leaf.key -subj "/CN=$1/emailAddress=$3" -config ca.cnf -out "$1.csr" &&
	CADB=ocspca.db $O ca -batch -config ca.cnf -cert ocspca.pem -keyfile ocspca.key \
		-extensions "$2" -days 30 -in "$1.csr" -out "$1.pem" 2>/dev/null
}
ocspleaf responder v3_responder ocsp@example.com
ocspleaf ocspgood v3_ocspleaf carol@example.com
ocspleaf ocsprevoked v3_ocspleaf dave@example.com
ocspleaf ocspforged v3_ocspforged erin@example.com
ocspleaf ocspgarbage v3_ocspgarbage frank@example.com
CADB=ocspca.db $O ca -config ca.cnf -cert ocspca.pem -keyfile ocspca.key \
	-revoke ocsprevoked.pem -crl_reason keyCompromise 2>/dev/null
CADB=int.db $O ca -config ca.cnf -cert int.pem -keyfile int.key \
	-revoke revoked.pem -crl_reason keyCompromise 2>/dev/null
CADB=int.db $O ca -config ca.cnf -cert int.pem -keyfile int.key -gencrl -out int.crl.pem 2>/dev/null
CADB=root.db $O ca -config ca.cnf -cert ca.pem -keyfile ca.key -gencrl -out root.crl.pem 2>/dev/null
$O crl -in int.crl.pem -outform DER -out www/int.crl
$O crl -in root.crl.pem -outform DER -out www/root.crl
# a CA of the attacker's under the issuing CA's very name, and its CRL
$O genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rogue.key 2>/dev/null
$O req -new -x509 -key rogue.key -subj "$($O x509 -in int.pem -noout -subject -nameopt oneline,-space_eq | sed 's/^subject=//; s/, /\//g; s/^/\//')" -days 30 \
	-config ca.cnf -extensions v3_root -out rogue.pem
CADB=rogue.db $O ca -config ca.cnf -cert rogue.pem -keyfile rogue.key -gencrl -out www/forged.crl 2>/dev/null
[ -s www/int.crl ] && [ -s www/root.crl ] && [ -s www/forged.crl ] && [ -s forged.pem ] ||
	{ echo "FAIL: test PKI"; exit 1; }

# --- the servers ------------------------------------------------------------
python3 -m http.server --bind 127.0.0.1 --directory www "$HPORT" >http.log 2>&1 &
pids="$pids $!"
python3 "$srcdir/tests/revocation/badhttp.py" "$BPORT" >bad.log 2>&1 &
pids="$pids $!"
$O ocsp -index ocspca.db -port "$OPORT" -rsigner responder.pem -rkey leaf.key \
	-CA ocspca.pem -ndays 1 >ocsp.log 2>&1 &
pids="$pids $!"
$O ocsp -index ocspca.db -port "$FPORT" -rsigner rogue.pem -rkey rogue.key \
	-CA ocspca.pem -ndays 1 >ocspf.log 2>&1 &
pids="$pids $!"
# (not probed by connecting: openssl ocsp then waits on the probe for good)
wait_log ocsp.log "waiting for OCSP client" && wait_log ocspf.log "waiting for OCSP client" ||
	{ echo "FAIL: openssl ocsp did not start ($(tail -n 2 ocsp.log))"; exit 1; }
wait_port "$HPORT" && wait_port "$BPORT" ||
	{ echo "FAIL: servers did not start ($(tail -n 3 http.log bad.log | tr "\n" " "))"; exit 1; }

printf 'listen = 127.0.0.1:%s\nrelay = 127.0.0.1:2525\ndata_dir = %s/data\nhostname = gw.example\n' \
	"$LPORT" "$W" > smrelay.conf
ctl() { _n=$1; shift; "$CTL" -c "$W/smrelay.conf" "$@" 2> "$_n.err"; }

ctl trust trust import ca.pem >/dev/null && ctl int cert import int.pem >/dev/null &&
	ctl leaves cert import good.pem >/dev/null && ctl leaves2 cert import revoked.pem >/dev/null ||
	{ echo "FAIL: imports ($(cat trust.err int.err leaves.err leaves2.err | tail -n 1))"; exit 1; }
for m in slow huge garbage loop missing down ftp self forged; do
	ctl "imp-$m" cert import "$m.pem" >/dev/null || fail "cert import $m.pem" "$(lastline "imp-$m.err")"
done

# --- fetch ------------------------------------------------------------------
# (a message signed by the revoked leaf, checked before and after)
printf 'Content-Type: text/plain\n\nfetched revocation\n' > ent.txt
$O cms -sign -in ent.txt -signer revoked.pem -inkey leaf.key -certfile int.pem \
	-from mallory@example.com -to bob@partner.example -subject r > rev.eml
$O cms -sign -in ent.txt -signer good.pem -inkey leaf.key -certfile int.pem \
	-from alice@example.com -to bob@partner.example -subject g > good.eml
ctl v0 smime verify < rev.eml > v0.eml
start=$(date +%s)
ctl fetch crl fetch > fetch.out
rc=$?
took=$(( $(date +%s) - start ))
[ $rc -eq 1 ] && pass "crl fetch: exit 1 when some distribution points failed" ||
	fail "crl fetch: exit 1 when some distribution points failed" "exit $rc"
[ "$took" -le 30 ] && pass "crl fetch: bounded (${took}s for 11 URLs, one never ending)" ||
	fail "crl fetch: bounded" "${took}s"
grep -q "^$H/int.crl	CRL [0-9]* of .*Fetch Issuing CA stored" fetch.out &&
	grep -q "^$H/root.crl	CRL [0-9]* of .*Fetch Root.* stored" fetch.out &&
	pass "crl fetch: the intermediate's and the root's CRLs stored" ||
	fail "crl fetch: the intermediate's and the root's CRLs stored" "$(tr '\n' '|' < fetch.out)"
# expect_err NAME URL-TAIL PATTERN: the fetch of that URL failed, saying so
expect_err() {
	grep -F "$2: " fetch.err | grep -q -E "$3" && pass "crl fetch, $1: $3" ||
		fail "crl fetch, $1: /$3/" "$(grep -F "$2" fetch.err)"
}
expect_err "slow server (1 byte/s)" "/slow.crl" "timed out"
expect_err "endless body" "/huge.crl" "response too large"
expect_err "garbage" "/garbage.crl" "not a CRL"
expect_err "redirect loop" "/loop.crl" "HTTP 302: redirect not followed"
expect_err "404" "/missing.crl" "HTTP 404"
expect_err "server down" ":$DPORT/int.crl" "connection (failed|closed)"
expect_err "not http(s)" "ftp://127.0.0.1/int.crl" "refused: not an http:// or https:// URL"
expect_err "our own listener" ":$LPORT/int.crl" "our own listeners"
expect_err "CRL forged under the issuer's name" "/forged.crl" "refused: .*does not verify"
ctl list crl list > list.out
grep -q "Fetch Issuing CA.*	$H/int.crl$" list.out && grep -q "Fetch Root.*	$H/root.crl$" list.out &&
	[ "$(wc -l < list.out)" -eq 2 ] &&
	pass "crl list: two CRLs, each with the URL it came from" ||
	fail "crl list: two CRLs, each with the URL it came from" "$(tr '\n' '|' < list.out)"

# --- revocation decided with no manual import --------------------------------
ctl v1 smime verify < rev.eml > v1.eml
ctl v2 smime verify < good.eml > v2.eml
case "$(head -n 1 v0.eml) / $(head -n 1 v1.eml)" in
*"smime=pass (revocation unknown"*" / "*"smime=fail (certificate revoked; revocation: CRL)"*)
	pass "verify: revoked signer unknown before the fetch, fails after" ;;
*) fail "verify: revoked signer unknown before the fetch, fails after" "$(head -n 1 v0.eml) / $(head -n 1 v1.eml)" ;;
esac
head -n 1 v2.eml | grep -q 'smime=pass (revocation: CRL) ' &&
	pass "verify: good signer passes, every link checked" ||
	fail "verify: good signer passes, every link checked" "$(head -n 1 v2.eml)"
ctl fetch2 crl fetch > fetch2.out
grep -q "^$H/int.crl	CRL [0-9]* of .* unchanged" fetch2.out &&
	pass "crl fetch again: unchanged" || fail "crl fetch again: unchanged" "$(tr '\n' '|' < fetch2.out)"

# --- OCSP: an issuing CA with no CRL, answering through a delegated responder
for f in ocspca.pem ocspgood.pem ocsprevoked.pem ocspforged.pem ocspgarbage.pem; do
	ctl "imp-$f" cert import "$f" >/dev/null || fail "cert import $f" "$(lastline "imp-$f.err")"
done
for nf in ocspgood:carol@example.com ocsprevoked:dave@example.com; do
	$O cms -sign -in ent.txt -signer "${nf%%:*}.pem" -inkey leaf.key -certfile ocspca.pem \
		-from "${nf#*:}" -to bob@partner.example -subject o > "${nf%%:*}.eml"
done
ctl ov0 smime verify < ocspgood.eml > ov0.eml
ctl fetch3 crl fetch > fetch3.out
grep -q "^http://127.0.0.1:$OPORT/	OCSP good for ocspgood$" fetch3.out &&
	grep -q "^http://127.0.0.1:$OPORT/	OCSP revoked for ocsprevoked$" fetch3.out &&
	pass "crl fetch: OCSP asked, good and revoked answers kept" ||
	fail "crl fetch: OCSP asked, good and revoked answers kept" "$(tr '\n' '|' < fetch3.out) $(grep OCSP fetch3.err)"
grep -q ":$FPORT/: answer not signed by the CA or a responder it delegated to" fetch3.err &&
	pass "crl fetch: an OCSP answer signed by an undelegated key is refused" ||
	fail "crl fetch: an OCSP answer signed by an undelegated key is refused" "$(grep "$FPORT" fetch3.err)"
grep -q "$B/garbage.crl: not an OCSP response" fetch3.err &&
	pass "crl fetch: a responder answering garbage is refused" ||
	fail "crl fetch: a responder answering garbage is refused" "$(grep garbage fetch3.err)"
ctl ov1 smime verify < ocspgood.eml > ov1.eml
ctl ov2 smime verify < ocsprevoked.eml > ov2.eml
case "$(head -n 1 ov0.eml) / $(head -n 1 ov1.eml)" in
*"smime=pass (revocation unknown"*" / "*"smime=pass (revocation: OCSP)"*)
	pass "verify: OCSP decides a certificate without a CRL" ;;
*) fail "verify: OCSP decides a certificate without a CRL" "$(head -n 1 ov0.eml) / $(head -n 1 ov1.eml)" ;;
esac
head -n 1 ov2.eml | grep -q 'smime=fail (certificate revoked' &&
	pass "verify: OCSP-revoked signer fails" || fail "verify: OCSP-revoked signer fails" "$(head -n 1 ov2.eml)"
ctl check-ocsp cert check --email carol@example.com > co.out &&
	grep -q "ocspgood.*good (OCSP, http://127.0.0.1:$OPORT/)" co.out &&
	pass "cert check: the OCSP answer and its responder" ||
	fail "cert check: the OCSP answer and its responder" "$(tr '\n' '|' < co.out)"
if ctl enc-ocsprev smime encrypt --to dave@example.com < ent.txt > /dev/null; then
	fail "encrypt to an OCSP-revoked certificate: refused" "exit 0"
else
	grep -q 'revoked' enc-ocsprev.err && pass "encrypt to an OCSP-revoked certificate: refused" ||
		fail "encrypt to an OCSP-revoked certificate: refused" "$(lastline enc-ocsprev.err)"
fi

# --- the daemon fetches by itself, without holding up SMTP -------------------
# A fresh store with the same certificates and no CRL: smrelayd fetches every
# due distribution point at start, on its event loop, while it serves.
mkdir -p data2
sed "s|$W/data|$W/data2|" smrelay.conf > d.conf
"$CTL" -c d.conf trust import ca.pem >/dev/null 2>>d-imp.err
for f in int.pem good.pem revoked.pem slow.pem; do
	"$CTL" -c d.conf cert import "$f" >/dev/null 2>>d-imp.err
done
"$DAEMON" -c d.conf -f > d.log 2>&1 &
dpid=$!
pids="$pids $dpid"
wait_port "$LPORT" || fail "smrelayd did not start" "$(tail -n 3 d.log | tr '\n' ' ')"
# the SMTP greeting comes while the 1 byte/s fetch is still under way
banner=$(python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),3); s.settimeout(3); print(s.recv(200).decode(errors="replace").strip())' "$LPORT" 2>&1)
case "$banner" in
220*) pass "smrelayd greets during a slow CRL fetch" ;;
*) fail "smrelayd greets during a slow CRL fetch" "$banner" ;;
esac
i=0
while [ $i -lt 100 ]; do
	"$CTL" -c d.conf crl list > d-list.out 2>/dev/null
	[ "$(grep -c "	$H/" d-list.out)" -ge 2 ] && break
	i=$((i + 1))
	python3 -c 'import time; time.sleep(0.1)'
done
[ "$(grep -c "	$H/" d-list.out)" -eq 2 ] &&
	grep -q "crl fetch $H/int.crl: CRL [0-9]* of .* stored" d.log &&
	pass "smrelayd fetched both CRLs at start by itself" ||
	fail "smrelayd fetched both CRLs at start by itself" "$(tr '\n' '|' < d-list.out) $(grep 'crl fetch' d.log | tr '\n' '|')"
kill -TERM "$dpid" 2>/dev/null
wait "$dpid" 2>/dev/null
grep -q 'crl fetch .*/slow.crl: timed out' d.log ||
	echo "# (the slow fetch had not timed out when smrelayd stopped)"

if [ "$fails" -gt 0 ]; then
	echo "t_crlfetch: $fails failed"
	exit 1
fi
echo "t_crlfetch: all passed"
exit 0
