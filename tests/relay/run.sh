#!/bin/sh
# tests/relay/run.sh: the relay client against real next hops: Postfix's
# smtp-sink (plaintext, rejections, disconnects) and tls_nexthop.py (STARTTLS
# and misbehaviours).  Usage: run.sh [path/to/relay_drive]; exits non-zero on
# the first failed scenario.  Needs smtp-sink, python3 and openssl.
set -u

here=$(cd "$(dirname "$0")" && pwd)
drive=${1:-${RELAY_DRIVE:-$here/../../build-relay/tests/relay/relay_drive}}
[ -x "$drive" ] || { echo "relay_drive not found: $drive" >&2; exit 2; }
tmp=$(mktemp -d /tmp/relay-test.XXXXXX)
chmod 755 "$tmp"
# free_port: a port nobody listens on now, claimed for this run
# (tests/lib/free_port.sh): every next hop gets its own, so runs can go
# side by side.
# shellcheck source=tests/lib/free_port.sh
. "$here/../lib/free_port.sh"
# $port: the current next hop's; $nextp: the next one's, chosen ahead so
# that a scenario can name the next hop's dump directory in its arguments.
port=0
nextp=$(free_port)
pids=""
fails=0
export TMPDIR="$tmp"

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Start a background next hop; its pid is remembered for cleanup.
bg() {
	"$@" >>"$tmp/peer.log" 2>&1 &
	pids="$pids $!"
	last=$!
	# until it listens on $port (ss: no connection the peer would count),
	# polled every 50 ms for at most 10 s
	i=0
	while [ -z "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]; do
		i=$((i + 1))
		[ "$i" -le 200 ] && kill -0 "$last" 2>/dev/null || {
			echo "next hop on port $port did not start:" >&2
			tail -n 5 "$tmp/peer.log" >&2
			return 1
		}
		sleep 0.05
	done
}

stop() {
	kill "$last" 2>/dev/null
	wait "$last" 2>/dev/null
}

sink() {
	port=$nextp
	nextp=$(free_port)
	mkdir -p "$tmp/sink$port" && chmod 777 "$tmp/sink$port"
	bg smtp-sink -u nobody "$@" 127.0.0.1:$port 100
}

py() {
	port=$nextp
	nextp=$(free_port)
	mkdir -p "$tmp/dump$port"
	bg python3 "$here/tls_nexthop.py" --listen 127.0.0.1:$port \
	    --dump "$tmp/dump$port" "$@"
}

# run NAME ARGS...: run the driver, output in $out, log in $log.
run() {
	name=$1
	shift
	out="$tmp/$name.out"
	log="$tmp/$name.log"
	"$drive" "$@" >"$out" 2>"$log"
	return 0
}

check() {
	if grep -Eq -- "$1" "$2"; then
		return 0
	fi
	echo "FAIL $name: expected /$1/ in $(basename "$2")"
	sed 's/^/    /' "$2" | head -20
	return 1
}

nocheck() {
	if ! grep -Eq -- "$1" "$2"; then
		return 0
	fi
	echo "FAIL $name: unexpected /$1/ in $(basename "$2")"
	return 1
}

ok() {
	echo "ok   $name"
}

bad() {
	echo "FAIL $name"
	fails=$((fails + 1))
}

# Test PKI: a CA, "localhost" signed by it, and a self-signed wrong name.
pki() {
	cd "$tmp" || exit 2
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Test CA" \
	    -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE \
	    2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
	    -keyout good.key -out good.csr 2>/dev/null
	printf 'subjectAltName=DNS:localhost\n' >good.ext
	openssl x509 -req -in good.csr -CA ca.pem -CAkey ca.key \
	    -CAcreateserial -days 2 -extfile good.ext -out good.pem 2>/dev/null
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
	    -subj "/CN=wrong.example" -addext subjectAltName=DNS:wrong.example \
	    -keyout bad.key -out bad.pem 2>/dev/null
	cd - >/dev/null || exit 2
	[ -s "$tmp/good.pem" ] && [ -s "$tmp/bad.pem" ] || {
		echo "cannot make test certificates" >&2; exit 2; }
}
pki

R="a@example.com"

# 1. plain: three messages, one connection (pool reuse), dot-stuffing.
name=plain-reuse
sink -d "$tmp/sink$nextp/%M."
run $name -t none -n 3 127.0.0.1:$port $R b@example.com &&
check "all done ok=3 fail=0 nconns=1" "$out" &&
check "relay id=.* status=250" "$log" &&
[ "$(grep -c ' connected' "$log")" = 1 ] &&
[ "$(ls "$tmp/sink$port" | wc -l)" = 3 ] &&
f=$(ls -d "$tmp/sink$port"/* | head -1) &&
check '^\.[0-9]{8} ' "$f" && nocheck '^\.\.' "$f" && ok || bad
stop

# 2. concurrency: 40 messages, 8 at a time.
name=concurrent
sink -d "$tmp/sink$nextp/%M."
run $name -t none -n 40 -c 8 127.0.0.1:$port $R &&
check "all done ok=40 fail=0 nconns=[1-8]$" "$out" && ok || bad
stop

# 3. DSN/SIZE/BODY parameters passed through (smtp-sink -D records them;
# it offers no SIZE, so SIZE is dropped there; AUTH is never passed on).
name=dsn-params
sink -D "$tmp/sink$nextp/dsn.dump"
run $name -t none -P "SIZE=3000 BODY=8BITMIME RET=HDRS ENVID=abc123 AUTH=<>" \
    -R "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.com" 127.0.0.1:$port $R &&
check "X-Mail-Args: <sender@example.org> BODY=8BITMIME RET=HDRS ENVID=abc123$" "$tmp/sink$port/dsn.dump" &&
check "X-Rcpt-Args: <a@example.com> NOTIFY=SUCCESS,FAILURE" "$tmp/sink$port/dsn.dump" && ok || bad
stop
name=dsn-params-py
py --dsn --size 100000 --eightbit
run $name -t none -P "SIZE=3000 BODY=8BITMIME RET=HDRS ENVID=abc123 AUTH=<>" \
    -R "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.com" 127.0.0.1:$port $R &&
check "^MAIL FROM:<sender@example.org> SIZE=3000 BODY=8BITMIME RET=HDRS ENVID=abc123$" "$tmp/dump$port/1.env" &&
check "^RCPT TO:<a@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.com$" "$tmp/dump$port/1.env" && ok || bad
stop

# 4. next hop without DSN and 8BITMIME: parameters dropped, mail still goes.
name=params-dropped
sink -N -8 -D "$tmp/sink$nextp/nodsn.dump"
run $name -t none -P "BODY=8BITMIME RET=FULL" -R "NOTIFY=NEVER" \
    127.0.0.1:$port $R &&
check "X-Mail-Args: <sender@example.org>$" "$tmp/sink$port/nodsn.dump" &&
check "X-Rcpt-Args: <a@example.com>$" "$tmp/sink$port/nodsn.dump" && ok || bad
stop

# 5. SMTPUTF8 required but not offered: 553 5.6.7 at RCPT, nothing sent.
name=smtputf8
sink
run $name -t none -P "SMTPUTF8" 127.0.0.1:$port $R
check "rcpt=<a@example.com> 553 5.6.7" "$out" && ok || bad
stop

# 6. per-recipient 550 mirrored, the others delivered.
name=rcpt-550
py --pipelining --reject-rcpt bad
run $name -t none 127.0.0.1:$port good1@x.test bad@x.test good2@x.test &&
check "rcpt=<bad@x.test> 550 5.1.1 next hop said:" "$out" &&
check "rcpt=<good1@x.test> 250" "$out" &&
check "data 250" "$out" &&
check "RCPT TO:<good2@x.test>" "$tmp/dump$port/1.env" && ok || bad
stop

# 7. MAIL rejected: every recipient gets that reply.
name=mail-550
sink -f MAIL
run $name -t none 127.0.0.1:$port $R b@example.com
check "rcpt=<a@example.com> 5[0-9][0-9] 5\." "$out" &&
check "rcpt=<b@example.com> 5[0-9][0-9] 5\." "$out" && ok || bad
stop

# 8. soft RCPT rejection (smtp-sink -r) mirrored as 4xx.
name=rcpt-4xx
sink -r RCPT
run $name -t none 127.0.0.1:$port $R
check "rcpt=<a@example.com> 4[0-9][0-9] 4\." "$out" && ok || bad
stop

# 9. next hop disconnects at DATA / sends 421 at DATA.
name=disconnect-data
sink -q DATA
run $name -t none 127.0.0.1:$port $R
check "data 451 4.4.2" "$out" && ok || bad
stop
name=421-data
sink -Q DATA
run $name -t none 127.0.0.1:$port $R
check "data 421 " "$out" && ok || bad
stop

# 10. next hop closes after 354 / in the middle of the body.
name=close-after-354
py --close-after-354
run $name -t none 127.0.0.1:$port $R
check "data 451 4.4.2" "$out" && ok || bad
stop
name=close-mid-body
py --close-mid-body 100000
run $name -t none -s 2M 127.0.0.1:$port $R
check "data 451 4.4.2" "$out" && ok || bad
stop

# 11. a next hop that never answers: greeting timeout (shortened).
name=silent
py --silent
run $name -t none -T 1000 127.0.0.1:$port $R
check "rcpt=<a@example.com> 451 4.4.2 .*timeout" "$out" && ok || bad
stop

# 12. nobody listening: 451 4.4.1.
name=refused
run $name -t none 127.0.0.1:$(free_port) $R
check "rcpt=<a@example.com> 451 4.4.1" "$out" && ok || bad

# 13. EHLO refused: HELO fallback, parameters dropped.
name=helo
py --no-ehlo
run $name -t may -P "BODY=8BITMIME" 127.0.0.1:$port $R &&
check "data 250" "$out" &&
check "^MAIL FROM:<sender@example.org>$" "$tmp/dump$port/1.env" && ok || bad
stop

# 14. SIZE: declared size over the next hop's limit fails early (552 5.3.4),
# and so does a body over it without a declared size.
name=size
py --size 1000
run $name -t none -P "SIZE=5000" 127.0.0.1:$port $R
check "rcpt=<a@example.com> 552 5.3.4" "$out" &&
run $name -t none -s 5000 127.0.0.1:$port $R
check "data 552 5.3.4" "$out" && ok || bad
stop

# 15. aborted transactions are RSET and the connection reused (msg 2 starts
# before the RSET reply, so it needs a second connection; msg 3 does not).
name=abort-rset
py --pipelining
run $name -t none -a -n 3 127.0.0.1:$port $R
check "msg=1 abort" "$out" && check "msg=2 data 250" "$out" &&
check "nconns_after_done=2" "$out" &&
[ "$(grep -c ' connected' "$log")" = 2 ] && ok || bad
stop

# 16. idle connections are closed after the idle timeout (300 ms), not
# before (waited for at most 10 s).
name=idle-timeout
sink
run $name -t none -I 300 -w 10000 127.0.0.1:$port $R &&
check "nconns_after_done=1" "$out" && check "nconns_after_wait=0 " "$out" &&
waited=$(sed -n 's/^nconns_after_wait=0 waited_ms=\([0-9]*\)$/\1/p' "$out") &&
[ "${waited:-0}" -ge 200 ] && ok || { echo "  waited_ms=${waited:-?}"; bad; }
stop

# 17. a pooled connection found dead on reuse is retried transparently.
name=dead-pooled
py --pipelining --die-after-msg
run $name -t none -n 3 127.0.0.1:$port $R &&
check "all done ok=3 fail=0" "$out" &&
check "pooled connection was dead, retrying" "$log" && ok || bad
stop

# 18. the next hop drops the connection while the client uploads: data()
# reconnects and replays MAIL + RCPTs.
name=replay
py --pipelining --drop-after-rcpt 2
run $name -t none -h 600 127.0.0.1:$port $R b@example.com &&
check "data 250" "$out" && check "replaying the envelope" "$log" &&
check "RCPT TO:<b@example.com>" "$tmp/dump$port/1.env" && ok || bad
stop
name=replay-refused
py --pipelining --drop-after-rcpt 2 --reject-on-replay
run $name -t none -h 600 127.0.0.1:$port $R b@example.com
check "rcpt=<b@example.com> 250" "$out" &&
check "data 451 4.4.2 next hop refused on reconnect" "$out" && ok || bad
stop

# 19. a next hop that floods a reply: bounded, 451 4.4.2.
name=long-reply
py --long-reply
run $name -t none 127.0.0.1:$port $R
check "data 451 4.4.2 .*too long" "$out" && ok || bad
stop

# 20. STARTTLS: may and encrypt accept any certificate, verify needs the CA
# and the name; encrypt fails without STARTTLS.
name=tls-may
py --starttls --cert "$tmp/bad.pem" --key "$tmp/bad.key"
run $name -t may 127.0.0.1:$port $R &&
check "tls=established version=TLSv1.[23]" "$log" && check "data 250" "$out" &&
run $name -t encrypt 127.0.0.1:$port $R && check "data 250" "$out" &&
run $name -t verify -C "$tmp/ca.pem" localhost:$port $R
check "rcpt=<a@example.com> 451 4.7.5 .*(verify|certificate)" "$out" && ok || bad
stop
name=tls-verify
py --starttls --pipelining --cert "$tmp/good.pem" --key "$tmp/good.key"
run $name -t verify -C "$tmp/ca.pem" -n 2 localhost:$port $R &&
check "verified=yes" "$log" && check "all done ok=2 fail=0 nconns=1" "$out" &&
run $name -t verify -C "$tmp/ca.pem" 127.0.0.1:$port $R
check "451 4.7.5 .*(mismatch|verify)" "$out" && ok || bad
stop
name=tls-required
sink
run $name -t encrypt 127.0.0.1:$port $R
check "rcpt=<a@example.com> 451 4.7.0 .*STARTTLS" "$out" && ok || bad
stop

# 21. plaintext sent after "220 Ready to start TLS" is discarded.
name=tls-inject
py --starttls --inject --cert "$tmp/good.pem" --key "$tmp/good.key"
run $name -t encrypt 127.0.0.1:$port $R
check "discarding [0-9]+ bytes sent before the TLS handshake" "$log" &&
check "data 250" "$out" && ok || bad
stop

# 22. 20 MB through a slow-reading TLS next hop: memory stays flat (under
# ASan its quarantine inflates RSS: set RELAY_RSS_MAX_KB=80000 there).
name=big-slow
py --starttls --slow-read 65536 --cert "$tmp/good.pem" --key "$tmp/good.key"
run $name -t encrypt -s 20M 127.0.0.1:$port $R &&
check "data 250" "$out" &&
peak=$(sed -n 's/^rss_kb=[0-9]* peak_kb=\([0-9]*\)$/\1/p' "$out") &&
[ "${peak:-999999}" -lt "${RELAY_RSS_MAX_KB:-20000}" ] &&
[ "$(stat -c %s "$tmp/dump$port/1.eml")" -ge 20000000 ] && ok ||
{ echo "  peak_kb=${peak:-?}"; bad; }
stop

if [ "$fails" -gt 0 ]; then
	echo "$fails relay scenario(s) failed (KEEP=1 keeps $tmp)"
	exit 1
fi
echo "all relay scenarios passed"
