#!/bin/sh
# tests/revocation/t_ocsp.sh: OCSP responders that misbehave, asked by
# `smrelayctl crl fetch` about leaves of a CA that publishes no CRL
# (ca.sh): answers expired, not yet valid, about another certificate,
# "unknown", tryLater, signed by another CA or with a broken signature
# (badocsp.py); responders slow, endless, redirecting (badhttp.py) or down;
# an old answer played back after a revocation.  Each is refused with a
# line on stderr naming the responder, nothing wrong is stored, and the
# verdict follows `revocation` (soft: pass, "revocation unknown"; hard:
# temperror).  Then smrelayd asks by itself and greets while a responder
# dawdles.  Prints PASS/FAIL per case; exits 1 when one failed.
set -u
srcdir=$(cd "${srcdir:-$(dirname "$0")/../..}" && pwd)
T=ocsp
. "$srcdir/tests/revocation/ca.sh"
python3 -c 'from cryptography.x509 import ocsp' 2>/dev/null ||
	{ echo "SKIP: no python3-cryptography"; exit 77; }

HPORT=$(free_port)      # the CAs' CRLs (the OCSP CA's own link needs one)
BPORT=$(free_port)      # badhttp.py
XPORT=$(free_port)      # badocsp.py
DPORT=$(free_port)      # nothing listens there
LPORT=$(free_port)      # our SMTP listener
H=http://127.0.0.1:$HPORT
B=http://127.0.0.1:$BPORT
X=http://127.0.0.1:$XPORT

# --- the CA hierarchy: a leaf of the OCSP CA per responder ---------------
ca_setup "$H" || { echo "FAIL: test CA"; exit 1; }
# NAME, its responder, and what `crl fetch` says of it on stderr (ERE)
cat > cases <<EOF
expired	$X/expired	answer expired: nextUpdate .* is past
future	$X/future	answer not yet valid: thisUpdate .* is ahead
wrongid	$X/wrongid	answer says nothing of owrongid
trylater	$X/trylater	responder said trylater
otherca	$X/otherca	answer not signed by the CA or a responder it delegated to
badsig	$X/badsig	answer not signed by the CA or a responder it delegated to
slow	$B/slow.crl	timed out
huge	$B/huge.crl	response too large
loop	$B/loop.crl	HTTP 302: redirect not followed
down	http://127.0.0.1:$DPORT/	connection (failed|closed)
EOF
names=$(cut -f 1 cases)
printf 'good\t%s/good\nunknown\t%s/unknown\nreplay\t%s/replay\n' "$X" "$X" "$X" > more
while IFS='	' read -r n u p; do
	ocspext "$n" "$u" && ocspleaf "o$n" "$n" "$n@partner.example" ||
		{ echo "FAIL: test PKI (o$n)"; exit 1; }
done < cases
while IFS='	' read -r n u; do
	ocspext "$n" "$u" && ocspleaf "o$n" "$n" "$n@partner.example" ||
		{ echo "FAIL: test PKI (o$n)"; exit 1; }
done < more
ca_crls || { echo "FAIL: test PKI (CRLs)"; exit 1; }

# --- the servers ------------------------------------------------------------
python3 -m http.server --bind 127.0.0.1 --directory www "$HPORT" >http.log 2>&1 &
pids="$pids $!"
python3 "$srcdir/tests/revocation/badhttp.py" "$BPORT" >bad.log 2>&1 &
pids="$pids $!"
python3 "$srcdir/tests/revocation/badocsp.py" "$XPORT" ocspca.pem ocspca.key \
	int.pem int.key $(cut -f 1 cases more | sed 's/.*/o&.pem/') >badocsp.log 2>&1 &
pids="$pids $!"
wait_port "$HPORT" && wait_port "$BPORT" && wait_log badocsp.log listening ||
	{ echo "FAIL: servers did not start ($(tail -n 3 http.log bad.log badocsp.log | tr "\n" " "))"; exit 1; }

printf 'listen = 127.0.0.1:%s\nrelay = 127.0.0.1:2525\ndata_dir = %s/data\nhostname = gw.example\n' \
	"$LPORT" "$W" > smrelay.conf
{ cat smrelay.conf; echo "revocation = hard"; } > hard.conf
ctl() { _n=$1; shift; "$CTL" -c "$W/smrelay.conf" "$@" 2> "$_n.err"; }
hctl() { _n=$1; shift; "$CTL" -c "$W/hard.conf" "$@" 2> "$_n.err"; }

cat ocspca.pem int.pem > cas.pem
ctl trust trust import ca.pem >/dev/null && ctl cas cert import cas.pem >/dev/null ||
	{ echo "FAIL: imports ($(cat trust.err cas.err | tail -n 1))"; exit 1; }
printf 'Content-Type: text/plain\n\nOCSP\n' > ent.txt
for n in $names good unknown; do
	ctl "imp-$n" cert import "o$n.pem" >/dev/null || fail "cert import o$n.pem" "$(lastline "imp-$n.err")"
	$O cms -sign -in ent.txt -signer "o$n.pem" -inkey leaf.key -certfile ocspca.pem \
		-from "$n@partner.example" -to bob@example.com -subject o > "o$n.eml"
done

# --- one fetch: every responder asked at once --------------------------------
fetch_bounded fetch.out 20 "some responders" ", one responder sending 1 byte/s" \
	ctl fetch crl fetch
grep -q "^$X/good	OCSP good for ogood$" fetch.out &&
	grep -q "^$H/root.crl	CRL [0-9]* of .*Fetch Root.* stored" fetch.out &&
	pass "crl fetch: the CA's own answer and the root's CRL stored" ||
	fail "crl fetch: the CA's own answer and the root's CRL stored" "$(tr '\n' '|' < fetch.out) $(grep /good fetch.err)"
grep -q "^$X/unknown	OCSP unknown for ounknown$" fetch.out &&
	pass "crl fetch: status unknown reported as such" ||
	fail "crl fetch: status unknown reported as such" "$(grep /unknown fetch.out fetch.err)"
while IFS='	' read -r n u p; do
	grep -F "smrelayctl: crl fetch: $u: " fetch.err | grep -q -E "$p" &&
		pass "crl fetch, $n: $p" || fail "crl fetch, $n: /$p/" "$(grep -F "$u" fetch.err)"
done < cases
[ "$(grep -c "OCSP" fetch.out)" -eq 2 ] && [ "$(grep -c "$X\|$B\|:$DPORT/" fetch.out)" -eq 2 ] &&
	pass "crl fetch: nothing else said to be stored" ||
	fail "crl fetch: nothing else said to be stored" "$(tr '\n' '|' < fetch.out)"

# --- nothing wrong stored: each verdict follows `revocation` ----------------
# ar CONF NAME: the Authentication-Results line of oNAME.eml verified
ar() {
	"$CTL" -c "$W/$1" smime verify < "o$2.eml" 2> "v-$1-$2.err" | head -n 1
}
for n in $names unknown; do
	s=$(ar smrelay.conf "$n")
	h=$(ar hard.conf "$n")
	case "$s / $h" in
	*"smime=pass (revocation unknown"*" / "*"smime=temperror"*)
		pass "verify, $n: soft passes with revocation unknown, hard temperror" ;;
	*) fail "verify, $n: soft passes with revocation unknown, hard temperror" "$s / $h" ;;
	esac
	ctl "check-$n" cert check --email "$n@partner.example" > "check-$n.out"
	grep -q "^0	.*o$n.*	revocation unknown (no usable CRL)$" "check-$n.out" &&
		pass "cert check, $n: revocation unknown" ||
		fail "cert check, $n: revocation unknown" "$(tr '\n' '|' < "check-$n.out")"
done
s=$(ar smrelay.conf good)
h=$(ar hard.conf good)
case "$s / $h" in
*"smime=pass (revocation: OCSP from $X/good)"*" / "*"smime=pass (revocation: OCSP from $X/good)"*)
	pass "verify, good: passes soft and hard, decided by OCSP" ;;
*) fail "verify, good: passes soft and hard, decided by OCSP" "$s / $h" ;;
esac
hctl check-good cert check --email good@partner.example > check-good.out &&
	grep -q "^0	.*ogood.*	good (OCSP, $X/good)$" check-good.out &&
	pass "cert check, good: usable under hard, the responder named" ||
	fail "cert check, good: usable under hard, the responder named" "$(tr '\n' '|' < check-good.out)"

# --- an old answer played back after a revocation ----------------------------
# (a store of its own, so that this responder is asked exactly twice)
sed "s|$W/data|$W/data2|" smrelay.conf > r.conf
rctl() { _n=$1; shift; "$CTL" -c "$W/r.conf" "$@" 2> "$_n.err"; }
cat ocspca.pem oreplay.pem > r.pem
rctl rtrust trust import ca.pem >/dev/null && rctl rcas cert import r.pem >/dev/null ||
	fail "replay store imports" "$(cat rtrust.err rcas.err | tail -n 1)"
$O cms -sign -in ent.txt -signer oreplay.pem -inkey leaf.key -certfile ocspca.pem \
	-from replay@partner.example -to bob@example.com -subject o > oreplay.eml
rctl rfetch1 crl fetch > rfetch1.out
rc1=$?
rctl rfetch2 crl fetch > rfetch2.out
rc2=$?
grep -q "^$X/replay	OCSP revoked for oreplay$" rfetch1.out && [ $rc1 -eq 0 ] &&
	pass "crl fetch: a revocation stored (exit 0, nothing failed)" ||
	fail "crl fetch: a revocation stored (exit 0, nothing failed)" "exit $rc1: $(cat rfetch1.out rfetch1.err | tr '\n' '|')"
grep -q "$X/replay: answer older than the one stored" rfetch2.err && [ $rc2 -eq 1 ] &&
	! grep -q replay rfetch2.out &&
	pass "crl fetch: an older good answer played back is refused" ||
	fail "crl fetch: an older good answer played back is refused" "exit $rc2: $(cat rfetch2.out rfetch2.err | tr '\n' '|')"
s=$(ar r.conf replay)
case "$s" in
*"smime=fail (certificate revoked"*) pass "verify: still revoked after the playback" ;;
*) fail "verify: still revoked after the playback" "$s" ;;
esac

# --- smrelayd asks by itself, and serves meanwhile ---------------------------
sed "s|$W/data|$W/data3|" smrelay.conf > d.conf
for f in ca.pem ocspca.pem ogood.pem oexpired.pem oslow.pem; do
	case $f in
	ca.pem) "$CTL" -c d.conf trust import "$f" ;;
	*) "$CTL" -c d.conf cert import "$f" ;;
	esac >/dev/null 2>>d-imp.err || fail "daemon store: import $f" "$(lastline d-imp.err)"
done
daemon_greets d.conf "while an OCSP responder sends 1 byte/s"
wait_log d.log "crl fetch $X/good: OCSP good for ogood" &&
	wait_log d.log "crl fetch $X/expired: answer expired" &&
	pass "smrelayd: the good answer kept, the expired one refused in the log" ||
	fail "smrelayd: the good answer kept, the expired one refused in the log" "$(grep 'crl fetch' d.log | tr '\n' '|')"
kill -TERM "$dpid" 2>/dev/null
wait "$dpid" 2>/dev/null

if [ "$fails" -gt 0 ]; then
	echo "t_ocsp: $fails failed"
	exit 1
fi
echo "t_ocsp: all passed"
exit 0
