#!/bin/bash
# contrib/demo.sh: build smrelay and watch one message go through it,
# signed and encrypted by a policy rule on the way.
#
#   swaks --(STARTTLS)--> smrelayd 127.0.0.1:2525 --(STARTTLS if offered)-->
#   smrelayctl sink 127.0.0.1:2526 --> demo/maildir/new/<file>
#
# A demo CA, alice's key (our signer) and bob's certificate (the partner)
# are imported with smrelayctl, one rule says "sign and encrypt what
# @example.com sends to @partner.example", and openssl cms (an independent
# implementation) decrypts and verifies what the sink captured.
#
# Everything lives in demo/ (config, throwaway certificate, data_dir, the
# captured Maildir, logs); both daemons are stopped at the end.  Works as
# root on a fresh Debian 12 after `bash contrib/install-deps.sh`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
demo=$root/demo
build=$root/build-demo
LISTEN_PORT=${DEMO_PORT:-2525}
SINK_PORT=${DEMO_SINK_PORT:-2526}
pids=()

cleanup() {
	local p
	for p in "${pids[@]+"${pids[@]}"}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]+"${pids[@]}"}"; do
		wait "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# listening PORT: true once something listens on 127.0.0.1:PORT.
listening() {
	local hex
	hex=$(printf ':%04X' "$1")
	awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' /proc/net/tcp
}

# wait_port PORT PID NAME: wait (15 s max) for PID to listen on PORT.
wait_port() {

	for _ in $(seq 1 150); do
		listening "$1" && return 0
		kill -0 "$2" 2>/dev/null || { echo "$3 exited; its log:"; cat "$demo/$3.log"; exit 1; }
		sleep 0.1
	done
	echo "$3 is not listening on 127.0.0.1:$1 after 15 s; its log:"
	cat "$demo/$3.log"
	exit 1
}

for p in "$LISTEN_PORT" "$SINK_PORT"; do
	if listening "$p"; then
		echo "demo.sh: port $p is in use; set DEMO_PORT / DEMO_SINK_PORT" >&2
		exit 1
	fi
done

step "build (in build-demo/)"
if [ ! -x configure ]; then
	./autogen.sh
fi
mkdir -p "$build"
if [ ! -f "$build/Makefile" ]; then
	(cd "$build" && ../configure --quiet)
fi
make -C "$build" -j2 --no-print-directory >"$build/make.out" 2>&1 ||
	{ tail -n 30 "$build/make.out"; exit 1; }
SMRELAYD=$build/smrelayd
SMRELAYCTL=$build/smrelayctl
echo "built $SMRELAYD and $SMRELAYCTL"

step "a throwaway TLS certificate for localhost (demo/cert.pem)"
rm -rf "$demo"
mkdir -p "$demo/data" "$demo/maildir"
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=localhost" \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$demo/key.pem" -out "$demo/cert.pem" 2>/dev/null
openssl x509 -in "$demo/cert.pem" -noout -subject -enddate

step "configuration (demo/smrelay.conf)"
cat >"$demo/smrelay.conf" <<EOF
# smrelay demo configuration (see contrib/smrelay.conf.sample for every key)
listen = 127.0.0.1:$LISTEN_PORT tls=starttls
hostname = smrelay.demo
tls_cert_file = $demo/cert.pem
tls_key_file = $demo/key.pem
relay = 127.0.0.1:$SINK_PORT
relay_tls = may
data_dir = $demo/data
log_level = info
EOF
cat "$demo/smrelay.conf"
"$SMRELAYD" -c "$demo/smrelay.conf" -n

step "S/MIME: a demo CA, alice's key (our signer) and bob's certificate (partner)"
sh "$root/tests/smime/pki.sh" "$demo/pki" >"$demo/pki.log" 2>&1 ||
	{ echo "pki.sh failed:"; tail -n 20 "$demo/pki.log"; exit 1; }
"$SMRELAYCTL" -c "$demo/smrelay.conf" trust import "$demo/pki/trust.pem"
"$SMRELAYCTL" -c "$demo/smrelay.conf" key import "$demo/pki/alice.p12"
"$SMRELAYCTL" -c "$demo/smrelay.conf" cert import "$demo/pki/bob.pem"
"$SMRELAYCTL" -c "$demo/smrelay.conf" cert list

step "policy: sign and encrypt everything @example.com sends to @partner.example"
"$SMRELAYCTL" -c "$demo/smrelay.conf" policy add --sender @example.com \
	--recipient @partner.example --action sign,encrypt --if-no-cert reject
"$SMRELAYCTL" -c "$demo/smrelay.conf" policy list
"$SMRELAYCTL" -c "$demo/smrelay.conf" policy test --sender alice@example.com \
	--recipient bob@partner.example

step "start the capture sink on 127.0.0.1:$SINK_PORT (Maildir demo/maildir)"
"$SMRELAYCTL" sink --listen "127.0.0.1:$SINK_PORT" --maildir "$demo/maildir" \
	--tls-cert "$demo/cert.pem" --tls-key "$demo/key.pem" >"$demo/sink.log" 2>&1 &
pids+=($!)
wait_port "$SINK_PORT" "${pids[-1]}" sink

step "start smrelayd on 127.0.0.1:$LISTEN_PORT (STARTTLS), relaying to the sink"
"$SMRELAYD" -c "$demo/smrelay.conf" -f >"$demo/smrelayd.log" 2>&1 &
pids+=($!)
wait_port "$LISTEN_PORT" "${pids[-1]}" smrelayd

step "send one message with swaks over STARTTLS"
timeout 60 swaks --server "127.0.0.1:$LISTEN_PORT" -tls --helo client.demo \
	--from alice@example.com --to bob@partner.example \
	--header "Subject: Hello through smrelay" \
	--body "This message went through smrelayd over STARTTLS." | tee "$demo/swaks.log"

step "what arrived at the next hop"
file=""
for _ in $(seq 1 100); do
	file=$(find "$demo/maildir/new" -type f | head -n 1)
	[ -n "$file" ] && break
	sleep 0.1
done
if [ -z "$file" ]; then
	echo "no message in $demo/maildir/new; logs:"
	cat "$demo/smrelayd.log" "$demo/sink.log"
	exit 1
fi
echo "captured: $file"
echo "----------------------------------------------------------------------"
sed -n '1,/^\r\{0,1\}$/p' "$file"
echo "[... $(wc -c <"$file") bytes in all, base64 CMS EnvelopedData ...]"
echo "----------------------------------------------------------------------"
echo "The 'Received: ... by smrelay.demo' header shows the client's TLS session;"
echo "X-Smrelay-Processed says what the rule did; the body is S/MIME."
grep -q 'smime-type=enveloped-data' "$file" ||
	{ echo "the captured message is not encrypted; smrelayd log:"; cat "$demo/smrelayd.log"; exit 1; }
grep 'copy rcpts' "$demo/smrelayd.log" || true

step "bob's side, with an independent implementation (openssl cms): decrypt, then verify alice's signature"
openssl cms -decrypt -recip "$demo/pki/bob.pem" -inkey "$demo/pki/bob.key" \
	-in "$file" -out "$demo/decrypted.eml"
openssl cms -verify -CAfile "$demo/pki/trust.pem" -purpose smimesign \
	-in "$demo/decrypted.eml" -out "$demo/verified.txt"
echo "signed content as bob reads it:"
cat "$demo/verified.txt"

step "stop"
cleanup
pids=()
echo "done; config, logs and the Maildir are in $demo/"
