#!/bin/sh
# tests/revocation/t_https.sh: `smrelayctl crl fetch` from https://
# distribution points and an https:// OCSP responder.  An S/MIME root
# issues the leaves; a separate TLS CA issues the servers' certificates
# (one for 127.0.0.1, one for another name), and SSL_CERT_FILE says which
# CA the fetcher trusts.  The CRL is served by python3's http.server behind
# ssl; badhttp.py and openssl ocsp behind tlsproxy.py.  A fetch must fail,
# saying why, when the server's certificate is not trusted or not for the
# URL's host, when the server does not speak TLS, when it never finishes
# the handshake, when the URL is not http(s) or is one of our listeners;
# the size cap and "no redirects" hold over TLS too.  Prints PASS/FAIL per
# case; exits 1 when one failed.
set -u
srcdir=$(cd "${srcdir:-$(dirname "$0")/../..}" && pwd)
T=https
. "$srcdir/tests/revocation/ca.sh"

SPORT=$(free_port)      # https, certificate for 127.0.0.1
NPORT=$(free_port)      # https, certificate for another name
PPORT=$(free_port)      # plain http
HPORT=$(free_port)      # accepts, never says a word (no TLS handshake)
BPORT=$(free_port)      # badhttp.py, plain
XPORT=$(free_port)      # tlsproxy.py in front of badhttp.py
OPORT=$(free_port)      # openssl ocsp, plain
QPORT=$(free_port)      # tlsproxy.py in front of openssl ocsp
LPORT=$(free_port)      # our (configured) SMTP listener
DPORT=$(free_port)      # nothing listens there
S=https://127.0.0.1:$SPORT
X=https://127.0.0.1:$XPORT

# --- the S/MIME CA and its leaves ---------------------------------------------
mkdir -p nocerts
ca_cnf
leafext good "$S/root.crl"
ocspext ocsp "https://127.0.0.1:$QPORT/"
leafext wrongname "https://127.0.0.1:$NPORT/root.crl"
leafext plain "https://127.0.0.1:$PPORT/root.crl"
leafext mute "https://127.0.0.1:$HPORT/root.crl"
leafext ldap "ldap://127.0.0.1/cn=HTTPS%20Root?certificateRevocationList"
leafext self "https://127.0.0.1:$LPORT/root.crl"
leafext down "https://127.0.0.1:$DPORT/root.crl"
leafext huge "$X/huge.crl"
leafext loop "$X/loop.crl"
selfca root "/O=https test/CN=HTTPS Root"
# (a second S/MIME root with no CRL, so that OCSP decides for its leaves)
selfca ocsproot "/O=https test/CN=HTTPS OCSP Root"
selfca tls "/O=https test/CN=Test TLS CA"
selfca other "/O=https test/CN=Another TLS CA"
cakey leaf.key
issue root.db root.pem root.key good good alice@example.com
issue ocsproot.db ocsproot.pem ocsproot.key ocspgood ocsp carol@example.com
issue ocsproot.db ocsproot.pem ocsproot.key ocsprevoked ocsp mallory@example.com
for m in wrongname plain mute ldap self down huge loop; do
	issue root.db root.pem root.key "$m" "$m" "$m@partner.example"
done
CADB=ocsproot.db $O ca -config ca.cnf -cert ocsproot.pem -keyfile ocsproot.key \
	-revoke ocsprevoked.pem -crl_reason keyCompromise 2>/dev/null
cacrl root.db root.pem root.key root
# the TLS CA's server certificates: one for 127.0.0.1, one for another name
server srv-ip IP:127.0.0.1 tls
server srv-name DNS:crl.other.example tls
[ -s www/root.crl ] && [ -s srv-ip.pem ] && [ -s srv-name.pem ] && [ -s loop.pem ] ||
	{ echo "FAIL: test PKI"; exit 1; }

# --- the servers ------------------------------------------------------------
# serve_https PORT CERT: www/ over TLS (python3's http.server behind ssl)
serve_https() {
	python3 -c '
import functools, http.server, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], "server.key")
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory="www")
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), h)
# the handshake in the handler thread, not in accept(): a connection that
# stalls (a port probe) holds up no other
srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                             do_handshake_on_connect=False)
srv.serve_forever()
' "$1" "$2"
}
serve_https "$SPORT" srv-ip.pem >https.log 2>&1 &
pids="$pids $!"
serve_https "$NPORT" srv-name.pem >https-name.log 2>&1 &
pids="$pids $!"
python3 -m http.server --bind 127.0.0.1 --directory www "$PPORT" >http.log 2>&1 &
pids="$pids $!"
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
held = []
while True:
    held.append(s.accept()[0])
' "$HPORT" >mute.log 2>&1 &
pids="$pids $!"
python3 "$srcdir/tests/revocation/badhttp.py" "$BPORT" >bad.log 2>&1 &
pids="$pids $!"
python3 "$srcdir/tests/revocation/tlsproxy.py" "$XPORT" srv-ip.pem server.key "$BPORT" >proxy.log 2>&1 &
pids="$pids $!"
$O ocsp -index ocsproot.db -port "$OPORT" -rsigner ocsproot.pem -rkey ocsproot.key \
	-CA ocsproot.pem -ndays 1 >ocsp.log 2>&1 &
pids="$pids $!"
python3 "$srcdir/tests/revocation/tlsproxy.py" "$QPORT" srv-ip.pem server.key "$OPORT" >oproxy.log 2>&1 &
pids="$pids $!"
# (openssl ocsp is not probed by connecting: it then waits on the probe)
wait_log ocsp.log "waiting for OCSP client" ||
	{ echo "FAIL: openssl ocsp did not start ($(tail -n 2 ocsp.log))"; exit 1; }
for p in $SPORT $NPORT $PPORT $HPORT $BPORT $XPORT $QPORT; do
	wait_port "$p" || { echo "FAIL: servers did not start ($(tail -n 3 ./*.log | tr "\n" " "))"; exit 1; }
done

# conf NAME ANCHOR...: a config with its own store (data-NAME), anchors in it
conf() {
	_n=$1; shift
	printf 'listen = 127.0.0.1:%s\nrelay = 127.0.0.1:2525\ndata_dir = %s/data-%s\nhostname = gw.example\n' \
		"$LPORT" "$W" "$_n" > "$_n.conf"
	for a in "$@"; do
		"$CTL" -c "$_n.conf" trust import "$a.pem" >/dev/null 2>"$_n-trust.err" ||
			{ echo "FAIL: trust import ($(lastline "$_n-trust.err"))"; exit 1; }
	done
}
# imp CONF CERT...: cert import
imp() {
	_c=$1; shift
	for f in "$@"; do
		"$CTL" -c "$_c.conf" cert import "$f.pem" >/dev/null 2>"imp-$f.err" ||
			fail "cert import $f.pem" "$(lastline "imp-$f.err")"
	done
}
# fetch CONF OUT [VAR=VALUE...]: crl fetch with that environment; rc in $rc
fetch() {
	_c=$1 _o=$2; shift 2
	env -u SSL_CERT_FILE SSL_CERT_DIR="$W/nocerts" "$@" "$CTL" -c "$_c.conf" crl fetch \
		> "$_o.out" 2> "$_o.err"
	rc=$?
	return $rc
}
conf a root ocsproot
imp a good ocspgood ocsprevoked
conf b root
imp b wrongname plain mute ldap self down huge loop

# --- the server's certificate is not trusted -----------------------------------
# (with SSL_CERT_FILE unset: the system store, which knows no test CA)
env -u SSL_CERT_FILE "$CTL" -c a.conf crl fetch > sys.out 2> sys.err
rc=$?
[ $rc -eq 1 ] && grep -F "$S/root.crl: " sys.err |
	grep -q "TLS handshake failed: certificate verify failed: unable to get local issuer certificate" &&
	pass "https, system store only: refused, certificate not trusted (exit 1)" ||
	fail "https, system store only: refused, certificate not trusted" "exit $rc: $(tr '\n' '|' < sys.err)"
fetch a other SSL_CERT_FILE="$W/other.pem"
[ $rc -eq 1 ] && grep -F "$S/root.crl: " other.err |
	grep -q "TLS handshake failed: certificate verify failed" &&
	pass "https, another CA trusted: refused, certificate not trusted (exit 1)" ||
	fail "https, another CA trusted: refused, certificate not trusted" "exit $rc: $(tr '\n' '|' < other.err)"
grep -F "127.0.0.1:$QPORT/: " other.err | grep -q "TLS handshake failed: certificate verify failed" &&
	pass "https OCSP responder, another CA trusted: refused" ||
	fail "https OCSP responder, another CA trusted: refused" "$(tr '\n' '|' < other.err)"
"$CTL" -c a.conf crl list > list0.out 2>&1
[ ! -s list0.out ] && pass "nothing stored from an untrusted server" ||
	fail "nothing stored from an untrusted server" "$(tr '\n' '|' < list0.out)"

# --- trusted: the CRL is stored, the OCSP answers kept ----------------------------
fetch a ok SSL_CERT_FILE="$W/tls.pem"
[ $rc -eq 0 ] && grep -q "^$S/root.crl	CRL [0-9]* of .*HTTPS Root.* stored$" ok.out &&
	pass "https CRL distribution point: the CRL stored (exit 0)" ||
	fail "https CRL distribution point: the CRL stored" "exit $rc: $(tr '\n' '|' < ok.out) $(tr '\n' '|' < ok.err)"
"$CTL" -c a.conf crl list > list.out 2>&1
grep -q "HTTPS Root.*	$S/root.crl$" list.out && [ "$(wc -l < list.out)" -eq 1 ] &&
	pass "crl list: the https URL is the CRL's source" ||
	fail "crl list: the https URL is the CRL's source" "$(tr '\n' '|' < list.out)"
grep -q "^https://127.0.0.1:$QPORT/	OCSP good for ocspgood$" ok.out &&
	grep -q "^https://127.0.0.1:$QPORT/	OCSP revoked for ocsprevoked$" ok.out &&
	pass "https OCSP responder: good and revoked answers kept" ||
	fail "https OCSP responder: good and revoked answers kept" "$(tr '\n' '|' < ok.out)"
"$CTL" -c a.conf cert check --email carol@example.com > check.out 2>&1 &&
	grep -q "good (OCSP, https://127.0.0.1:$QPORT/)" check.out &&
	pass "cert check: the https OCSP responder" ||
	fail "cert check: the https OCSP responder" "$(tr '\n' '|' < check.out)"

# --- servers that must be refused, over TLS -----------------------------------
fetch_bounded /dev/null 30 "https distribution points" ", one server never answering" \
	fetch b bad SSL_CERT_FILE="$W/tls.pem"
expect_err bad.err "certificate for another name" ":$NPORT/root.crl" \
	"TLS handshake failed: certificate verify failed: IP address mismatch"
expect_err bad.err "plain http server on an https URL" ":$PPORT/root.crl" "TLS handshake failed: [a-z]"
expect_err bad.err "server never completing the handshake" ":$HPORT/root.crl" "timed out in the TLS handshake"
expect_err bad.err "ldap distribution point" "?certificateRevocationList" "refused: not an http:// or https:// URL"
expect_err bad.err "https to our own listener" ":$LPORT/root.crl" "our own listeners"
expect_err bad.err "https server down" ":$DPORT/root.crl" "^[^T]*connection (failed|closed)"
expect_err bad.err "endless body over TLS" "$X/huge.crl" "response too large"
expect_err bad.err "redirect over TLS" "$X/loop.crl" "HTTP 302: redirect not followed"
"$CTL" -c b.conf crl list > listb.out 2>&1
[ ! -s listb.out ] && pass "nothing stored from the refused servers" ||
	fail "nothing stored from the refused servers" "$(tr '\n' '|' < listb.out)"
[ -s bad.out ] && fail "no fetch succeeded" "$(tr '\n' '|' < bad.out)"

if [ "$fails" -gt 0 ]; then
	echo "t_https: $fails failed"
	exit 1
fi
echo "t_https: all passed"
exit 0
