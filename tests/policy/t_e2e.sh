#!/bin/bash
# tests/policy/t_e2e.sh: policy rules end to end over real SMTP: swaks ->
# smrelayd -> `smrelayctl sink` Maildir, configured only through smrelayctl
# (key, cert, trust, policy).  Every result is checked by peers that are not
# our code (openssl cms, gpgsm): reply codes at RCPT and DATA, which
# recipients each delivered copy is for (Delivered-To), and which keys can
# open it (each intended recipient's, and nobody else's).
# Harness (PASS/FAIL lines, ports, processes, cleanup): tests/integration/lib.sh;
# test PKI: tests/smime/pki.sh, plus carol@partner.example made here.
# Needs swaks and openssl; the gpgsm checks are skipped without gpgsm.
set -u
TOP_SRC=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../integration/lib.sh
. "$TOP_SRC/tests/integration/lib.sh"
# shellcheck source=../smime/gpgsm.sh
. "$TOP_SRC/tests/smime/gpgsm.sh"
need_bins
for b in swaks openssl; do
	have $b || { echo "SKIP all: $b not installed"; exit 77; }
done

HOST=relay.test			# write_conf's default hostname
P=$IT_TMP/spki			# S/MIME PKI
G=$IT_TMP/gnupg			# gpgsm home (bob's and alice's keys)
BODY="The launch code is 0000, says the e2e test."

# Stop gpg-agent too when the harness cleans up.
e2e_cleanup() {
	local rc=$?
	[ -d "$G" ] && GNUPGHOME=$G gpgconf --kill all >/dev/null 2>&1
	(exit $rc)
	it_cleanup
}
trap e2e_cleanup EXIT

# ---------------------------------------------------------------- setup

# The PKI of tests/smime/pki.sh, plus carol@partner.example (a second partner
# with a certificate) from the same intermediate, as pki.sh makes bob.
make_pki() {
	sh "$TOP_SRC/tests/smime/pki.sh" "$P" >"$IT_TMP/spki.log" 2>&1 || return 1
	(
		cd "$P" || exit 1
		export CADB=int.db
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out carol.key &&
			openssl req -new -key carol.key -config ca.cnf -out carol.csr \
				-subj "/CN=carol/emailAddress=carol@partner.example" &&
			CADB=int.db openssl ca -batch -config ca.cnf -cert int.pem \
				-keyfile int.key -extensions v3_user -days 825 \
				-in carol.csr -out carol.pem &&
			openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dave.key &&
			openssl req -new -key dave.key -config ca.cnf -out dave.csr \
				-subj "/CN=dave/emailAddress=dave@partner.example" &&
			CADB=int.db openssl ca -batch -config ca.cnf -cert int.pem \
				-keyfile int.key -extensions v3_user -days 825 \
				-in dave.csr -out dave.pem
	) >>"$IT_TMP/spki.log" 2>&1
}

# gpgsm with its own home: the CA trusted, bob's and alice's keys imported.
HAVE_GPGSM=0
make_gpgsm() {
	have gpgsm || { echo "gpgsm not installed"; return 1; }
	[ -d "$G" ] && GNUPGHOME=$G gpgconf --kill all
	rm -rf "$G"
	gpgsm_home "$P" &&
		gs_import_keys "$P/bob.p12" "$P/alice.p12"
}

if ! make_pki; then
	echo "FAIL setup: pki.sh: $(tail -n 3 "$IT_TMP/spki.log" | tr '\n' ' ')"
	exit 1
fi
# (once more on failure: a gpg-agent starting slowly has been seen to fail
# an import)
if make_gpgsm >"$IT_TMP/gpgsm-setup.log" 2>&1 ||
    make_gpgsm >>"$IT_TMP/gpgsm-setup.log" 2>&1; then
	HAVE_GPGSM=1
else
	echo "# gpgsm checks skipped:"
	sed 's/^/#   /' "$IT_TMP/gpgsm-setup.log"
fi

# ---------------------------------------------------------------- helpers

# ctl ARGS...: smrelayctl on this case's config; stderr to ctl.log (a
# sanitizer report there fails the case).
ctl() {
	local rc
	echo "== smrelayctl $*" >>"$CASE_DIR/ctl.log"
	"$SMRELAYCTL" -c "$CONF" "$@" 2>>"$CASE_DIR/ctl.log"
	rc=$?
	if grep -q 'Sanitizer\|runtime error:' "$CASE_DIR/ctl.log"; then
		fail_because "smrelayctl $*: sanitizer report in ctl.log"
		return 1
	fi
	return $rc
}

# setup_store [keys=NAME,...] [certs=NAME,...]: a capture sink, a config
# relaying to it with a fresh data_dir, the trust anchor and the given
# identities (pki p12 files) and partner certificates imported.
setup_store() {
	local kv n
	start_sink || return 1
	it_certs || return 1
	PORT=$(free_port)
	CONF=$CASE_DIR/smrelayd.conf
	mkdir -p "$CASE_DIR/data"
	write_conf "$CONF"
	ctl trust import "$P/trust.pem" >/dev/null ||
		{ fail_because "trust import: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	for kv in "$@"; do
		for n in $(echo "${kv#*=}" | tr ',' ' '); do
			case $kv in
			keys=*) ctl key import "$P/$n.p12" >/dev/null ;;
			certs=*) ctl cert import "$P/$n.pem" >/dev/null ;;
			esac || { fail_because "import $n: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
		done
	done
}

# rule ARGS...: `policy add ARGS`; the new rule's ID in RULE.
rule() {
	RULE=$(ctl policy add "$@") && [ -n "$RULE" ] ||
		{ fail_because "policy add $*: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
}

start_daemon() { start_smrelayd "$CONF" "$PORT"; }

# msg NAME FROM TO [HEADER...]: a plain text message in $CASE_DIR/NAME.eml.
msg() {
	local name=$1 from=$2 to=$3 h
	shift 3
	{
		for h in "$@"; do printf '%s\r\n' "$h"; done
		printf 'From: %s\r\nTo: %s\r\nSubject: e2e %s\r\n' "$from" "$to" "$name"
		printf 'Date: Sun, 22 Nov 2026 20:00:00 +0000\r\nMessage-ID: <%s.%s@example.com>\r\n' "$name" "$$"
		printf 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n'
		printf 'Hello,\r\n\r\n%s\r\n-- \r\ne2e\r\n' "$BODY"
	} >"$CASE_DIR/$name.eml"
	M=$CASE_DIR/$name.eml
}

# send FROM RCPTS FILE [swaks options]: a transaction that must succeed.
send() { swaks_send --from "$1" --to "$2" --data "@$3" "${@:4}"; }

# reply_to STEP CODE ENH: swaks' log of the last transaction shows the reply
# CODE ENH to STEP (a command like "RCPT TO:<x>" or "DATA" for end of data).
reply_to() {
	awk -v step="$1" -v want="$2 $3" '
		/^ *~?-> / { cur = $0; sub(/^ *~?-> /, "", cur); next }
		/^ *<[-~*]+ +[0-9][0-9][0-9][ -]/ {
			line = $0; sub(/^ *<[-~*]+ +/, "", line)
			hit = step == "." ? cur == "." : index(cur, step) == 1
			if (hit && index(line, want) == 1) f = 1
		}
		END { exit !f }' "$SWAKS_LOG" ||
		fail_because "no '$2 $3' reply to '$1' (replies: $(grep -E '^ *<' "$SWAKS_LOG" | grep -v -E '^ *<- +250[- ][A-Z]' | tr '\n' ' '))"
}

# rcpts_of FILE: its Delivered-To addresses, sorted, comma-separated.
rcpts_of() {
	tr -d '\r' <"$1" | sed -n 's/^Delivered-To: <\{0,1\}\([^>]*\)>\{0,1\}$/\1/p' |
		sort | paste -s -d,
}

# copy_of RCPT WANT: the sink file for RCPT (in F) is for exactly WANT.
copy_of() {
	F=$(sink_file_for "$1") ||
		{ fail_because "no message for $1 at the sink ($(sink_count) there)"; return 1; }
	assert_eq "$2" "$(rcpts_of "$F")" "recipients of the copy for $1"
}

# outp FILE: a prefix for what the checks derive from FILE (never in the
# Maildir, where it would count as a message).
outp() { echo "$CASE_DIR/out.$(basename "$1")"; }

# opens FILE WHO: WHO's key (pki) decrypts FILE (openssl cms) to text with
# the body; the plaintext in $(outp FILE).WHO.txt.
opens() {
	local o
	o=$(outp "$1")
	openssl cms -decrypt -recip "$P/$2.pem" -inkey "$P/$2.key" -in "$1" \
		-out "$o.$2.txt" 2>"$o.$2.err" ||
		{ fail_because "$2's key does not decrypt $(basename "$1"): $(tail -n 1 "$o.$2.err")"; return 1; }
	grep -q -F "$BODY" "$o.$2.txt" ||
		fail_because "$2's plaintext of $(basename "$1") lacks the body"
}

# shut FILE WHO: WHO's key must NOT decrypt FILE.
shut() {
	if openssl cms -decrypt -recip "$P/$2.pem" -inkey "$P/$2.key" -in "$1" \
	    -out /dev/null 2>/dev/null; then
		fail_because "$2's key decrypts $(basename "$1"), $2 is not a recipient"
		return 1
	fi
}

# enveloped FILE / plain FILE: what kind of message arrived.
enveloped() {
	assert_header "$1" Content-Type 'application/(x-)?pkcs7-mime' &&
		assert_header "$1" Content-Type 'smime-type="?enveloped-data' &&
		assert_file_lacks "$1" "$BODY" "encrypted copy"
}
plain() {
	assert_file_lacks "$1" 'pkcs7' "plain copy" &&
		assert_file_matches "$1" "$BODY" "plain copy body"
}

# verifies FILE: openssl cms accepts the signature in FILE (multipart/signed
# or signed-data) under our CA.
verifies() {
	local o
	o=$(outp "$1")
	openssl cms -verify -CAfile "$P/trust.pem" -purpose smimesign -in "$1" \
		-out "$o.signed" 2>"$o.verr" ||
		{ fail_because "openssl cms -verify $(basename "$1"): $(tail -n 1 "$o.verr")"; return 1; }
	grep -q -F "$BODY" "$o.signed" ||
		fail_because "signed content of $(basename "$1") lacks the body"
}

# gs_verify SIGNED: gpgsm verifies a multipart/signed message, fully trusted.
gs_verify() {
	local o
	o=$(outp "$1")
	split_signed --crlf "$1" "$o.c" "$o.p7s" 2>"$o.gerr" &&
		gs --status-fd 1 --verify "$o.p7s" "$o.c" >"$o.gout" 2>>"$o.gerr" &&
		grep -q GOODSIG "$o.gout" && grep -q TRUST_FULLY "$o.gout" ||
		fail_because "gpgsm --verify $(basename "$1"): $(tail -n 1 "$o.gerr")"
}
# p7m_der MSG DER: the base64 body of an application/pkcs7-mime message.
p7m_der() { awk 'b { print } /^\r?$/ { b = 1 }' "$1" | tr -d '\r' | base64 -d >"$2"; }

# signatures FILE: how many pkcs7-signature parts FILE has.
signatures() { grep -c -i '^Content-Type: application/\(x-\)\{0,1\}pkcs7-signature' "$1"; }

# ---------------------------------------------------------------- cases

# 1. outbound sign, checked by openssl cms and gpgsm.
case_sign() {
	setup_store keys=alice || return 1
	rule --sender @example.com --action sign || return 1
	start_daemon || return 1
	msg m alice@example.com bob@partner.example
	send alice@example.com bob@partner.example "$M" || return 1
	wait_delivered 1 && assert_sink_count 1 || return 1
	copy_of bob@partner.example bob@partner.example || return 1
	assert_header "$F" Content-Type 'multipart/signed' &&
		assert_header "$F" Content-Type 'protocol="?application/(x-)?pkcs7-signature' &&
		assert_header "$F" X-Smrelay-Processed "^ *$HOST; sign" &&
		verifies "$F" || return 1
	# the delivery line says what S/MIME did (docs/OPERATIONS.md, Logs)
	assert_file_matches "$CASE_DIR/smrelayd.log" \
		': to=<bob@partner\.example>, .*smime=signed, dsn=2\.0\.0, status=sent ' \
		"delivery log line with smime=signed" || return 1
	[ $HAVE_GPGSM = 1 ] || { echo "# gpgsm --verify skipped"; return 0; }
	gs_verify "$F"
}

# 2. one envelope for two partners with certificates.
case_encrypt_two() {
	setup_store certs=bob,carol || return 1
	rule --recipient @partner.example --action encrypt || return 1
	start_daemon || return 1
	msg m alice@example.com "bob@partner.example, carol@partner.example"
	send alice@example.com bob@partner.example,carol@partner.example "$M" || return 1
	wait_delivered 1 && assert_sink_count 1 || return 1
	copy_of bob@partner.example bob@partner.example,carol@partner.example &&
		enveloped "$F" && opens "$F" bob && opens "$F" carol && shut "$F" alice
}

# 3. a third recipient without a certificate, under each --if-no-cert.
nocert_setup() {
	setup_store certs=bob,carol || return 1
	rule --recipient @partner.example --action encrypt --if-no-cert "$1" || return 1
	start_daemon || return 1
	msg m alice@example.com "bob@partner.example, carol@partner.example, dave@partner.example"
}
RCPTS3=bob@partner.example,carol@partner.example,dave@partner.example
case_nocert_reject() {
	nocert_setup reject || return 1
	# swaks goes on to DATA with the recipients that were accepted.
	send alice@example.com "$RCPTS3" "$M"
	reply_to "RCPT TO:<dave@partner.example>" 550 5.7.1 &&
		reply_to "RCPT TO:<bob@partner.example>" 250 "" &&
		reply_to "RCPT TO:<carol@partner.example>" 250 "" &&
		reply_to "." 250 "" || return 1
	wait_delivered 1 && assert_sink_count 1 || return 1
	copy_of bob@partner.example bob@partner.example,carol@partner.example &&
		enveloped "$F" && opens "$F" bob && opens "$F" carol &&
		assert_nothing_for dave@partner.example envelope
}
case_nocert_plain() {
	nocert_setup plain || return 1
	send alice@example.com "$RCPTS3" "$M" || return 1
	reply_to "RCPT TO:<dave@partner.example>" 250 "" &&
		reply_to "." 250 "" || return 1
	grep -q -E '^ *<- +250 .*2 copies' "$SWAKS_LOG" ||
		{ fail_because "end of data reply does not say 2 copies: $(grep -E '^ *<- +250' "$SWAKS_LOG" | tail -n 1)"; return 1; }
	wait_delivered 2 && assert_sink_count 2 || return 1
	copy_of bob@partner.example bob@partner.example,carol@partner.example &&
		enveloped "$F" && opens "$F" bob && opens "$F" carol || return 1
	copy_of dave@partner.example dave@partner.example && plain "$F"
}
# hold: dave's copy is spooled, held, until a certificate for him arrives
# (250 at RCPT and at end of DATA, `queue list` shows it held, nothing for
# dave at the sink); importing dave's certificate releases it: it arrives
# encrypted to dave alone.
case_nocert_hold() {
	nocert_setup hold || return 1
	send alice@example.com "$RCPTS3" "$M" || return 1
	reply_to "RCPT TO:<dave@partner.example>" 250 "" &&
		reply_to "." 250 "" || return 1
	ctl queue list >"$CASE_DIR/queue.txt" &&
		grep -F dave@partner.example "$CASE_DIR/queue.txt" | grep -q -F hold-cert ||
		{ fail_because "dave's held copy not in 'queue list': $(tr '\n' '|' <"$CASE_DIR/queue.txt")"; return 1; }
	wait_delivered 1 && assert_sink_count 1 || return 1
	copy_of bob@partner.example bob@partner.example,carol@partner.example &&
		enveloped "$F" && opens "$F" bob && opens "$F" carol &&
		assert_nothing_for dave@partner.example envelope || return 1
	ctl cert import "$P/dave.pem" >/dev/null ||
		{ fail_because "cert import dave: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	wait_delivered 2 ||
		{ fail_because "dave's held copy not released after his certificate was imported: $(ctl queue list | tr '\n' '|')"; return 1; }
	copy_of dave@partner.example dave@partner.example &&
		enveloped "$F" && opens "$F" dave && shut "$F" bob || return 1
	[ -z "$(ctl queue list)" ] || { fail_because "queue not empty after the release: $(ctl queue list)"; return 1; }
}

# hold past queue_lifetime: no certificate came, so the held copy bounces:
# a DSN (through the next hop, MAIL FROM:<>) tells alice dave got nothing.
case_hold_expires() {
	setup_store certs=bob || return 1
	write_conf "$CONF" queue_lifetime=3s
	rule --recipient @partner.example --action encrypt --if-no-cert hold || return 1
	start_daemon || return 1
	msg held alice@example.com "dave@partner.example"
	send alice@example.com dave@partner.example "$M" || return 1
	reply_to "." 250 "" || return 1
	wait_delivered 1 15 ||
		{ fail_because "no DSN after queue_lifetime: $(ctl queue list | tr '\n' '|')"; return 1; }
	F=$(sink_files | head -n 1)
	assert_file_matches "$F" '^Return-Path: <>' "DSN envelope sender" &&
		assert_delivered_to alice@example.com &&
		assert_header "$F" Content-Type 'multipart/report' &&
		assert_file_matches "$F" '^Final-Recipient: rfc822; ?dave@partner.example' "Final-Recipient" &&
		assert_file_matches "$F" '^Status: 5\.7\.1' "Status" &&
		assert_file_matches "$F" '^Action: failed' "Action" || return 1
	[ -z "$(ctl queue list)" ] || { fail_because "queue not empty: $(ctl queue list)"; return 1; }
}

# 4. sign then encrypt: bob decrypts (openssl cms, gpgsm) and verifies the
# inner signature.
case_sign_encrypt() {
	setup_store keys=alice certs=bob || return 1
	rule --sender @example.com --recipient @partner.example --action sign,encrypt || return 1
	start_daemon || return 1
	msg m alice@example.com bob@partner.example
	send alice@example.com bob@partner.example "$M" || return 1
	wait_delivered 1 && assert_sink_count 1 || return 1
	copy_of bob@partner.example bob@partner.example &&
		enveloped "$F" && opens "$F" bob && shut "$F" carol || return 1
	assert_file_matches "$(outp "$F").bob.txt" '^Content-Type: multipart/signed' "inner entity" &&
		verifies "$(outp "$F").bob.txt" || return 1
	[ $HAVE_GPGSM = 1 ] || { echo "# gpgsm checks skipped"; return 0; }
	p7m_der "$F" "$CASE_DIR/env.der"
	gs --decrypt "$CASE_DIR/env.der" >"$CASE_DIR/gdec.txt" 2>"$CASE_DIR/gdec.err" ||
		{ fail_because "gpgsm --decrypt: $(tail -n 1 "$CASE_DIR/gdec.err")"; return 1; }
	gs_verify "$CASE_DIR/gdec.txt"
}

# 5. inbound: gpgsm signs as bob and encrypts to alice; decrypt,verify.
case_inbound_gpgsm() {
	[ $HAVE_GPGSM = 1 ] || { skip "gpgsm not available"; return 0; }
	setup_store keys=alice || return 1
	rule --recipient alice@example.com --action decrypt,verify || return 1
	start_daemon || return 1
	local d=$CASE_DIR b="=_e2e_$$"
	printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\nHello Alice,\r\n\r\n%s\r\n' "$BODY" >"$d/ent.txt"
	gs -u bob@partner.example --detach-sign "$d/ent.txt" >"$d/ent.p7s" 2>"$d/gs.err" || {
		fail_because "gpgsm --detach-sign: $(tail -n 1 "$d/gs.err")"
		return 1
	}
	{
		printf 'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;\r\n\tboundary="%s"\r\n\r\n--%s\r\n' "$b" "$b"
		cat "$d/ent.txt"
		printf '\r\n--%s\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n' "$b"
		base64 -w 76 <"$d/ent.p7s" | sed 's/$/\r/'
		printf '\r\n--%s--\r\n' "$b"
	} >"$d/signed.txt"
	gs -r alice@example.com --encrypt "$d/signed.txt" >"$d/env.der" 2>>"$d/gs.err" || {
		fail_because "gpgsm --encrypt: $(tail -n 1 "$d/gs.err")"
		return 1
	}
	{
		# A forged result in our name, which must not survive.
		printf 'Authentication-Results: %s; smime=pass body.smime-identifier=mallory@evil.example\r\n' "$HOST"
		printf 'From: Bob <bob@partner.example>\r\nTo: alice@example.com\r\nSubject: from gpgsm\r\nMIME-Version: 1.0\r\n'
		printf 'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7m\r\n\r\n'
		base64 -w 76 <"$d/env.der" | sed 's/$/\r/'
	} >"$d/in.eml"
	send bob@partner.example alice@example.com "$d/in.eml" || return 1
	wait_delivered 1 && assert_sink_count 1 || return 1
	copy_of alice@example.com alice@example.com || return 1
	assert_file_lacks "$F" 'enveloped-data' "decrypted copy" &&
		assert_file_matches "$F" "$BODY" "decrypted body" &&
		assert_header "$F" Authentication-Results "^ *$HOST; *smime=pass .*body\\.smime-identifier=bob@partner\\.example" &&
		assert_file_lacks "$F" 'mallory@evil' "forged Authentication-Results" || return 1
	assert_eq 1 "$(grep -c -i "^Authentication-Results: *$HOST" "$F")" \
		"Authentication-Results headers of $HOST"
}

# 5a. inbound, verify: bob's valid signature under a structure another
# reader sees differently (a second Content-Type that makes the signed
# message a multipart/mixed whose first part is the sender's own text; a
# second From) gets no smime=pass, and is still delivered; the same
# message as bob signed it passes.
case_inbound_ambiguous() {
	[ $HAVE_GPGSM = 1 ] || { skip "gpgsm not available"; return 0; }
	setup_store || return 1
	rule --recipient alice@example.com --action verify || return 1
	start_daemon || return 1
	local d=$CASE_DIR b="=_e2e_$$" n=0 v want
	printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\nHello Alice,\r\n\r\n%s\r\n' "$BODY" >"$d/ent.txt"
	gs -u bob@partner.example --detach-sign "$d/ent.txt" >"$d/ent.p7s" 2>"$d/gs.err" || {
		fail_because "gpgsm --detach-sign: $(tail -n 1 "$d/gs.err")"
		return 1
	}
	{
		printf -- '--%s\r\n' "$b"
		cat "$d/ent.txt"
		printf '\r\n--%s\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n' "$b"
		base64 -w 76 <"$d/ent.p7s" | sed 's/$/\r/'
		printf '\r\n--%s--\r\n' "$b"
	} >"$d/body.txt"
	SEEN=""
	for v in clean ct2 from2; do
		{
			printf 'From: Bob <bob@partner.example>\r\nTo: alice@example.com\r\nSubject: e2e %s\r\nMIME-Version: 1.0\r\n' "$v"
			[ $v = from2 ] && printf 'From: CEO <ceo@partner.example>\r\n'
			printf 'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;\r\n\tboundary="%s"\r\n' "$b"
			if [ $v = ct2 ]; then
				printf 'Content-Type: multipart/mixed; boundary="EVIL"\r\n\r\n--EVIL\r\nContent-Type: text/plain\r\n\r\nPay to account MALLORY.\r\n--EVIL\r\n\r\n'
				cat "$d/body.txt"
				printf -- '--EVIL--\r\n'
			else
				printf '\r\n'
				cat "$d/body.txt"
			fi
		} >"$d/$v.eml"
		send bob@partner.example alice@example.com "$d/$v.eml" && new_copy $((n += 1)) || return 1
		case $v in
		clean) want="smime=pass .*body\\.smime-identifier=bob@partner\\.example" ;;
		ct2) want="smime=permerror \\(ambiguous structure: more than one Content-Type field\\)" ;;
		from2) want="smime=policy \\(more than one From field" ;;
		esac
		assert_header "$F" Authentication-Results "^ *$HOST; *$want" &&
			assert_file_matches "$F" "$BODY" "$v: body delivered" || return 1
	done
}

# 5b. inbound, made by openssl cms: the encrypted entity carries its own
# MIME-Version (as `openssl smime -encrypt` and some clients write it);
# after decrypt the message has exactly one.
case_decrypt_one_mime_version() {
	setup_store keys=alice || return 1
	rule --recipient alice@example.com --action decrypt || return 1
	start_daemon || return 1
	local d=$CASE_DIR
	# the sender's own verdict inside the envelope must not come out
	printf 'MIME-Version: 1.0\r\nAuthentication-Results: %s; smime=pass\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n%s\r\n' "$(hostname)" "$BODY" >"$d/ent.txt"
	openssl cms -encrypt -binary -aes-256-cbc -in "$d/ent.txt" -outform DER \
		-out "$d/env.der" "$P/alice.pem" 2>"$d/cms.err" ||
		{ fail_because "openssl cms -encrypt: $(tail -n 1 "$d/cms.err")"; return 1; }
	{
		printf 'From: Bob <bob@partner.example>\r\nTo: alice@example.com\r\nSubject: two versions\r\nMIME-Version: 1.0\r\n'
		printf 'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n'
		base64 -w 76 <"$d/env.der" | sed 's/$/\r/'
	} >"$d/in.eml"
	send bob@partner.example alice@example.com "$d/in.eml" || return 1
	wait_delivered 1 && copy_of alice@example.com alice@example.com || return 1
	assert_file_lacks "$F" 'enveloped-data' "decrypted copy" &&
		assert_file_matches "$F" "$BODY" "decrypted body" &&
		assert_header "$F" Content-Type 'text/plain' &&
		assert_eq 1 "$(grep -c -i '^MIME-Version:' "$F")" "MIME-Version fields" &&
		assert_eq 0 "$(grep -c -i '^Authentication-Results:' "$F")" "Authentication-Results from inside the envelope" &&
		awk -v b="$BODY" 'f && index($0, b) { ok = 1 } /^\r?$/ { f = 1 } END { exit !ok }' "$F" ||
		{ fail_because "the decrypted text is not after the blank line: $(cat "$F")"; return 1; }
	assert_file_matches "$CASE_DIR/smrelayd.log" \
			': to=<alice@example\.com>, .*smime=decrypted, .*status=sent ' \
			"delivery log line with smime=decrypted"
}

# 6. harvest bob's certificate from his signed mail, then encrypt to him.
case_harvest() {
	setup_store keys=alice || return 1
	rule --recipient alice@example.com --action verify || return 1
	rule --recipient bob@partner.example --action encrypt || return 1
	local fp d=$CASE_DIR
	fp=$(openssl x509 -in "$P/bob.pem" -noout -fingerprint -sha256 | cut -d= -f2 |
		tr -d : | tr 'A-F' 'a-f')
	ctl cert list >"$d/list0.txt" || { fail_because "cert list failed"; return 1; }
	! grep -q -i "$fp" "$d/list0.txt" || { fail_because "bob's certificate already in the store"; return 1; }
	start_daemon || return 1
	printf 'Content-Type: text/plain; charset=us-ascii\n\nHello Alice,\n\n%s\n' "$BODY" >"$d/ent.txt"
	openssl cms -sign -in "$d/ent.txt" -signer "$P/bob.pem" -inkey "$P/bob.key" \
		-certfile "$P/chain.pem" -from 'Bob <bob@partner.example>' \
		-to alice@example.com -subject 'signed by bob' >"$d/in.eml" 2>"$d/sign.err" ||
		{ fail_because "openssl cms -sign: $(tail -n 1 "$d/sign.err")"; return 1; }
	send bob@partner.example alice@example.com "$d/in.eml" || return 1
	wait_delivered 1 || return 1
	copy_of alice@example.com alice@example.com &&
		assert_header "$F" Authentication-Results "^ *$HOST; *smime=pass .*body\\.smime-identifier=bob@partner\\.example" ||
		return 1
	ctl cert list >"$d/list1.txt" && grep -q -i "$fp" "$d/list1.txt" ||
		{ fail_because "bob's certificate not in 'cert list' after his signed mail: $(tr '\n' '|' <"$d/list1.txt")"; return 1; }
	msg out alice@example.com bob@partner.example
	send alice@example.com bob@partner.example "$M" || return 1
	wait_delivered 2 || return 1
	copy_of bob@partner.example bob@partner.example &&
		enveloped "$F" && opens "$F" bob && shut "$F" carol
}

# 7. the running daemon picks up rule changes (within about a second).
# wait_reload N: until the daemon logged a reload with N rules (at most 3 s;
# the send after it is the real check).
wait_reload() {
	wait_for 3 grep -q "reloaded $1 rule" "$CASE_DIR/smrelayd.log" ||
		echo "# no reload of $1 rule(s) logged within 3 s"
}
# new_copy N: wait for the Nth message at the sink; F is the one that is new
# since the last call (SEEN holds the files seen so far).
SEEN=""
new_copy() {
	wait_delivered "$1" || return 1
	F=$(sink_files | grep -v -x -F "${SEEN:-/nonexistent}" | head -n 1)
	SEEN=$(sink_files)
	[ -n "$F" ] || fail_because "no new message at the sink"
}
case_rule_change() {
	local n
	setup_store keys=alice || return 1
	start_daemon || return 1
	msg m alice@example.com bob@partner.example
	SEEN=""
	send alice@example.com bob@partner.example "$M" && new_copy 1 || return 1
	plain "$F" || return 1
	rule --sender @example.com --action sign || return 1
	wait_reload 1
	send alice@example.com bob@partner.example "$M" && new_copy 2 || return 1
	assert_header "$F" Content-Type 'multipart/signed' && verifies "$F" ||
		{ IT_REASON="after 'policy add': $IT_REASON"; return 1; }
	n=$(grep -c "reloaded 0 rule" "$CASE_DIR/smrelayd.log")
	ctl policy remove "$RULE" >/dev/null || { fail_because "policy remove $RULE failed"; return 1; }
	wait_for 3 eval '[ "$(grep -c "reloaded 0 rule" "$CASE_DIR/smrelayd.log")" -gt '"$n"' ]' ||
		echo "# no reload of 0 rules logged within 3 s"
	send alice@example.com bob@partner.example "$M" && new_copy 3 || return 1
	plain "$F" || { IT_REASON="after 'policy remove' (3 s later): $IT_REASON"; return 1; }
}

# 7b. two changes in a row without traffic in between (add, then remove):
# the second one must be picked up as well.
case_rule_change_twice() {
	setup_store keys=alice || return 1
	start_daemon || return 1
	rule --sender @example.com --action sign || return 1
	wait_reload 1
	ctl policy remove "$RULE" >/dev/null || { fail_because "policy remove $RULE failed"; return 1; }
	wait_for 3 grep -q "reloaded 0 rule" "$CASE_DIR/smrelayd.log" ||
		echo "# no reload of 0 rules logged within 3 s"
	msg m alice@example.com bob@partner.example
	SEEN=""
	send alice@example.com bob@partner.example "$M" && new_copy 1 || return 1
	plain "$F" || { IT_REASON="3 s after 'policy add' then 'policy remove': $IT_REASON"; return 1; }
}

# 8. a sign rule for a sender without key: 451 4.7.0 at end of DATA.
case_no_key() {
	setup_store keys=alice || return 1
	rule --sender @example.com --action sign || return 1
	start_daemon || return 1
	msg m nokey@example.com bob@partner.example
	swaks_expect_reject 4 --from nokey@example.com --to bob@partner.example --data "@$M" || return 1
	reply_to "RCPT TO:<bob@partner.example>" 250 "" && reply_to "." 451 4.7.0 || return 1
	# Nothing may arrive; give a wrongly relayed message a moment to show up.
	! wait_for 1 _count_ge 1 || { fail_because "a message reached the sink"; return 1; }
	grep -q "rule $RULE demands sign: no signing key for <nokey@example.com>" "$CASE_DIR/smrelayd.log" ||
		fail_because "the log does not name rule $RULE: $(grep -i 'sign' "$CASE_DIR/smrelayd.log" | tail -n 1)"
}

# 9. no double work: a message signed by alice passes a sign rule with one
# signature; our own signed output sent through again stays as it is; a
# mark of ours that the sender wrote, or copied from a real one onto other
# content, counts for nothing: the message is signed and the mark removed.
# marks FILE: how many X-Smrelay-Processed fields FILE has.
marks() { grep -c -i '^X-Smrelay-Processed:' "$1"; }
case_no_double() {
	setup_store keys=alice || return 1
	rule --sender @example.com --action sign || return 1
	start_daemon || return 1
	local d=$CASE_DIR first
	SEEN=""
	printf 'Content-Type: text/plain; charset=us-ascii\n\nHello Bob,\n\n%s\n' "$BODY" >"$d/ent.txt"
	openssl cms -sign -in "$d/ent.txt" -signer "$P/alice.pem" -inkey "$P/alice.key" \
		-certfile "$P/chain.pem" -from alice@example.com -to bob@partner.example \
		-subject 'signed already' >"$d/signed.eml" 2>"$d/sign.err" ||
		{ fail_because "openssl cms -sign: $(tail -n 1 "$d/sign.err")"; return 1; }
	send alice@example.com bob@partner.example "$d/signed.eml" && new_copy 1 || return 1
	assert_eq 1 "$(signatures "$F")" "pkcs7-signature parts" &&
		assert_eq 1 "$(grep -c -i '^Content-Type: multipart/signed' "$F")" "multipart/signed entities" &&
		verifies "$F" || return 1
	# our own output again (a mail loop): one signature, one mark
	msg plain alice@example.com carol@partner.example
	send alice@example.com carol@partner.example "$M" && new_copy 2 || return 1
	first=$F
	assert_header "$F" X-Smrelay-Processed "^ *$HOST; sign; *mac=[0-9a-f]{64}$" &&
		verifies "$F" || return 1
	cp "$first" "$d/loop.eml"
	send alice@example.com carol@partner.example "$d/loop.eml" && new_copy 3 || return 1
	assert_eq 1 "$(signatures "$F")" "pkcs7-signature parts after the loop" &&
		assert_eq 1 "$(marks "$F")" "marks after the loop" && verifies "$F" || return 1
	# a mark the sender wrote
	msg forged alice@example.com dave@partner.example "X-Smrelay-Processed: $HOST; sign"
	send alice@example.com dave@partner.example "$M" && new_copy 4 || return 1
	assert_header "$F" Content-Type 'multipart/signed' && verifies "$F" &&
		assert_eq 1 "$(marks "$F")" "marks (the forged one removed)" &&
		assert_header "$F" X-Smrelay-Processed "mac=" || return 1
	# a real mark copied onto other content
	tr -d '\r' <"$first" | awk '/^X-Smrelay-Processed:/ { p = 1; print; next }
		p && /^[ \t]/ { print; next } { p = 0 }' >"$d/realmark.txt"
	[ -s "$d/realmark.txt" ] || { fail_because "no mark in $(basename "$first")"; return 1; }
	BODY="replayed mark $$" msg replay alice@example.com erin@partner.example
	{ sed 's/$/\r/' "$d/realmark.txt"; cat "$M"; } >"$d/replay-mark.eml"
	BODY="replayed mark $$"
	send alice@example.com erin@partner.example "$d/replay-mark.eml" && new_copy 5 || return 1
	assert_header "$F" Content-Type 'multipart/signed' && verifies "$F" &&
		assert_eq 1 "$(marks "$F")" "marks (the copied one removed)"
}

# 9c. no encryption to a revoked partner certificate: with the
# intermediate and its CRL imported, erin's (revoked) certificate is
# refused at RCPT under --if-no-cert reject, the reply and the log saying
# why; bob, in the same transaction, still gets his envelope.
case_revoked_partner() {
	setup_store certs=bob || return 1
	ctl cert import "$P/int.pem" >/dev/null && ctl crl import "$P/int.crl" >/dev/null &&
		ctl cert import --force "$P/erin-revoked.pem" >/dev/null ||
		{ fail_because "imports: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	rule --recipient @partner.example --action encrypt --if-no-cert reject || return 1
	start_daemon || return 1
	msg m alice@example.com "bob@partner.example, erin@partner.example"
	send alice@example.com bob@partner.example,erin@partner.example "$M"
	reply_to "RCPT TO:<erin@partner.example>" 550 5.7.1 &&
		reply_to "RCPT TO:<bob@partner.example>" 250 "" || return 1
	grep -q -E ' 550 5\.7\.1 .*erin-revoked revoked' "$SWAKS_LOG" ||
		{ fail_because "the 550 does not say the certificate is revoked: $(grep -E ' 550 ' "$SWAKS_LOG")"; return 1; }
	grep -q 'certificate of erin-revoked revoked' "$CASE_DIR/smrelayd.log" ||
		{ fail_because "smrelayd.log does not say why"; return 1; }
	wait_delivered 1 && copy_of bob@partner.example bob@partner.example &&
		enveloped "$F" && opens "$F" bob && assert_nothing_for erin@partner.example envelope
}

# 9b. what the sender writes cannot switch encryption off: a forged mark, a
# plain body under a Content-Type that claims enveloped-data or
# multipart/signed, a real mark of a sign-only pass, and a real envelope cut
# short: each copy for bob arrives enveloped for bob, nothing readable on
# the wire.  The sender's own whole envelope for bob goes as it is.
# Spellings of one recipient: a quoted local part is the same mailbox (the
# rule for bob encrypts it, and the next hop is given bob@partner.example);
# a %-hack or a bang path that a later relay may route on to bob is refused
# at RCPT, not relayed past bob's rule in the clear.
case_recipient_spellings() {
	local r
	setup_store certs=bob || return 1
	rule --recipient bob@partner.example --action encrypt || return 1
	start_daemon || return 1
	msg quoted alice@example.com bob@partner.example
	send alice@example.com '"bob"@partner.example' "$M" || return 1
	wait_delivered 1 || return 1
	copy_of bob@partner.example bob@partner.example &&
		enveloped "$F" && opens "$F" bob || return 1
	for r in 'bob%partner.example@example.net' 'partner.example!bob@example.net' \
	    '"bob%partner.example"@example.net'; do
		swaks_expect_reject 5 --from alice@example.com --to "$r" --data "@$M" ||
			return 1
		reply_to "RCPT TO:<$r>" 550 5.7.1 || return 1
		grep -q "may be routed on to <bob@partner.example>" "$SWAKS_LOG" ||
			{ fail_because "RCPT TO:<$r>: the reply does not say why"; return 1; }
	done
	assert_sink_count 1
}

case_no_bypass() {
	setup_store keys=alice certs=bob || return 1
	rule --recipient carol@partner.example --action sign || return 1
	rule --recipient bob@partner.example --action encrypt || return 1
	start_daemon || return 1
	local d=$CASE_DIR n=0 ct
	SEEN=""
	msg forged alice@example.com bob@partner.example "X-Smrelay-Processed: $HOST; encrypt"
	send alice@example.com bob@partner.example "$M" && new_copy $((n += 1)) || return 1
	enveloped "$F" && opens "$F" bob || return 1
	for ct in 'application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m' \
	    'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="b1"' \
	    'application/pkcs7-mime; smime-type=signed-data'; do
		msg claim alice@example.com bob@partner.example
		sed "s#^Content-Type: text/plain; charset=us-ascii#Content-Type: $ct#" "$M" >"$d/claim-ct.eml"
		send alice@example.com bob@partner.example "$d/claim-ct.eml" &&
			new_copy $((n += 1)) || return 1
		enveloped "$F" && opens "$F" bob || { fail_because "Content-Type claim '$ct'"; return 1; }
	done
	# a message we signed for carol, with its valid mark, then sent to bob
	msg tocarol alice@example.com carol@partner.example
	send alice@example.com carol@partner.example "$M" && new_copy $((n += 1)) || return 1
	assert_header "$F" X-Smrelay-Processed "^ *$HOST; sign;" || return 1
	cp "$F" "$d/signed-for-carol.eml"
	send alice@example.com bob@partner.example "$d/signed-for-carol.eml" &&
		new_copy $((n += 1)) || return 1
	enveloped "$F" && opens "$F" bob &&
		assert_header "$F" X-Smrelay-Processed "^ *$HOST; (sign,)?encrypt;" || return 1
	# the sender's own envelope for bob: its structure proves it, so it
	# goes as it is (one envelope: bob's key opens it to the plain text)
	msg own alice@example.com bob@partner.example
	awk 'b { print } /^\r?$/ { b = 1 }' "$M" >"$d/own-body.txt"
	openssl cms -encrypt -aes-256-cbc -in "$d/own-body.txt" -from alice@example.com \
		-to bob@partner.example -subject 'own envelope' "$P/bob.pem" \
		>"$d/own-env.eml" 2>"$d/own-env.err" ||
		{ fail_because "openssl cms -encrypt: $(tail -n 1 "$d/own-env.err")"; return 1; }
	send alice@example.com bob@partner.example "$d/own-env.eml" &&
		new_copy $((n += 1)) || return 1
	enveloped "$F" && opens "$F" bob || return 1
	assert_file_lacks "$(outp "$F").bob.txt" 'pkcs7' "bob's plaintext of the sender's envelope" &&
		assert_file_matches "$CASE_DIR/smrelayd.log" 'already encrypted: not signed or encrypted again' \
			"the log line for the sender's envelope" || return 1
	# the same envelope cut short (its OIDs still say enveloped-data): no
	# proof, so it is encrypted for bob like any other content
	awk '/^\r?$/ { b = 1 } !b || n++ < 8 { print }' "$d/own-env.eml" >"$d/cut-env.eml"
	send alice@example.com bob@partner.example "$d/cut-env.eml" &&
		new_copy $((n += 1)) || return 1
	assert_header "$F" Content-Type 'smime-type="?enveloped-data' || return 1
	openssl cms -decrypt -recip "$P/bob.pem" -inkey "$P/bob.key" -in "$F" \
		-out "$d/cut.dec" 2>"$d/cut.err" ||
		{ fail_because "bob cannot open the copy of the cut envelope: $(tail -n 1 "$d/cut.err")"; return 1; }
	assert_file_matches "$d/cut.dec" 'application/(x-)?pkcs7-mime' \
		"bob's plaintext: the cut envelope as sent"
}

# 9d. a rule both ways (a re-encrypting gateway): a message encrypted to
# alice, from alice to bob, under decrypt,verify,sign,encrypt for bob: it
# is opened with alice's key, signed as alice and encrypted for bob; bob's
# key opens it and alice's signature inside verifies over the body.
case_both_ways() {
	setup_store keys=alice certs=bob || return 1
	rule --recipient bob@partner.example --action decrypt,verify,sign,encrypt || return 1
	start_daemon || return 1
	local d=$CASE_DIR o
	msg inner alice@example.com bob@partner.example
	awk 'b { print } /^\r?$/ { b = 1 }' "$M" >"$d/inner-body.txt"
	openssl cms -encrypt -aes-256-cbc -in "$d/inner-body.txt" -from alice@example.com \
		-to bob@partner.example -subject 'to alice first' "$P/alice.pem" \
		>"$d/to-alice.eml" 2>"$d/enc.err" ||
		{ fail_because "openssl cms -encrypt: $(tail -n 1 "$d/enc.err")"; return 1; }
	send alice@example.com bob@partner.example "$d/to-alice.eml" || return 1
	wait_delivered 1 && copy_of bob@partner.example bob@partner.example || return 1
	enveloped "$F" && opens "$F" bob || return 1
	o=$(outp "$F")
	assert_file_matches "$o.bob.txt" '^Content-Type: multipart/signed' "bob's plaintext" &&
		verifies "$o.bob.txt" &&
		assert_header "$F" X-Smrelay-Processed "^ *$HOST; decrypt,verify,sign,encrypt;"
}

# 9e. one copy to sign, one plain, and no key to sign with yet: the plain
# copy goes and the other is held untransformed, so the message gets 250 (a
# 4xx would make the client send bob's copy again); once alice's key is
# imported, the held copy is signed and goes.  Bob gets exactly one copy.
case_partial_hold() {
	local n
	setup_store || return 1
	rule --recipient carol@partner.example --action sign || return 1
	start_daemon || return 1
	msg m alice@example.com "bob@partner.example, carol@partner.example"
	send alice@example.com bob@partner.example,carol@partner.example "$M" || return 1
	reply_to "." 250 "" || return 1
	wait_delivered 1 && copy_of bob@partner.example bob@partner.example && plain "$F" || return 1
	assert_file_matches "$CASE_DIR/smrelayd.log" "held untransformed .*no signing key" \
		"the log line of the held copy" || return 1
	n=$(ctl queue list | grep -c .)
	assert_eq 1 "$n" "copies in the queue (carol's, held)" || return 1
	ctl queue list | grep -F carol@partner.example | grep -q -w -F hold-retry ||
		{ fail_because "queue list: not hold-retry: $(ctl queue list)"; return 1; }
	ctl queue show "$(ctl queue list | cut -f1)" >"$CASE_DIR/show.txt"
	assert_file_matches "$CASE_DIR/show.txt" '^last error: 451 4\.7\.0 .*no signing key' \
		"queue show of the held copy" || return 1
	ctl key import "$P/alice.p12" >/dev/null ||
		{ fail_because "key import: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	wait_delivered 2 20 && copy_of carol@partner.example carol@partner.example &&
		assert_header "$F" Content-Type 'multipart/signed' && verifies "$F" || return 1
	assert_eq 2 "$(sink_count)" "messages at the sink (one for bob, one for carol)"
}

# 9f. the same, and the key never comes: at queue_lifetime the held copy
# bounces as expired with its last reply (no signing key), not as a copy
# that waited for a certificate.
case_partial_hold_expires() {
	setup_store || return 1
	write_conf "$CONF" queue_lifetime=3s
	rule --recipient carol@partner.example --action sign || return 1
	start_daemon || return 1
	msg m alice@example.com "bob@partner.example, carol@partner.example"
	send alice@example.com bob@partner.example,carol@partner.example "$M" || return 1
	reply_to "." 250 "" || return 1
	wait_delivered 2 15 ||
		{ fail_because "no DSN after queue_lifetime: $(ctl queue list | tr '\n' '|')"; return 1; }
	F=$(sink_file_for alice@example.com) ||
		{ fail_because "no DSN to alice at the sink"; return 1; }
	assert_file_matches "$F" '^Return-Path: <>' "DSN envelope sender" &&
		assert_file_matches "$F" '^Final-Recipient: rfc822; ?carol@partner.example' "Final-Recipient" &&
		assert_file_matches "$F" '^Status: 4\.4\.7' "Status" &&
		assert_file_matches "$F" 'no signing key' "the last reply in the DSN" &&
		assert_file_lacks "$F" 'certificate to encrypt' "the certificate text" || return 1
	[ -z "$(ctl queue list)" ] || { fail_because "queue not empty: $(ctl queue list)"; return 1; }
}

# 10. null sender, encrypt rule for the recipient.
case_null_sender() {
	setup_store certs=bob || return 1
	rule --recipient @partner.example --action encrypt || return 1
	start_daemon || return 1
	msg m '<>' bob@partner.example
	send '<>' bob@partner.example "$M" || return 1
	reply_to "MAIL FROM:<>" 250 "" && reply_to "." 250 "" || return 1
	wait_delivered 1 && assert_sink_count 1 || return 1
	copy_of bob@partner.example bob@partner.example &&
		assert_file_matches "$F" '^Return-Path: <>' "null sender at the sink" &&
		enveloped "$F" && opens "$F" bob
}

# 11. `smrelayctl apply` on the envelope of case 3 (plain), recipients given
# as `--recipient A --recipient B ...` (apply_repeated) or as the contract
# writes it, `--recipient ADDR...` like `smime encrypt --to ADDR...`
# (apply_list).
case_apply() {
	local out=$CASE_DIR/apply.out r=(--recipient bob@partner.example)
	if [ "$1" = list ]; then
		r+=(carol@partner.example dave@partner.example)
	else
		r+=(--recipient carol@partner.example --recipient dave@partner.example)
	fi
	setup_store certs=bob,carol || return 1
	rule --recipient @partner.example --action encrypt --if-no-cert plain || return 1
	msg m alice@example.com "bob@partner.example, carol@partner.example, dave@partner.example"
	ctl apply --sender alice@example.com "${r[@]}" <"$M" >"$out" ||
		{ fail_because "apply exited $?: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	assert_eq "--- copy for bob@partner.example,carol@partner.example|--- copy for dave@partner.example" \
		"$(tr -d '\r' <"$out" | grep '^--- copy for' | sort | paste -s -d '|')" "copy separators" || return 1
	# Split the copies and check each with openssl.
	tr -d '\r' <"$out" | awk -v d="$CASE_DIR" '
		/^--- copy for / { n++; f = d "/copy" n ".eml"; print substr($0, 14) > (d "/copy" n ".for"); next }
		{ print > f }'
	local i enc="" pl=""
	for i in 1 2; do
		case $(cat "$CASE_DIR/copy$i.for") in
		dave@partner.example) pl=$CASE_DIR/copy$i.eml ;;
		*) enc=$CASE_DIR/copy$i.eml ;;
		esac
	done
	enveloped "$enc" && opens "$enc" bob && opens "$enc" carol && plain "$pl"
}

# 1b. an upgrade: the store still holds alice's key (schema 6, made from
# ours with sqlite3) and there is no key file; the daemon moves the key at
# start and signs with it, and smrelay.db keeps no key.
case_sign_after_upgrade() {
	have sqlite3 || { skip "sqlite3 not installed"; return 0; }
	setup_store keys=alice || return 1
	rule --sender @example.com --action sign || return 1
	openssl pkcs8 -topk8 -nocrypt -in "$P/alice.key" -outform DER \
		-out "$CASE_DIR/alice.p8" &&
		sqlite3 "$CASE_DIR/data/smrelay.db" "UPDATE keys SET pkey = readfile('$CASE_DIR/alice.p8');
			ALTER TABLE keys DROP COLUMN location; PRAGMA user_version = 6;" &&
		rm -f "$CASE_DIR/data/keys.db" ||
		{ fail_because "cannot make the old store"; return 1; }
	start_daemon || return 1
	msg m alice@example.com bob@partner.example
	send alice@example.com bob@partner.example "$M" || return 1
	wait_delivered 1 && copy_of bob@partner.example bob@partner.example &&
		assert_header "$F" Content-Type 'multipart/signed' && verifies "$F" || return 1
	assert_eq "600" "$(stat -c %a "$CASE_DIR/data/keys.db")" "key file mode" &&
		assert_eq "0" "$(sqlite3 "$CASE_DIR/data/smrelay.db" 'SELECT max(length(pkey)) FROM keys')" \
			"key bytes left in smrelay.db"
}

run_case sign case_sign
run_case sign_after_upgrade case_sign_after_upgrade
run_case encrypt_two_partners case_encrypt_two
run_case nocert_reject case_nocert_reject
run_case nocert_plain case_nocert_plain
run_case nocert_hold case_nocert_hold
run_case hold_expires case_hold_expires
run_case sign_encrypt case_sign_encrypt
run_case inbound_gpgsm_decrypt_verify case_inbound_gpgsm
run_case inbound_ambiguous case_inbound_ambiguous
run_case decrypt_one_mime_version case_decrypt_one_mime_version
run_case harvest_then_encrypt case_harvest
run_case rule_change_live case_rule_change
run_case rule_change_twice case_rule_change_twice
run_case sign_without_key case_no_key
run_case no_double_processing case_no_double
run_case no_policy_bypass case_no_bypass
run_case recipient_spellings case_recipient_spellings
run_case revoked_partner case_revoked_partner
run_case both_ways case_both_ways
run_case partial_hold case_partial_hold
run_case partial_hold_expires case_partial_hold_expires
run_case null_sender_encrypt case_null_sender
case_apply_repeated() { case_apply repeated; }
case_apply_list() { case_apply list; }
run_case apply_repeated_recipient case_apply_repeated
run_case apply_recipient_list case_apply_list
it_finish
