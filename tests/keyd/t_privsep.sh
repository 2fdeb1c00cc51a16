#!/bin/bash
# tests/keyd/t_privsep.sh: smrelayd's three processes (issue 13) over real
# SMTP: the parent, the key process (smrelayd-keyd: every private key) and
# the network process (smrelayd-net: sessions, MIME, CMS).  What a user
# would check: the network process runs as `user` with no capability and
# cannot open the keys; a core dump of it holds no key (gcore, with a
# positive control); the key process killed under load loses no message;
# stopped, it gives 451 4.3.0, /healthz names it and after 30 s without an
# answer it is replaced; the network process killed is restarted.
# Harness: tests/integration/lib.sh; S/MIME PKI: tests/smime/pki.sh.
set -u
TOP_SRC=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../integration/lib.sh
. "$TOP_SRC/tests/integration/lib.sh"
need_bins
for b in swaks openssl; do
	have $b || { echo "SKIP all: $b not installed"; exit 77; }
done

P=$IT_TMP/spki
ROOT=0
[ "$(id -u)" = 0 ] && ROOT=1
sh "$TOP_SRC/tests/smime/pki.sh" "$P" >"$IT_TMP/spki.log" 2>&1 ||
	{ echo "FAIL setup: pki.sh: $(tail -n 3 "$IT_TMP/spki.log")"; exit 1; }
chmod 755 "$P"
cat "$P/alice-ec.pem" "$P/alice-ec.key" "$P/int.pem" >"$P/alice-ec.both.pem"

ctl() { "$SMRELAYCTL" -c "$CONF" "$@" 2>>"$CASE_DIR/ctl.log"; }

# setup [write_conf args]: a sink, a config (TLS key readable by root only),
# alice's keys (RSA and EC) and bob's certificate, "sign and encrypt what
# alice sends to bob" and "decrypt and verify what bob sends to alice",
# smrelayd started; NET and KEYD its children.
setup() {
	local keys=1
	[ "${1:-}" = nokeys ] && { keys=0; shift; }
	start_sink || return 1
	it_certs || return 1
	PORT=$(free_port)
	CONF=$CASE_DIR/smrelayd.conf
	mkdir -p "$CASE_DIR/data"
	cp "$PKI/srv.key" "$CASE_DIR/tls.key" && chmod 600 "$CASE_DIR/tls.key"
	write_conf "$CONF" "tls_key_file=$CASE_DIR/tls.key" "$@"
	{
		ctl trust import "$P/trust.pem" && ctl cert import "$P/bob.pem" &&
			{ [ $keys = 0 ] || { ctl key import "$P/alice.p12" &&
				ctl key import "$P/alice-ec.both.pem"; }; } &&
			ctl policy add --sender alice@example.com --recipient bob@partner.example \
				--action sign,encrypt &&
			ctl policy add --sender bob@partner.example --recipient alice@example.com \
				--action decrypt,verify
	} >/dev/null || { fail_because "setup: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	[ -z "${SETUP_HOOK:-}" ] || "$SETUP_HOOK" || return 1
	start_smrelayd "$CONF" "$PORT" || return 1
	children
}

children() {
	wait_for 10 smrelayd_child "$SMRELAYD_PID" smrelayd-net >/dev/null &&
		NET=$(smrelayd_child "$SMRELAYD_PID" smrelayd-net) &&
		KEYD=$(smrelayd_child "$SMRELAYD_PID" smrelayd-keyd) ||
		{ fail_because "smrelayd has no smrelayd-net and smrelayd-keyd children"; return 1; }
}

status_field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# msg NAME [FROM TO]: a plain message in $CASE_DIR/NAME.eml ($M).
msg() {
	M=$CASE_DIR/$1.eml
	printf 'From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s.%s@example.com>\r\n\r\nThe body of %s.\r\n' \
		"${2:-alice@example.com}" "${3:-bob@partner.example}" "$1" "$1" "$$" "$1" >"$M"
}

# signed_for_bob FILE: bob decrypts FILE, alice's signature verifies.
signed_for_bob() {
	openssl cms -decrypt -recip "$P/bob.pem" -inkey "$P/bob.key" -in "$1" \
		-out "$1.dec" 2>"$1.err" &&
		openssl cms -verify -CAfile "$P/trust.pem" -in "$1.dec" -out /dev/null \
			2>>"$1.err" ||
		{ fail_because "$(basename "$1"): not encrypted to bob and signed: $(tail -n 1 "$1.err")"; return 1; }
}

# ---------------------------------------------------------------- cases

case_processes() {
	setup || return 1
	local cap
	for p in "$NET" "$KEYD"; do
		cap=$(status_field "$p" CapEff)
		[ "$cap" = 0000000000000000 ] ||
			{ fail_because "process $p has capabilities: CapEff $cap"; return 1; }
	done
	[ "$(status_field "$NET" NoNewPrivs)" = 1 ] ||
		{ fail_because "smrelayd-net may gain privileges (NoNewPrivs 0)"; return 1; }
	if grep -q '^#define HAVE_SECCOMP 1' "$IT_BUILD/autoconfig.h" 2>/dev/null; then
		[ "$(status_field "$NET" Seccomp)" = 2 ] ||
			{ fail_because "smrelayd-net has no seccomp filter"; return 1; }
	else
		echo "# built without libseccomp: no filter to check"
	fi
	[ "$(status_field "$KEYD" CapBnd)" = 0000000000000000 ] ||
		{ fail_because "smrelayd-keyd keeps a capability bounding set"; return 1; }
	if [ $ROOT = 1 ]; then
		local uid
		uid=$(status_field "$NET" Uid)
		[ "$uid" = "$(id -u smrelay)" ] ||
			{ fail_because "smrelayd-net runs as uid $uid, not smrelay"; return 1; }
		# as the network process's user: the keys cannot be opened
		for f in "$CASE_DIR/data/keys.db" "$CASE_DIR/tls.key"; do
			[ -e "$f" ] || { fail_because "$f does not exist"; return 1; }
			if setpriv --reuid=smrelay --regid=smrelay --clear-groups \
			    head -c 1 "$f" >/dev/null 2>&1; then
				fail_because "user smrelay can read $f"
				return 1
			fi
		done
		[ "$(stat -c %a "$CASE_DIR/data/keys.db")" = 600 ] ||
			{ fail_because "keys.db is mode $(stat -c %a "$CASE_DIR/data/keys.db")"; return 1; }
	else
		echo "# not root: uid and file checks skipped"
	fi
	# and it holds no descriptor of them
	if ls -l "/proc/$NET/fd" 2>/dev/null | grep -q -E 'keys\.db|tls\.key'; then
		fail_because "smrelayd-net has a key file open"
		return 1
	fi
	msg first && swaks_send --from alice@example.com --to bob@partner.example \
		--data "@$M" -tls || return 1
	wait_delivered 1 && signed_for_bob "$(sink_files | head -n 1)" || return 1
	# the loop-guard mark is made by the key process: its secret is in
	# the key file, no longer in smrelay.db (which smrelay can read)
	grep -q -i -A1 '^X-Smrelay-Processed:' "$(sink_files | head -n 1)" &&
		grep -q -E '^[ \t]mac=[0-9a-f]{64}' "$(sink_files | head -n 1)" ||
		{ fail_because "the message has no loop-guard mark"; return 1; }
	if have sqlite3; then
		[ "$(sqlite3 "$CASE_DIR/data/smrelay.db" "SELECT count(*) FROM secrets WHERE name = 'mark'")" = 0 ] ||
			{ fail_because "smrelay.db still holds the mark secret"; return 1; }
		[ "$(sqlite3 "$CASE_DIR/data/keys.db" "SELECT length(value) FROM meta WHERE name = 'secret:mark'")" = 32 ] ||
			{ fail_because "keys.db holds no mark secret"; return 1; }
	fi
}

# needle FILE KEYFILE: hex strings of KEYFILE's secret numbers (RSA prime p
# or EC private scalar), big-endian as in DER and little-endian as in an
# OpenSSL BIGNUM, one per line, for find_secrets.
secrets_of() {
	openssl pkey -in "$1" -text -noout 2>/dev/null | awk '
		/^(prime1|priv):/ { on = 1; next }
		/^[a-zA-Z]/ { on = 0 }
		on { gsub(/[ :]/, ""); h = h $0 }
		END { sub(/^00/, "", h); print h }' | grep -v '^$'
}

# find_secrets CORE KEYFILE...: how many of the keys' secrets are in CORE.
find_secrets() {
	local core=$1
	shift
	local k
	for k in "$@"; do secrets_of "$k"; done |
		python3 -c '
import sys
core = open(sys.argv[1], "rb").read()
n = 0
for h in sys.stdin.read().split():
    b = bytes.fromhex(h)
    # a 24-byte window from the middle: the whole number or any part of it
    # long enough to matter, in either byte order
    mid = b[len(b) // 2 - 12:len(b) // 2 + 12]
    if mid in core or mid[::-1] in core:
        n += 1
print(n)' "$core"
}

case_gcore() {
	have gcore || { skip "gcore (gdb) not installed"; return 0; }
	# an AddressSanitizer process maps terabytes of shadow memory
	smrelayd_has_asan && { skip "AddressSanitizer build"; return 0; }
	setup || return 1
	local i keys core ctl_core
	keys=("$P/alice.key" "$P/alice-ec.key" "$CASE_DIR/tls.key")
	# TLS handshakes, signing and encrypting, decrypting and verifying
	for i in 1 2 3; do
		msg "out$i" && swaks_send --from alice@example.com --to bob@partner.example \
			--data "@$M" -tls || return 1
	done
	msg in bob@partner.example alice@example.com
	openssl cms -sign -signer "$P/bob.pem" -inkey "$P/bob.key" -in "$M" \
		-out "$M.signed" 2>/dev/null &&
		openssl cms -encrypt -aes256 -in "$M.signed" -out "$M.enc" "$P/alice.pem" \
			2>/dev/null || { fail_because "openssl cms for the inbound message"; return 1; }
	{ printf 'From: bob@partner.example\r\nTo: alice@example.com\r\nSubject: in\r\n'; cat "$M.enc"; } >"$M.wire"
	swaks_send --from bob@partner.example --to alice@example.com --data "@$M.wire" -tls ||
		return 1
	wait_delivered 4 || return 1
	grep -l -r -q "The body of in" "$SINK_DIR" ||
		{ fail_because "the inbound message was not decrypted"; return 1; }
	core=$CASE_DIR/net.core
	gcore -o "$core" "$NET" >"$CASE_DIR/gcore.log" 2>&1
	core=$(ls "$core".* 2>/dev/null | head -n 1)
	[ -s "$core" ] || { fail_because "gcore of smrelayd-net: $(tail -n 1 "$CASE_DIR/gcore.log")"; return 1; }
	n=$(find_secrets "$core" "${keys[@]}")
	if have sqlite3; then
		# nor the loop-guard mark's secret (the key process makes marks)
		mark=$(sqlite3 "$CASE_DIR/data/keys.db" "SELECT hex(value) FROM meta WHERE name = 'secret:mark'")
		[ ${#mark} = 64 ] || { rm -f "$core"; fail_because "keys.db holds no mark secret"; return 1; }
		python3 -c 'import sys; sys.exit(bytes.fromhex(sys.argv[2]) in open(sys.argv[1], "rb").read())' \
			"$core" "$mark" || { rm -f "$core"; fail_because "the mark secret is in a dump of smrelayd-net"; return 1; }
	fi
	rm -f "$core"
	[ "$n" = 0 ] || { fail_because "$n key secret(s) found in a dump of smrelayd-net"; return 1; }
	# positive control: a process that loaded the same keys in the usual
	# way (openssl s_server with the TLS key; smrelayctl smime sign
	# reading alice's keys) is dumped and searched the same way
	local sport
	sport=$(free_port)
	bg s_server openssl s_server -accept "127.0.0.1:$sport" \
		-cert "$PKI/srv.pem" -key "$CASE_DIR/tls.key"
	wait_listen "$sport" "$BG_PID" 10 ||
		{ fail_because "openssl s_server did not start: $(tail -n 2 "$CASE_DIR/s_server.log")"; return 1; }
	gcore -o "$CASE_DIR/ctl.core" "$BG_PID" >>"$CASE_DIR/gcore.log" 2>&1
	ctl_core=$(ls "$CASE_DIR/ctl.core".* 2>/dev/null | head -n 1)
	[ -s "$ctl_core" ] || { fail_because "gcore of openssl s_server failed"; return 1; }
	n=$(find_secrets "$ctl_core" "$CASE_DIR/tls.key")
	rm -f "$ctl_core"
	[ "$n" = 1 ] || { fail_because "positive control: the TLS key's secret not found in a dump of openssl s_server ($n)"; return 1; }
}

# 1000 messages signed and encrypted while the key process is killed three
# times: each arrives once, signed by alice and encrypted to bob.
case_keyd_killed_under_load() {
	setup || return 1
	local n=${KEYD_LOAD_N:-1000} k got ids
	bg load "$PYTHON" "$TOP_SRC/tests/keyd/load.py" --port "$PORT" --count "$n" \
		--from alice@example.com --to bob@partner.example --tag "$CASE.$$"
	local lpid=$BG_PID
	for k in 1 2 3; do
		wait_for 120 _count_ge $((n * k / 4)) || break
		wait_for 10 smrelayd_child "$SMRELAYD_PID" smrelayd-keyd >/dev/null
		if KEYD=$(smrelayd_child "$SMRELAYD_PID" smrelayd-keyd) && kill -KILL "$KEYD"; then
			echo "kill -9 key process $KEYD at $(sink_count)" >>"$CASE_DIR/driver.log"
		else
			echo "no key process to kill at $(sink_count)" >>"$CASE_DIR/driver.log"
		fi
	done
	wait "$lpid"
	local rc=$?
	untrack "$lpid"
	[ $rc = 0 ] || { fail_because "load: $(tail -n 3 "$CASE_DIR/load.log" | tr '\n' ' ')"; return 1; }
	grep -c "kill -9" "$CASE_DIR/driver.log" | grep -q '^3$' ||
		{ fail_because "the key process was not killed 3 times"; return 1; }
	wait_delivered "$n" 60 || return 1
	got=$(sink_count)
	ids=$(sink_files | xargs grep -h -i -m1 '^Message-ID:' | tr -d '\r' | sort -u | wc -l)
	[ "$got" = "$n" ] && [ "$ids" = "$n" ] ||
		{ fail_because "$got messages at the sink, $ids distinct (want $n each)"; return 1; }
	local f bad=0
	for f in $(sink_files); do
		signed_for_bob "$f" >/dev/null || bad=$((bad + 1))
	done
	[ $bad = 0 ] || { fail_because "$bad of $n messages not signed and encrypted ($IT_REASON)"; return 1; }
	echo "# $(cat "$CASE_DIR/load.log"); restarts: $(grep -c 'key process restarted: passing' "$CASE_DIR/smrelayd.log")"
}

# A key process that does not answer: S/MIME work gets 451 4.3.0 within the
# client's bound, and the next message after it answers again is signed.
case_keyd_stopped() {
	setup || return 1
	kill -STOP "$KEYD"
	msg stopped
	swaks_expect_reject 4 --from alice@example.com --to bob@partner.example \
		--data "@$M"
	local rc=$? tls
	# a TLS handshake needs the key process too: it fails, it does not hang
	timeout 30 swaks --server "127.0.0.1:$PORT" --quit-after TLS -tls \
		>"$CASE_DIR/tls-stopped.log" 2>&1
	tls=$?
	kill -CONT "$KEYD"
	[ $rc = 0 ] || return 1
	grep -q '451 4.3.0' "$SWAKS_LOG" ||
		{ fail_because "no 451 4.3.0 with the key process stopped: $(grep -E '^ *<~?\*\*' "$SWAKS_LOG" | tr '\n' ' ')"; return 1; }
	[ $tls != 0 ] && [ $tls != 124 ] ||
		{ fail_because "STARTTLS with the key process stopped: swaks exit $tls (want a failed handshake)"; return 1; }
	msg after && swaks_send --from alice@example.com --to bob@partner.example \
		--data "@$M" -tls || return 1
	wait_delivered 1 && signed_for_bob "$(sink_files | head -n 1)"
}

# The key process stops answering and stays so (SIGSTOP stands in for a
# token that hangs): mail that needs a key gets 451, /healthz says which
# key process does not answer, and 30 s on the network process asks the
# parent for a new one; signed mail goes through again, /healthz is 200.
case_keyd_wedged() {
	local old
	MPORT=$(free_port)
	setup metrics_listen="127.0.0.1:$MPORT" || return 1
	old=$KEYD
	wait_for 10 health_is 200 || { fail_because "/healthz not 200: $HEALTH"; return 1; }
	stopped_then_replaced "$old" "key process 0: not answering for" _new_keyd \
		"key process 0 pid $old has not answered for 30 s: killing it" _wedged_send || return 1
	"$PYTHON" "$TOP_SRC/tests/metrics/httpc.py" get "http://127.0.0.1:$MPORT/metrics" >"$CASE_DIR/metrics.txt" ||
		{ fail_because "GET /metrics failed"; return 1; }
	grep -q '^smrelay_process_restarts_total{process="key",reason="wedged"} 1$' "$CASE_DIR/metrics.txt" &&
		grep -q '^smrelay_process_restarts_total{process="key",reason="exited"} 0$' "$CASE_DIR/metrics.txt" ||
		{ fail_because "restarts counted: $(grep restarts "$CASE_DIR/metrics.txt" | tr '\n' ' ')"; return 1; }
	msg after && swaks_send --from alice@example.com --to bob@partner.example \
		--data "@$M" -tls || return 1
	wait_delivered 1 && signed_for_bob "$(sink_files | head -n 1)"
}
_wedged_send() {
	msg wedged
	swaks_expect_reject 4 --from alice@example.com --to bob@partner.example \
		--data "@$M"
}

# A TLS handshake waits for the key process's signature without stopping
# the event loop: with the key process stopped, another client is served
# while the handshake waits; continued, the handshake completes.
case_handshake_async() {
	setup || return 1
	local out
	coproc HS { "$PYTHON" "$TOP_SRC/tests/keyd/hs_noblock.py" "$PORT" \
		"$CASE_DIR/smrelayd.log" 2>&1; }
	kill -STOP "$KEYD"
	read -r -t 30 out <&"${HS[0]}"
	kill -CONT "$KEYD"
	if [ "$out" != "other client served while the handshake waited" ]; then
		fail_because "${out:-hs_noblock.py said nothing}"
		return 1
	fi
	echo go >&"${HS[1]}"
	read -r -t 30 out <&"${HS[0]}"
	wait "$HS_PID" 2>/dev/null
	[[ $out == "handshake completed: "* ]] || fail_because "${out:-no answer after the key process went on}"
}

# The network process killed: the parent restarts it (and its key process),
# the same listener serves the next client.
case_net_killed() {
	setup || return 1
	local old=$NET open
	# two sessions open when it dies: its successor does not count them
	exec 7<>"/dev/tcp/127.0.0.1/$PORT" 8<>"/dev/tcp/127.0.0.1/$PORT" ||
		{ fail_because "cannot connect to $PORT"; return 1; }
	wait_for 10 _open_is 2 || { fail_because "smrelay_connections_open is '$OPEN', not 2"; return 1; }
	kill -KILL "$NET"
	wait_for 10 _new_net "$old" ||
		{ fail_because "no new smrelayd-net after kill -9 of $old"; return 1; }
	children || return 1
	exec 7<&- 8<&-
	wait_for 10 _stats_answer ||
		{ fail_because "the new network process does not answer smrelayctl stats"; return 1; }
	_open_is 0 || { fail_because "smrelay_connections_open is '$OPEN' after the restart, not 0"; return 1; }
	msg after && swaks_send --from alice@example.com --to bob@partner.example \
		--data "@$M" -tls || return 1
	wait_delivered 1 && signed_for_bob "$(sink_files | head -n 1)" || return 1
	# counted once, as a network process that died (its key process
	# stopped with it is no restart of its own)
	local got
	got=$(ctl stats --json | "$PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join("%s/%s=%d" % (s["labels"]["process"], s["labels"]["reason"], s["value"])
    for s in d["smrelay_process_restarts_total"]))')
	assert_eq "network/exited=1 network/wedged=0 key/exited=0 key/wedged=0" "$got" \
		"smrelay_process_restarts_total after kill -9 of the network process"
}
_stats_answer() { ctl stats >/dev/null; }
_open_is() {
	OPEN=$(ctl stats --json | "$PYTHON" -c '
import json, sys
print(json.load(sys.stdin)["smrelay_connections_open"][0]["value"])')
	[ "$OPEN" = "$1" ]
}
_new_net() {
	local n
	n=$(smrelayd_child "$SMRELAYD_PID" smrelayd-net) && [ "$n" != "$1" ] &&
		smrelayd_child "$SMRELAYD_PID" smrelayd-keyd >/dev/null
}

# A key imported while smrelayd runs is used within seconds: the network
# process sees its certificate, the key process (without capabilities, its
# key file open from the start) its key.
case_key_import_live() {
	setup nokeys || return 1
	msg before && swaks_expect_reject 4 --from alice@example.com \
		--to bob@partner.example --data "@$M" || return 1
	ctl key import "$P/alice.p12" >/dev/null ||
		{ fail_because "key import: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	msg after
	wait_for 10 swaks_send --from alice@example.com --to bob@partner.example \
		--data "@$M" || { fail_because "not signed after the key was imported: $IT_REASON"; return 1; }
	wait_delivered 1 && signed_for_bob "$(sink_files | head -n 1)" || return 1
	grep -q "keyd: .*error\|unable to open" "$CASE_DIR/smrelayd.log" &&
		{ fail_because "key process: $(grep -m1 "keyd: " "$CASE_DIR/smrelayd.log")"; return 1; }
	# the network process may ask for the new key before the key
	# process's next look at the key file: a key it does not have makes
	# it look at once, so no request is answered "no key"
	grep -q "keyd id=[0-9a-f]* sign id=[0-9]* error=2 " "$CASE_DIR/smrelayd.log" &&
		{ fail_because "a signature was refused for want of the new key: $(grep -m1 "error=2 " "$CASE_DIR/smrelayd.log")"; return 1; }
	return 0
}

# A key on a PKCS#11 token (SoftHSM2), made there and never extractable:
# `key import pkcs11:URI`, `key list` shows the URI (not its PIN); mail
# alice sends is signed on the token (openssl cms verifies it, with the
# token's certificate as signer), mail encrypted to the token's
# certificate is decrypted by smrelayd; after kill -9 of the key process
# the restarted one logs in again and signs.
HSM_MOD=
# The user PIN of the test token: no hex digit run, so a fingerprint in
# `key list` can never look like it.
HSM_PIN=kqzPINxy
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
	[ -f "$m" ] && { HSM_MOD=$m; break; }
done
hsm_token() {
	local d=$CASE_DIR/hsm p11
	mkdir -p "$d/tokens"
	export SOFTHSM2_CONF=$d/softhsm2.conf
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
		"$d/tokens" >"$SOFTHSM2_CONF"
	p11=(pkcs11-tool --module "$HSM_MOD" --token-label smrelay-hsm --login --pin "$HSM_PIN")
	printf '[ u ]\nbasicConstraints = CA:false\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = emailProtection\nsubjectAltName = email:alice@example.com\n' >"$d/u.cnf"
	{
		softhsm2-util --init-token --free --label smrelay-hsm --pin "$HSM_PIN" --so-pin 5678 &&
			"${p11[@]}" --keypairgen --key-type rsa:2048 --id 42 --label alice-hsm &&
			"${p11[@]}" --read-object --type pubkey --id 42 -o "$d/pub.der" &&
			openssl pkey -pubin -inform DER -in "$d/pub.der" -out "$d/pub.pem" &&
			openssl x509 -req -in "$P/alice.csr" -CA "$P/int.pem" -CAkey "$P/int.key" \
				-force_pubkey "$d/pub.pem" -days 30 -set_serial 0x4242 \
				-extfile "$d/u.cnf" -extensions u -out "$d/alice-hsm.pem" &&
			openssl x509 -in "$d/alice-hsm.pem" -outform DER -out "$d/alice-hsm.der" &&
			"${p11[@]}" --write-object "$d/alice-hsm.der" --type cert --id 42 --label alice-hsm
	} >"$d/setup.log" 2>&1 || { fail_because "SoftHSM2 token: $(tail -n 2 "$d/setup.log" | tr '\n' ' ')"; return 1; }
	HSM_URI="pkcs11:token=smrelay-hsm;object=alice-hsm?module-path=$HSM_MOD&pin-value=$HSM_PIN"
	# the intermediate, so that signatures carry the chain to the root
	ctl cert import "$P/int.pem" >/dev/null &&
		ctl key import "$HSM_URI" >/dev/null ||
		{ fail_because "key import pkcs11: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
}
case_pkcs11() {
	have softhsm2-util && have pkcs11-tool && [ -n "$HSM_MOD" ] ||
		{ skip "SoftHSM2 or pkcs11-tool not installed"; return 0; }
	SETUP_HOOK=hsm_token setup nokeys || return 1
	local list f signer
	list=$(ctl key list)
	grep -q 'pkcs11:token=smrelay-hsm;object=alice-hsm?module-path=.*pin-value=\*\*\*' <<<"$list" ||
		{ fail_because "key list does not show the token URI: $list"; return 1; }
	grep -q "$HSM_PIN" <<<"$list" && { fail_because "key list shows the PIN: $list"; return 1; }
	# the database's bytes, its WAL included
	cat "$CASE_DIR/data/smrelay.db"* | grep -a -q "pin-value=$HSM_PIN" &&
		{ fail_because "smrelay.db holds the PIN"; return 1; }
	cat "$CASE_DIR/data/keys.db"* | grep -a -q "pin-value=$HSM_PIN" ||
		{ fail_because "the key file does not hold the whole URI"; return 1; }
	msg hsm && swaks_send --from alice@example.com --to bob@partner.example \
		--data "@$M" -tls || return 1
	wait_delivered 1 || return 1
	f=$(sink_files | head -n 1)
	signed_for_bob "$f" || return 1
	openssl cms -verify -CAfile "$P/trust.pem" -in "$f.dec" -signer "$f.signer" \
		-out /dev/null 2>/dev/null &&
		cmp -s <(openssl x509 -in "$f.signer" -outform DER) "$CASE_DIR/hsm/alice-hsm.der" ||
		{ fail_because "the signature is not by the token's certificate"; return 1; }
	# inbound: encrypted to the token's certificate
	msg hsmin bob@partner.example alice@example.com
	openssl cms -encrypt -aes256 -in "$M" -out "$M.enc" "$CASE_DIR/hsm/alice-hsm.pem" 2>/dev/null ||
		{ fail_because "openssl cms -encrypt"; return 1; }
	{ printf 'From: bob@partner.example\r\nTo: alice@example.com\r\nSubject: hsmin\r\n'; cat "$M.enc"; } >"$M.wire"
	swaks_send --from bob@partner.example --to alice@example.com --data "@$M.wire" ||
		return 1
	wait_delivered 2 || return 1
	grep -l -r -q "The body of hsmin" "$SINK_DIR" ||
		{ fail_because "mail encrypted to the token's certificate was not decrypted"; return 1; }
	# the key process again, after kill -9: it logs in to the token anew
	kill -KILL "$KEYD"
	wait_for 10 _new_keyd "$KEYD" || { fail_because "no new key process"; return 1; }
	msg hsm2
	wait_for 10 swaks_send --from alice@example.com --to bob@partner.example \
		--data "@$M" || { fail_because "not signed after the key process restarted: $IT_REASON"; return 1; }
	wait_delivered 3
}
_new_keyd() {
	local k
	k=$(smrelayd_child "$SMRELAYD_PID" smrelayd-keyd) && [ "$k" != "$1" ]
}

# Start-up refuses what cannot work, saying why.
case_start_errors() {
	[ $ROOT = 1 ] || { skip "not root"; return 0; }
	it_certs || return 1
	PORT=$(free_port)
	CONF=$CASE_DIR/smrelayd.conf
	mkdir -p "$CASE_DIR/data"
	write_conf "$CONF" relay=127.0.0.1:1 user=nosuchuser
	"$SMRELAYD" -c "$CONF" -f >"$CASE_DIR/start1.log" 2>&1 &&
		{ fail_because "started with user = nosuchuser"; return 1; }
	grep -q "user nosuchuser: no such user" "$CASE_DIR/start1.log" ||
		{ fail_because "no clear error for a missing user: $(tail -n 1 "$CASE_DIR/start1.log")"; return 1; }
	write_conf "$CONF" relay=127.0.0.1:1 "tls_key_file=$PKI/wrong.key"
	"$SMRELAYD" -c "$CONF" -f >"$CASE_DIR/start2.log" 2>&1 &&
		{ fail_because "started with a TLS key that is not the certificate's"; return 1; }
	grep -q "keys:" "$CASE_DIR/start2.log" ||
		{ fail_because "no clear error for a wrong TLS key: $(tail -n 1 "$CASE_DIR/start2.log")"; return 1; }
	mkdir -m 700 "$CASE_DIR/closed"
	write_conf "$CONF" relay=127.0.0.1:1 "data_dir=$CASE_DIR/closed/data"
	"$SMRELAYD" -c "$CONF" -f >"$CASE_DIR/start3.log" 2>&1 &&
		{ fail_because "started with a data_dir user smrelay cannot reach"; return 1; }
	grep -q "cannot reach it" "$CASE_DIR/start3.log" ||
		{ fail_because "no clear error for an unreachable data_dir: $(tail -n 1 "$CASE_DIR/start3.log")"; return 1; }
}

# Bleichenbacher's oracle through the daemon: envelopes for alice whose
# encrypted content key has a bad PKCS#1 padding, or unwraps (in the key
# process) to a key of the wrong length, are relayed encrypted like one
# whose well-padded key is simply not the content's (GCM: its tag fails),
# with the same log note; the sender gets 250 for each; a good one from
# the same run is decrypted; a dozen bad paddings at once make the key
# process neither fail nor refuse an unwrap (implicit rejection).
case_padding_oracle() {
	setup || return 1
	local d=$CASE_DIR v notes n r
	msg in bob@partner.example alice@example.com
	openssl cms -encrypt -aes-256-gcm -binary -outform DER -in "$M" -out "$d/gcm.der" \
		"$P/alice.pem" 2>"$d/cms.err" ||
		{ fail_because "openssl cms: $(tail -n 1 "$d/cms.err")"; return 1; }
	openssl x509 -in "$P/alice.pem" -noout -pubkey >"$d/alice.pub"
	head -c 16 /dev/urandom >"$d/k16"
	head -c 32 /dev/urandom >"$d/k32"
	openssl pkeyutl -encrypt -pubin -inkey "$d/alice.pub" -in "$d/k16" -out "$d/ek-short" &&
		openssl pkeyutl -encrypt -pubin -inkey "$d/alice.pub" -in "$d/k32" -out "$d/ek-other" ||
		{ fail_because "openssl pkeyutl"; return 1; }
	python3 "$TOP_SRC/tests/smime/rewrap.py" badpad >"$d/ek-pad"
	cp "$d/gcm.der" "$d/good.der"
	cp "$d/ek-pad" "$d/ek-reenc"
	# reenc: a bad padding under the issuer's name spelt in
	# PrintableString (the certificate has UTF8String): the same name to
	# X.509, so our code, not OpenSSL's, must open it as well
	for v in good pad short other reenc; do
		r=()
		[ $v = reenc ] && r=(--respell-issuer)
		[ $v = good ] || python3 "$TOP_SRC/tests/smime/rewrap.py" "$d/gcm.der" "$d/ek-$v" \
			"$d/$v.der" "${r[@]}" ||
			{ fail_because "rewrapping the envelope ($v)"; return 1; }
		{
			printf 'From: bob@partner.example\r\nTo: alice@example.com\r\nSubject: oracle %s\r\n' $v
			printf 'MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m\r\n'
			printf 'Content-Transfer-Encoding: base64\r\n\r\n'
			base64 -w 76 <"$d/$v.der" | sed 's/$/\r/'
		} >"$d/$v.wire"
		swaks_send --from bob@partner.example --to alice@example.com --data "@$d/$v.wire" ||
			{ fail_because "$v: not accepted with 250"; return 1; }
	done
	# a dozen more with bad paddings at once: the key process answers
	# each with a stand-in, refuses none (its failed-unwrap limit is 10
	# a second) and logs no failed unwrap
	local pids=() p
	for p in $(seq 1 12); do
		swaks_send --from bob@partner.example --to alice@example.com \
			--data "@$d/pad.wire" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || { fail_because "a bad padding was not accepted with 250"; return 1; }
	done
	wait_delivered 17 || return 1
	! grep -E "unwrap rate limit|decrypt id=[0-9]+ error" "$d/smrelayd.log" ||
		{ fail_because "the key process failed or refused unwraps"; return 1; }
	for v in pad short other reenc; do
		n=$(grep -l "^Subject: oracle $v" $(sink_files) | head -n 1)
		[ -n "$n" ] && grep -q "smime-type=authEnveloped-data" "$n" ||
			{ fail_because "$v: not relayed encrypted"; return 1; }
	done
	# decrypted, it carries the encrypted message's own Subject ("in"),
	# not the outer one: one Subject, the protected one
	n=$(grep -l "^The body of in" $(sink_files) | head -n 1)
	[ -n "$n" ] && [ "$(tr -d '\r' <"$n" | sed '/^$/q' | grep -c '^Subject:')" = 1 ] &&
		tr -d '\r' <"$n" | grep -q '^Subject: in$' ||
		{ fail_because "the good envelope was not decrypted (with one Subject, its own)"; return 1; }
	notes=$(grep -o "copy note: cannot decrypt.*" "$d/smrelayd.log" | sort | uniq -c)
	[ "$(grep -c "copy note: cannot decrypt" "$d/smrelayd.log")" = 16 ] &&
		[ "$(printf '%s\n' "$notes" | wc -l)" = 1 ] ||
		{ fail_because "the bad keys gave different notes: $notes"; return 1; }
	printf '%s\n' "$notes" | grep -q "authentication tag mismatch" ||
		{ fail_because "the note is not a tag mismatch: $notes"; return 1; }
}

run_case processes case_processes
run_case gcore case_gcore
run_case keyd_stopped case_keyd_stopped
run_case keyd_wedged case_keyd_wedged
run_case handshake_async case_handshake_async
run_case net_killed case_net_killed
run_case key_import_live case_key_import_live
run_case pkcs11 case_pkcs11
run_case start_errors case_start_errors
run_case padding_oracle case_padding_oracle
run_case keyd_killed_under_load case_keyd_killed_under_load
it_finish
