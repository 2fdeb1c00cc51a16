#!/bin/bash
# tests/integration/t_bigmsg.sh: big messages in bounded memory (issue 15).
# Ten 30 MB messages at once under a sign+encrypt rule: smrelayd-net's peak
# RSS (VmHWM, /proc) may grow by at most 8 MB per message in flight, every
# message arrives and openssl cms decrypts it with the recipient's key and
# verifies the signature inside, the content unchanged.  Hostile messages
# through the live path (one 50 MB header line, one 50 MB base64 line,
# 10^6 tiny MIME parts, 100 nested multiparts): a clear SMTP error, bounded
# memory, and another client is served meanwhile.  Ten more whose
# Content-Type claims an envelope over a body that is none, and ten with a
# forged mark of ours: bounded the same way.  Run it under the ASan
# build too (the RSS checks are then skipped).
# Harness: tests/integration/lib.sh; PKI: tests/smime/pki.sh.
set -u
TOP_SRC=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib.sh
. "$TOP_SRC/tests/integration/lib.sh"
need_bins
have openssl || { echo "SKIP all: openssl not installed"; exit 77; }

P=$IT_TMP/spki
NMSG=${BIG_N:-10}
SIZE=${BIG_SIZE:-30000000}
PER_MSG_KB=8192			# the bound: peak growth per message in flight
sh "$TOP_SRC/tests/smime/pki.sh" "$P" >"$IT_TMP/spki.log" 2>&1 ||
	{ echo "FAIL setup: pki.sh: $(tail -n 3 "$IT_TMP/spki.log" | tr '\n' ' ')"; exit 1; }

ctl() { "$SMRELAYCTL" -c "$CONF" "$@" 2>>"$CASE_DIR/ctl.log"; }

# setup: a sink, a config, alice's key, bob's certificate, the trust anchor
# and a sign+encrypt rule from example.com to partner.example.
setup() {
	start_sink || return 1
	it_certs || return 1
	PORT=$(free_port)
	CONF=$CASE_DIR/smrelayd.conf
	mkdir -p "$CASE_DIR/data"
	write_conf "$CONF" "$@"
	ctl trust import "$P/trust.pem" >/dev/null &&
		ctl key import "$P/alice.p12" >/dev/null &&
		ctl cert import "$P/bob.pem" >/dev/null &&
		ctl policy add --sender @example.com --recipient @partner.example \
			--action "${OUT_ACTIONS:-sign,encrypt}" >/dev/null ||
		{ fail_because "setup: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	# The inbound rule is there before the daemon starts: added while it
	# runs, it is seen within a second, and the first message may be
	# quicker than that.
	if [ -n "${IN_RULE:-}" ]; then
		ctl policy add --recipient alice@example.com --action decrypt,verify >/dev/null ||
			{ fail_because "policy add: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	fi
	start_smrelayd "$CONF" "$PORT" || return 1
	NET=$(smrelayd_child "$SMRELAYD_PID" smrelayd-net) || NET=$SMRELAYD_PID
}

# send_file FILE [CODE]: one transaction with FILE as DATA; the end of data
# must get CODE (default 250).
send_file() {
	"$PYTHON" "$IT_PY/chat.py" --timeout 300 127.0.0.1 "$PORT" expect:220 \
		line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<alice@example.com>" expect:250 \
		line:"RCPT TO:<bob@partner.example>" expect:250 \
		line:DATA expect:354 sendfile:"$1" expect:"${2:-250}" \
		line:QUIT expect:221
}

# send_all HOW FILE: NMSG transactions at once, each `HOW FILE`
# (send_file or send_in); every one must succeed.
send_all() {
	local i pids=() bad=0
	for i in $(seq 1 "$NMSG"); do
		"$1" "$2" 2>"$CASE_DIR/chat$i.log" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || bad=$((bad + 1)); done
	[ $bad = 0 ] ||
		fail_because "$bad of $NMSG transactions failed: $(tail -n 2 "$CASE_DIR"/chat*.log | tr '\n' ' ' | cut -c1-300)"
}

# small: a small message for the client that must be served meanwhile.
small() {
	[ -s "$IT_TMP/small.wire" ] ||
		"$PYTHON" "$IT_PY/bigmsg.py" plain --size 2000 --from alice@example.com \
			--to bob@partner.example "$IT_TMP/small.wire"
}

# growth_ok BASE N WHAT: smrelayd-net's peak grew by at most N x the bound.
growth_ok() {
	local peak grow
	if smrelayd_has_asan; then
		echo "# $3: RSS not checked (AddressSanitizer build)"
		return 0
	fi
	peak=$(rss_kb "$NET" VmHWM)
	grow=$((peak - $1))
	echo "# $3: VmHWM $1 -> $peak KiB, growth $grow KiB for $2 message(s): $((grow / $2)) KiB each (bound $PER_MSG_KB)"
	[ $((grow / $2)) -le $PER_MSG_KB ] ||
		fail_because "$3: peak grew by $grow KiB for $2 message(s) in flight (bound $PER_MSG_KB KiB each)"
}

# opens_verifies FILE ORIG: bob's key opens FILE, the signature inside
# verifies under the test CA, and the content is ORIG's body.
opens_verifies() {
	local o=$CASE_DIR/out.$(basename "$1")
	openssl cms -decrypt -recip "$P/bob.pem" -inkey "$P/bob.key" -in "$1" \
		-out "$o.dec" 2>"$o.err" ||
		{ fail_because "bob cannot decrypt $(basename "$1"): $(tail -n 1 "$o.err")"; return 1; }
	openssl cms -verify -CAfile "$P/trust.pem" -purpose smimesign -in "$o.dec" \
		-out "$o.ver" 2>"$o.err" ||
		{ fail_because "signature of $(basename "$1") does not verify: $(tail -n 1 "$o.err")"; return 1; }
	[ "$(awk 'b { print } /^\r?$/ { b = 1 }' "$o.ver" | tr -d '\r' | sha256sum)" = \
	    "$(awk 'b { print } /^\r?$/ { b = 1 }' "$2" | head -n -1 | tr -d '\r' | sha256sum)" ] ||
		{ fail_because "content of $(basename "$1") differs from what was sent"; return 1; }
	rm -f "$o.dec" "$o.ver"
}

# big_plain: the plain message of SIZE bytes from alice to bob (Message-ID
# <big.SIZE@...>) in $CASE_DIR/big.wire, ready for DATA.
big_plain() {
	"$PYTHON" "$IT_PY/bigmsg.py" plain --size "$SIZE" --from alice@example.com \
		--to bob@partner.example "$CASE_DIR/big.wire" ||
		{ fail_because "bigmsg.py failed"; return 1; }
}

# each_opens_verifies ORIG [CHECK]: every big message at the sink passes
# CHECK FILE (when given) and opens_verifies against ORIG, and there are
# NMSG of them.
each_opens_verifies() {
	local f n=0
	for f in $(grep -l "^Message-ID: <big.$SIZE@" $(sink_files)); do
		if [ -n "${2:-}" ]; then "$2" "$f" || return 1; fi
		opens_verifies "$f" "$1" || return 1
		n=$((n + 1))
	done
	assert_eq "$NMSG" "$n" "big messages at the sink, opened and verified"
}

# our_one_mark FILE: exactly one X-Smrelay-Processed field, ours.
our_one_mark() {
	[ "$(grep -c -i '^X-Smrelay-Processed:' "$1")" = 1 ] &&
		grep -q -i '^X-Smrelay-Processed: relay.test; sign,encrypt;' "$1" ||
		{ fail_because "$(basename "$1"): not exactly our one mark"; return 1; }
}

# 1. NMSG messages of SIZE bytes at once under sign+encrypt.
case_sign_encrypt() {
	local base
	setup || return 1
	small
	send_file "$IT_TMP/small.wire" && wait_delivered 1 || return 1
	big_plain || return 1
	base=$(rss_kb "$NET" VmHWM)
	send_all send_file "$CASE_DIR/big.wire" || return 1
	wait_delivered $((NMSG + 1)) 120 || return 1
	growth_ok "$base" "$NMSG" "$NMSG x $SIZE bytes sign+encrypt" || return 1
	each_opens_verifies "$CASE_DIR/big.wire" || return 1
	find "$CASE_DIR/data" -name 'smrelay-body.*' | grep -q . &&
		{ fail_because "spill files left in data_dir"; return 1; }
	return 0
}

# 1b. The same with a mark of ours the sender wrote on top (a forged loop
# guard): it is checked and dropped in pieces too, so memory stays bounded,
# and every copy arrives signed and encrypted with our one real mark.
case_forged_mark() {
	local base
	setup || return 1
	big_plain || return 1
	{ printf 'X-Smrelay-Processed: relay.test; sign,encrypt;\r\n mac=%064d\r\n' 0
	  cat "$CASE_DIR/big.wire"; } >"$CASE_DIR/marked.wire"
	rm -f "$CASE_DIR/big.wire"
	base=$(rss_kb "$NET" VmHWM)
	send_all send_file "$CASE_DIR/marked.wire" || return 1
	wait_delivered "$NMSG" 120 || return 1
	growth_ok "$base" "$NMSG" "$NMSG x $SIZE bytes with a forged mark, sign+encrypt" || return 1
	grep -q 'X-Smrelay-Processed field(s) of ours that do not verify removed' \
		"$CASE_DIR/smrelayd.log" ||
		{ fail_because "smrelayd.log does not say the forged mark was removed"; return 1; }
	each_opens_verifies "$CASE_DIR/marked.wire" our_one_mark
}

# 1c. The same whose Content-Type claims an envelope (application/pkcs7-mime;
# smime-type=enveloped-data) over a body that is no CMS: what the claim
# would switch off is decided by the structure, read in pieces, so memory
# stays bounded, and every copy arrives signed and encrypted for bob.
case_claimed_smime() {
	local base
	setup || return 1
	big_plain || return 1
	sed '1,/^\r\?$/s#^Content-Type: text/plain; charset=us-ascii#Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64#' \
		"$CASE_DIR/big.wire" >"$CASE_DIR/claim.wire"
	rm -f "$CASE_DIR/big.wire"
	grep -q '^Content-Type: application/pkcs7-mime' "$CASE_DIR/claim.wire" ||
		{ fail_because "no claimed envelope in the test message"; return 1; }
	base=$(rss_kb "$NET" VmHWM)
	send_all send_file "$CASE_DIR/claim.wire" || return 1
	wait_delivered "$NMSG" 120 || return 1
	growth_ok "$base" "$NMSG" "$NMSG x $SIZE bytes claiming enveloped-data, sign+encrypt" || return 1
	each_opens_verifies "$CASE_DIR/claim.wire"
}

# inbound TO SUBJECT ID: $CASE_DIR/ent, an entity of SIZE bytes, signed by
# bob and encrypted to alice by openssl cms, as the message from bob to TO
# (Message-ID <ID.SIZE@example.com>) in $CASE_DIR/in.wire, ready for DATA.
inbound() {
	local d=$CASE_DIR
	"$PYTHON" "$IT_PY/bigmsg.py" entity --size "$SIZE" "$d/ent" &&
		openssl cms -sign -binary -in "$d/ent" -signer "$P/bob.pem" -inkey "$P/bob.key" \
			-certfile "$P/int.pem" -out "$d/signed" 2>"$d/cms.err" &&
		openssl cms -encrypt -binary -stream -aes256 -in "$d/signed" -out "$d/env" \
			"$P/alice.pem" 2>>"$d/cms.err" ||
		{ fail_because "openssl cms: $(tail -n 1 "$d/cms.err")"; return 1; }
	{ printf 'From: <bob@partner.example>\r\nTo: <%s>\r\n' "$1"
	  printf 'Subject: %s\r\nMessage-ID: <%s.%s@example.com>\r\n' "$2" "$3" "$SIZE"
	  cat "$d/env"; } >"$d/in.eml"
	"$PYTHON" "$IT_PY/bigmsg.py" wire "$d/in.eml" "$d/in.wire" || return 1
	rm -f "$d/signed" "$d/env" "$d/in.eml"
}

# 2. NMSG messages of SIZE bytes, signed by bob and encrypted to alice by
# openssl cms, at once under a decrypt,verify rule: bounded growth again,
# every message arrives decrypted with smime=pass, and its signature still
# verifies with openssl cms, the content unchanged.
case_decrypt_verify() {
	local base f n d=$CASE_DIR
	local IN_RULE=1
	setup || return 1
	inbound alice@example.com "big inbound" bigin || return 1
	small
	send_file "$IT_TMP/small.wire" && wait_delivered 1 || return 1
	base=$(rss_kb "$NET" VmHWM)
	send_all send_in "$d/in.wire" || return 1
	wait_delivered $((NMSG + 1)) 120 || return 1
	growth_ok "$base" "$NMSG" "$NMSG x $SIZE bytes decrypt+verify" || return 1
	n=0
	for f in $(grep -l "^Message-ID: <bigin.$SIZE@" $(sink_files)); do
		grep -q '^Authentication-Results: relay.test; smime=pass' "$f" ||
			{ fail_because "$(basename "$f"): no smime=pass: $(grep -m1 '^Authentication-Results' "$f")"; return 1; }
		openssl cms -verify -CAfile "$P/trust.pem" -purpose smimesign -in "$f" \
			-out "$f.ver" 2>"$d/ver.err" ||
			{ fail_because "$(basename "$f"): openssl cms -verify: $(tail -n 1 "$d/ver.err")"; return 1; }
		cmp -s "$f.ver" "$d/ent" ||
			{ fail_because "$(basename "$f"): content differs"; return 1; }
		rm -f "$f.ver"
		n=$((n + 1))
	done
	assert_eq "$NMSG" "$n" "decrypted messages at the sink with smime=pass" || return 1
}

# 2b. A rule both ways (decrypt,verify,sign,encrypt: a re-encrypting
# gateway): NMSG messages of SIZE bytes, signed by bob and encrypted to
# alice, from alice to bob, at once: opened and verified, then (being
# signed already, as its structure proves) only encrypted for bob, all in
# pieces: bounded growth; bob's key opens each, bob's signature inside
# verifies, the content unchanged, and the Authentication-Results on top
# says smime=pass.
case_both_ways() {
	local base f n d=$CASE_DIR
	local OUT_ACTIONS=decrypt,verify,sign,encrypt
	setup || return 1
	inbound bob@partner.example "big both ways" bigboth || return 1
	base=$(rss_kb "$NET" VmHWM)
	send_all send_file "$d/in.wire" || return 1
	wait_delivered "$NMSG" 180 || return 1
	growth_ok "$base" "$NMSG" "$NMSG x $SIZE bytes decrypt+verify, then sign+encrypt" || return 1
	n=0
	for f in $(grep -l "^Message-ID: <bigboth.$SIZE@" $(sink_files)); do
		grep -q '^Authentication-Results: relay.test; smime=pass' "$f" ||
			{ fail_because "$(basename "$f"): no smime=pass: $(grep -m1 '^Authentication-Results' "$f")"; return 1; }
		openssl cms -decrypt -recip "$P/bob.pem" -inkey "$P/bob.key" -in "$f" \
			-out "$f.dec" 2>"$d/dec.err" ||
			{ fail_because "$(basename "$f"): bob cannot decrypt: $(tail -n 1 "$d/dec.err")"; return 1; }
		openssl cms -verify -CAfile "$P/trust.pem" -purpose smimesign -in "$f.dec" \
			-signer "$f.signer" -out "$f.ver" 2>"$d/ver.err" ||
			{ fail_because "$(basename "$f"): the signature inside: $(tail -n 1 "$d/ver.err")"; return 1; }
		grep -q 'bob@partner.example' <(openssl x509 -in "$f.signer" -noout -ext subjectAltName 2>&1) ||
			{ fail_because "$(basename "$f"): the signer inside is not bob (signed again?)"; return 1; }
		cmp -s "$f.ver" "$d/ent" ||
			{ fail_because "$(basename "$f"): content differs"; return 1; }
		rm -f "$f.dec" "$f.ver" "$f.signer"
		n=$((n + 1))
	done
	assert_eq "$NMSG" "$n" "messages at the sink, opened and verified" || return 1
	grep -q 'already signed: not signed again' "$CASE_DIR/smrelayd.log" ||
		fail_because "smrelayd.log does not say why it did not sign again"
}

# send_in FILE: one inbound transaction to alice.
send_in() {
	"$PYTHON" "$IT_PY/chat.py" --timeout 300 127.0.0.1 "$PORT" expect:220 \
		line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<bob@partner.example>" expect:250 \
		line:"RCPT TO:<alice@example.com>" expect:250 \
		line:DATA expect:354 sendfile:"$1" expect:250 \
		line:QUIT expect:221
}

# 3. an envelope whose outer length claims 2 GB under decrypt,verify:
# accepted and relayed as it came (still encrypted), the log says why,
# memory bounded, another client served meanwhile.
case_lying_envelope() {
	local base d=$CASE_DIR n p1 p2 f
	local IN_RULE=1
	setup || return 1
	small
	printf 'Content-Type: text/plain\r\n\r\nsecret\r\n' >"$d/ent"
	openssl cms -encrypt -binary -aes256 -outform DER -in "$d/ent" -out "$d/env.der" \
		"$P/alice.pem" 2>"$d/cms.err" || { fail_because "openssl cms: $(cat "$d/cms.err")"; return 1; }
	"$PYTHON" - "$d/env.der" "$d/lie.eml" <<'PY' || { fail_because "making the envelope"; return 1; }
import base64, sys
der = open(sys.argv[1], "rb").read()
assert der[0] == 0x30 and der[1] == 0x82
lie = b"\x30\x84\x7f\xff\xff\xff" + der[4:]
b = base64.encodebytes(lie).replace(b"\n", b"\r\n")
open(sys.argv[2], "wb").write(
    b"From: <bob@partner.example>\r\nTo: <alice@example.com>\r\n"
    b"Subject: lying envelope\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + b)
PY
	"$PYTHON" "$IT_PY/bigmsg.py" wire "$d/lie.eml" "$d/lie.wire" || return 1
	base=$(rss_kb "$NET" VmHWM)
	n=$(sink_count)
	send_in "$d/lie.wire" 2>"$d/chat.lie.log" &
	p1=$!
	send_file "$IT_TMP/small.wire" 2>"$d/chat.small.log" &
	p2=$!
	wait $p2 || { fail_because "the other client was not served"; return 1; }
	wait $p1 || { fail_because "lying envelope: $(grep '^S:' "$d/chat.lie.log" | tail -n 2 | tr '\n' ' ')"; return 1; }
	wait_delivered $((n + 2)) || return 1
	growth_ok "$base" 1 "lying envelope" || return 1
	f=$(grep -l "^Subject: lying envelope" $(sink_files)) ||
		{ fail_because "the message did not arrive"; return 1; }
	assert_file_matches "$f" "smime-type=enveloped-data" "relayed still encrypted" &&
		assert_file_matches "$CASE_DIR/smrelayd.log" "cannot decrypt" "log line"
}

# bad_input KIND SIZE CODE: a hostile message gets CODE at the end of data,
# memory stays bounded, and a small message sent meanwhile is delivered.
bad_input() {
	local base n p1 p2
	"$PYTHON" "$IT_PY/bigmsg.py" bad "$1" --size "$2" "$CASE_DIR/$1.wire" ||
		{ fail_because "bigmsg.py bad $1"; return 1; }
	base=$(rss_kb "$NET" VmHWM)
	n=$(sink_count)
	send_file "$CASE_DIR/$1.wire" "$3" 2>"$CASE_DIR/chat.$1.log" &
	p1=$!
	send_file "$IT_TMP/small.wire" 2>"$CASE_DIR/chat.small.$1.log" &
	p2=$!
	wait $p2 || { fail_because "$1: the other client was not served: $(tail -n 2 "$CASE_DIR/chat.small.$1.log" | tr '\n' ' ')"; return 1; }
	wait $p1 || { fail_because "$1: want $3: $(grep '^S:' "$CASE_DIR/chat.$1.log" | tail -n 2 | tr '\n' ' ')"; return 1; }
	wait_delivered $((n + 1)) || return 1
	growth_ok "$base" 1 "$1" || return 1
	rm -f "$CASE_DIR/$1.wire"
}

# 3. hostile messages under the same rule.
case_bad_inputs() {
	setup || return 1
	small
	bad_input longhdr 50000000 "500:line too long" &&
		bad_input longb64 50000000 "500:line too long" &&
		bad_input parts 36000000 "554:5.6.0" &&
		bad_input deep 100 "554:5.6.0"
}

run_case sign_encrypt case_sign_encrypt
run_case forged_mark case_forged_mark
run_case claimed_smime case_claimed_smime
run_case decrypt_verify case_decrypt_verify
run_case both_ways case_both_ways
run_case lying_envelope case_lying_envelope
run_case bad_inputs case_bad_inputs
it_finish
