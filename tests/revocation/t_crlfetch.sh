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
T=crlfetch
. "$srcdir/tests/revocation/ca.sh"

HPORT=$(free_port)
BPORT=$(free_port)
DPORT=$(free_port)      # nothing listens there
LPORT=$(free_port)      # our (configured) SMTP listener
OPORT=$(free_port)      # openssl ocsp, the OCSP CA's responder
FPORT=$(free_port)      # openssl ocsp signing with a key nobody delegated
H=http://127.0.0.1:$HPORT
B=http://127.0.0.1:$BPORT

# --- the CA hierarchy -----------------------------------------------------
ca_setup "$H" || { echo "FAIL: test CA"; exit 1; }
# a leaf section per distribution point
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
leaf good good alice@example.com
leaf revoked good mallory@example.com
for m in slow huge garbage loop missing down ftp self forged; do
	leaf "$m" "$m" "$m@partner.example"
done
# leaves of the OCSP CA (no CRL; answered through its delegated responder),
# one whose responder signs with a key the CA never delegated to, one whose
# responder answers garbage
ocspext ocspleaf "http://127.0.0.1:$OPORT/"
ocspext ocspforged "http://127.0.0.1:$FPORT/"
ocspext ocspgarbage "$B/garbage.crl"
ocspleaf ocspgood ocspleaf carol@example.com
ocspleaf ocsprevoked ocspleaf dave@example.com
ocspleaf ocspforged ocspforged erin@example.com
ocspleaf ocspgarbage ocspgarbage frank@example.com
CADB=ocspca.db $O ca -config ca.cnf -cert ocspca.pem -keyfile ocspca.key \
	-revoke ocsprevoked.pem -crl_reason keyCompromise 2>/dev/null
CADB=int.db $O ca -config ca.cnf -cert int.pem -keyfile int.key \
	-revoke revoked.pem -crl_reason keyCompromise 2>/dev/null
ca_crls
# a CA of the attacker's under the issuing CA's very name, and its CRL
selfca rogue "$($O x509 -in int.pem -noout -subject -nameopt oneline,-space_eq | sed 's/^subject=//; s/, /\//g; s/^/\//')"
CADB=rogue.db $O ca -config ca.cnf -cert rogue.pem -keyfile rogue.key -gencrl -out www/forged.crl 2>/dev/null
[ -s www/int.crl ] && [ -s www/root.crl ] && [ -s www/forged.crl ] && [ -s forged.pem ] &&
	[ -s ocspgarbage.pem ] || { echo "FAIL: test PKI"; exit 1; }

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
fetch_bounded fetch.out 30 "some distribution points" " for 11 URLs, one never ending" \
	ctl fetch crl fetch
grep -q "^$H/int.crl	CRL [0-9]* of .*Fetch Issuing CA stored" fetch.out &&
	grep -q "^$H/root.crl	CRL [0-9]* of .*Fetch Root.* stored" fetch.out &&
	pass "crl fetch: the intermediate's and the root's CRLs stored" ||
	fail "crl fetch: the intermediate's and the root's CRLs stored" "$(tr '\n' '|' < fetch.out)"
expect_err fetch.err "slow server (1 byte/s)" "/slow.crl" "timed out"
expect_err fetch.err "endless body" "/huge.crl" "response too large"
expect_err fetch.err "garbage" "/garbage.crl" "not a CRL"
expect_err fetch.err "redirect loop" "/loop.crl" "HTTP 302: redirect not followed"
expect_err fetch.err "404" "/missing.crl" "HTTP 404"
expect_err fetch.err "server down" ":$DPORT/int.crl" "connection (failed|closed)"
expect_err fetch.err "not http(s)" "ftp://127.0.0.1/int.crl" "refused: not an http:// or https:// URL"
expect_err fetch.err "our own listener" ":$LPORT/int.crl" "our own listeners"
expect_err fetch.err "CRL forged under the issuer's name" "/forged.crl" "refused: .*does not verify"
ctl list crl list > list.out
grep -q "Fetch Issuing CA.*	$H/int.crl$" list.out && grep -q "Fetch Root.*	$H/root.crl$" list.out &&
	[ "$(wc -l < list.out)" -eq 2 ] &&
	pass "crl list: two CRLs, each with the URL it came from" ||
	fail "crl list: two CRLs, each with the URL it came from" "$(tr '\n' '|' < list.out)"

# --- revocation decided with no manual import --------------------------------
ctl v1 smime verify < rev.eml > v1.eml
ctl v2 smime verify < good.eml > v2.eml
case "$(head -n 1 v0.eml) / $(head -n 1 v1.eml)" in
*"smime=pass (revocation unknown"*" / "*"smime=fail (certificate revoked; revocation: CRL from $H/int.crl)"*)
	pass "verify: revoked signer unknown before the fetch, fails after" ;;
*) fail "verify: revoked signer unknown before the fetch, fails after" "$(head -n 1 v0.eml) / $(head -n 1 v1.eml)" ;;
esac
head -n 1 v2.eml | grep -q -F "smime=pass (revocation: CRL from $H/int.crl) " &&
	pass "verify: good signer passes, every link checked" ||
	fail "verify: good signer passes, every link checked" "$(head -n 1 v2.eml)"
ctl cc cert check --email alice@example.com > cc.out
grep -q -F "good (CRL, $H/int.crl)" cc.out && grep -q -F "good (CRL, $H/root.crl)" cc.out &&
	pass "cert check: each link's CRL with the URL it was fetched from" ||
	fail "cert check: each link's CRL with the URL it was fetched from" "$(tr '\n' '|' < cc.out)"
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
*"smime=pass (revocation unknown"*" / "*"smime=pass (revocation: OCSP from http://127.0.0.1:$OPORT/)"*)
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
# the SMTP greeting comes while the 1 byte/s fetch is still under way
daemon_greets d.conf "during a slow CRL fetch"
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
