#!/bin/sh
# tests/smime/t_msg.sh: `smrelayctl smime sign|encrypt|decrypt|verify` on
# whole messages with the store (daemon/smime/smime_msg.c), against openssl cms
# and gpgsm: signatures they accept, envelopes they open, their signatures
# verified and harvested, tampering, forged Authentication-Results, outer
# headers kept.  Prints PASS/FAIL/SKIP per case; exits 1 when a case failed.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
CTL=${SMRELAYCTL:-$PWD/smrelayctl}
W=$(mktemp -d "${TMPDIR:-/tmp}/smime-msg.XXXXXX") || exit 99
G=$W/gnupg
. "$srcdir/tests/smime/common.sh"
. "$srcdir/tests/smime/gpgsm.sh"

command -v openssl >/dev/null 2>&1 || { echo "SKIP: no openssl program"; exit 77; }
[ -x "$CTL" ] || { echo "FAIL: smrelayctl not built at $CTL"; exit 1; }
make_pki
HOST=gw.example
printf 'relay = 127.0.0.1:2525\ndata_dir = %s/data\nhostname = %s\n' \
	"$W" "$HOST" > smrelay.conf

# outer NAME FILE: the outer header fields of msg.txt are all in FILE.
outer() {
	for h in 'From: Alice <alice@example.com>' 'To: Bob <bob@partner.example>, alice@example.com' \
	    'Subject: Gr=?UTF-8?Q?=C3=BC=C3=9Fe?=' 'Message-ID: <t-msg.1@example.com>'; do
		tr -d '\r' < "$2" | grep -qF "$h" || { fail "$1: outer headers" "no '$h'"; return 1; }
	done
	pass "$1: outer headers kept"
}
# ar FILE: its first line (our Authentication-Results).

# Store: our keys (alice; bob, to open what we encrypt to him), the trust
# anchor, bob's certificate.
ctl setup-key key import "$P/alice.p12" > /dev/null &&
	ctl setup-key2 key import "$P/bob.p12" > /dev/null &&
	ctl setup-trust trust import "$P/trust.pem" > /dev/null &&
	ctl setup-cert cert import "$P/bob.pem" > /dev/null &&
	ctl setup-cert2 cert import "$P/alice.pem" > /dev/null ||
	{ echo "FAIL: store setup ($(cat setup-*.err | tail -n 1))"; exit 1; }

# A message with an 8bit UTF-8 body and LF line ends.
printf 'From: Alice <alice@example.com>\nTo: Bob <bob@partner.example>, alice@example.com\nSubject: Gr=?UTF-8?Q?=C3=BC=C3=9Fe?=\nDate: Sun, 22 Nov 2026 20:00:00 +0000\nMessage-ID: <t-msg.1@example.com>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGr\303\274\303\237e aus K\303\266ln,\n\nthis is signed.\n-- \nAlice\n' > msg.txt

# --- sign ------------------------------------------------------------------
if ctl sign smime sign --from alice@example.com < msg.txt > s.eml; then
	if grep -q 'micalg=sha-256' s.eml && grep -q 'Content-Transfer-Encoding: quoted-printable' s.eml &&
	    ! LC_ALL=C grep -q "$(printf '[\200-\377]')" s.eml; then
		pass "sign: multipart/signed, 8bit body made quoted-printable"
	else
		fail "sign: multipart/signed, 8bit body made quoted-printable"
	fi
	if openssl cms -verify -CAfile "$P/trust.pem" -purpose smimesign \
	    -in s.eml -out s.out 2> s.oerr && grep -q 'Gr=C3=BC=C3=9Fe aus' s.out; then
		pass "sign: openssl cms -verify"
	else
		fail "sign: openssl cms -verify" "$(lastline s.oerr)"
	fi
	outer sign s.eml
else
	fail "sign" "$(lastline sign.err)"
fi
# An 8bit part whose long line has "--b" where quoted-printable breaks it:
# the continuation must not begin with the boundary, or the signed message
# gains a part made of the sender's next lines (tests/mime/qpbound.eml).
if ctl sign-qpbound smime sign --from alice@example.com \
    < "$SMIME_PY/../mime/qpbound.eml" > qb.eml &&
    openssl cms -verify -CAfile "$P/trust.pem" -purpose smimesign \
    -in qb.eml -out qb.out 2> qb.oerr &&
    python3 - qb.out <<'PYEOF'
import email, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"))
parts = m.get_payload()
assert isinstance(parts, list) and len(parts) == 1, "%d parts" % len(parts)
text = parts[0].get_payload(decode=True).decode("utf-8")
assert text.startswith("\u00e9" + "a" * 69 + "--b\n"), repr(text[:90])
assert "Content-Type: text/html" in text, repr(text)
PYEOF
then
	pass "sign: a soft break before \"--b\" keeps the part whole"
else
	fail "sign: a soft break before \"--b\" keeps the part whole" "$(lastline sign-qpbound.err)$(lastline qb.oerr)"
fi
if ctl sign-opaque smime sign --from alice@example.com --opaque < msg.txt > so.eml &&
    grep -q 'smime-type=signed-data' so.eml &&
    openssl cms -verify -CAfile "$P/trust.pem" -in so.eml -out so.out 2> so.oerr &&
    grep -q 'Gr=C3=BC=C3=9Fe aus' so.out; then
	pass "sign --opaque: openssl cms -verify"
	outer "sign --opaque" so.eml
else
	fail "sign --opaque: openssl cms -verify" "$(lastline sign-opaque.err)$(lastline so.oerr)"
fi
if ctl sign-nokey smime sign --from nobody@example.com < msg.txt > nk.out; then
	fail "sign without a key" "exit 0"
elif [ -s nk.out ] || ! grep -q 'no signing key for nobody@example.com' sign-nokey.err; then
	fail "sign without a key" "stderr: $(lastline sign-nokey.err)"
else
	pass "sign without a key: error names the address, no output"
fi

# --- gpgsm verifies our signature -------------------------------------------
if command -v gpgsm >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1 && [ -s s.eml ]; then
	gpgsm_home "$P" > /dev/null 2>&1
	split_signed s.eml g-c.bin g-s.der
	GNUPGHOME=$G gpgsm --batch --status-fd 1 --verify g-s.der g-c.bin > g-v.out 2> g-v.err
	grep -q 'GOODSIG' g-v.out && grep -q 'TRUST_FULLY' g-v.out &&
		pass "sign: gpgsm --verify" || fail "sign: gpgsm --verify" "$(lastline g-v.err)"
else
	skip "sign: gpgsm --verify (gpgsm or python3 not installed)"
fi

# --- encrypt ---------------------------------------------------------------
if ctl encrypt smime encrypt --to bob@partner.example alice@example.com < msg.txt > e.eml; then
	grep -q 'smime-type=enveloped-data' e.eml &&
		pass "encrypt: enveloped-data (AES-256-CBC by default)" ||
		fail "encrypt: enveloped-data (AES-256-CBC by default)"
	for r in bob alice; do
		if openssl cms -decrypt -recip "$P/$r.pem" -inkey "$P/$r.key" \
		    -in e.eml -out "e-$r.out" 2> "e-$r.oerr" &&
		    grep -q 'Gr=C3=BC=C3=9Fe aus' "e-$r.out"; then
			pass "encrypt: openssl cms -decrypt as $r"
		else
			fail "encrypt: openssl cms -decrypt as $r" "$(lastline "e-$r.oerr")"
		fi
	done
	outer encrypt e.eml
	if ctl decrypt smime decrypt < e.eml > d.eml && grep -q 'Gr=C3=BC=C3=9Fe aus' d.eml &&
	    ! grep -q '^Authentication-Results' d.eml; then
		pass "decrypt: our decrypt of our envelope"
		outer decrypt d.eml
	else
		fail "decrypt: our decrypt of our envelope" "$(lastline decrypt.err)"
	fi
else
	fail "encrypt" "$(lastline encrypt.err)"
fi
if ctl encrypt-gcm smime encrypt --to bob@partner.example --cipher aes256-gcm < msg.txt > eg.eml &&
    grep -qi 'smime-type=authEnveloped-data' eg.eml &&
    ctl decrypt-gcm smime decrypt < eg.eml > dg.eml && grep -q 'Gr=C3=BC=C3=9Fe aus' dg.eml; then
	pass "encrypt --cipher aes256-gcm: authEnveloped-data, our decrypt"
else
	fail "encrypt --cipher aes256-gcm" "$(lastline encrypt-gcm.err)$(lastline decrypt-gcm.err)"
fi
if ctl encrypt-nocert smime encrypt --to bob@partner.example carol@example.net dave@example.net < msg.txt > nc.out; then
	fail "encrypt without a certificate" "exit 0"
elif [ -s nc.out ] || ! grep -q 'carol@example.net, dave@example.net' encrypt-nocert.err ||
    grep -q 'bob@partner' encrypt-nocert.err; then
	fail "encrypt without a certificate" "stderr: $(lastline encrypt-nocert.err)"
else
	pass "encrypt without a certificate: error lists the recipients, no output"
fi
if ctl decrypt-plain smime decrypt < msg.txt > dp.out; then
	fail "decrypt of a plain message" "exit 0"
else
	pass "decrypt of a plain message: error"
fi

# --- sign then encrypt, our decrypt verifies --------------------------------
if ctl sign-enc smime encrypt --sign --from alice@example.com --to bob@partner.example < msg.txt > se.eml &&
    ctl sign-enc-dec smime decrypt < se.eml > sed.eml; then
	case "$(ar sed.eml)" in
	"Authentication-Results: $HOST; smime=pass (revocation unknown: no usable CRL for alice and others) body.smime-identifier=alice@example.com")
		pass "sign+encrypt: our decrypt shows smime=pass" ;;
	*) fail "sign+encrypt: our decrypt shows smime=pass" "$(ar sed.eml)" ;;
	esac
	outer "sign+encrypt, decrypt" sed.eml
else
	fail "sign+encrypt" "$(lastline sign-enc.err)$(lastline sign-enc-dec.err)"
fi
ctl pipe-s smime sign --from alice@example.com < msg.txt |
	ctl pipe-e smime encrypt --to bob@partner.example |
	ctl pipe-d smime decrypt > pd.eml
case "$(ar pd.eml)" in
*"smime=pass"*) pass "sign | encrypt | decrypt: smime=pass" ;;
*) fail "sign | encrypt | decrypt: smime=pass" "$(ar pd.eml) $(lastline pipe-d.err)" ;;
esac

# --- verify ----------------------------------------------------------------
if ctl verify-own smime verify < s.eml > v.eml; then
	[ "$(ar v.eml)" = "Authentication-Results: $HOST; smime=pass (revocation unknown: no usable CRL for alice and others) body.smime-identifier=alice@example.com" ] &&
		pass "verify: our signature passes" || fail "verify: our signature passes" "$(ar v.eml)"
	outer verify v.eml
else
	fail "verify: our signature passes" "exit $? $(ar v.eml)"
fi
# The same message saved with LF line ends (a file on disk) verifies like
# its CRLF form (RFC 8551 3.1.1: the signature covers the CRLF form).
tr -d '\r' < s.eml > s-lf.eml
if ctl verify-lf smime verify < s-lf.eml > v-lf.eml &&
    [ "$(ar v-lf.eml)" = "Authentication-Results: $HOST; smime=pass (revocation unknown: no usable CRL for alice and others) body.smime-identifier=alice@example.com" ]; then
	pass "verify: our signature with LF line ends passes"
else
	fail "verify: our signature with LF line ends passes" "$(ar v-lf.eml) $(lastline verify-lf.err)"
fi
# ... but LF-saving does not excuse a changed body.
sed 's/aus/AUS/' s-lf.eml > s-lft.eml
ctl verify-lf-tampered smime verify < s-lft.eml > v-lft.eml
case "$(ar v-lft.eml)" in
*"smime=fail"*) pass "verify: tampered LF message fails" ;;
*) fail "verify: tampered LF message fails" "$(ar v-lft.eml)" ;;
esac
# Our signatures announce AES-256-GCM: once harvested, auto picks GCM.
if ctl encrypt-auto smime encrypt --to alice@example.com < msg.txt > ea.eml &&
    grep -qi 'smime-type=authEnveloped-data' ea.eml &&
    ctl decrypt-auto smime decrypt < ea.eml > da.eml && grep -q 'Gr=C3=BC=C3=9Fe aus' da.eml; then
	pass "encrypt, cipher auto: GCM after a harvested signature announcing it"
else
	fail "encrypt, cipher auto: GCM after a harvested signature announcing it" "$(grep -i smime-type ea.eml) $(lastline encrypt-auto.err)"
fi
if ctl verify-opaque smime verify < so.eml > vo.eml && grep -q '^Content-Type: text/plain' vo.eml &&
    ! grep -q 'pkcs7' vo.eml && grep -q 'Gr=C3=BC=C3=9Fe aus' vo.eml; then
	pass "verify --opaque: pass, signed entity unwrapped"
	outer "verify opaque" vo.eml
else
	fail "verify --opaque: pass, signed entity unwrapped" "$(ar vo.eml)"
fi
printf 'Content-Type: text/plain; charset=us-ascii\n\nHello Alice,\nsigned by openssl.\n' > ent.txt
openssl cms -sign -in ent.txt -signer "$P/bob-ec.pem" -inkey "$P/bob-ec.key" \
	-certfile "$P/chain.pem" -from 'Bob <bob@partner.example>' \
	-to alice@example.com -subject 'from openssl' > os.eml 2> os.oerr ||
	fail "openssl cms -sign" "$(lastline os.oerr)"
fp=$(openssl x509 -in "$P/bob-ec.pem" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr 'A-F' 'a-f')
ctl list0 cert list > l0.out
grep -q "$fp" l0.out && fail "harvest: bob-ec already in the store"
if ctl verify-openssl smime verify < os.eml > vos.eml &&
    [ "$(ar vos.eml)" = "Authentication-Results: $HOST; smime=pass (revocation unknown: no usable CRL for bob-ec and others) body.smime-identifier=bob@partner.example" ]; then
	pass "verify: openssl cms -sign message passes"
else
	fail "verify: openssl cms -sign message passes" "$(ar vos.eml) $(lastline verify-openssl.err)"
fi
ctl list1 cert list > l1.out
grep "$fp" l1.out | grep -q harvest && pass "verify: signer certificate harvested (cert list)" ||
	fail "verify: signer certificate harvested (cert list)" "$(cat l1.out | tr '\n' ' ')"
sed 's/signed by openssl/signed by 0penssl/' os.eml > ost.eml
ctl verify-tampered smime verify < ost.eml > vt.eml
rc=$?
case "$(ar vt.eml)" in
"Authentication-Results: $HOST; smime=fail"*)
	[ $rc -eq 1 ] && pass "verify: tampered body fails, exit 1" ||
		fail "verify: tampered body fails, exit 1" "exit $rc" ;;
*) fail "verify: tampered body fails, exit 1" "$(ar vt.eml)" ;;
esac
{ printf 'Authentication-Results: GW.Example;\n\tsmime=pass body.smime-identifier=bob@partner.example\nAuthentication-Results: other.example; smime=pass\n'; cat ost.eml; } > forged.eml
ctl verify-forged smime verify < forged.eml > vf.eml
if [ "$(grep -ci '^Authentication-Results: gw.example' vf.eml)" = 1 ] &&
    grep -q '^Authentication-Results: other.example; smime=pass' vf.eml &&
    ar vf.eml | grep -q 'smime=fail'; then
	pass "verify: forged Authentication-Results of $HOST removed, others kept"
else
	fail "verify: forged Authentication-Results of $HOST removed, others kept" "$(grep -i '^Authentication-Results' vf.eml | tr '\n' ' ')"
fi
ctl verify-plain smime verify < msg.txt > vp.eml
rc=$?
if [ $rc -eq 1 ] && [ "$(ar vp.eml)" = "Authentication-Results: $HOST; smime=none" ] &&
    [ "$(tail -n +2 vp.eml | cmp - msg.txt && echo same)" = same ]; then
	pass "verify: plain message gets smime=none, otherwise unchanged, exit 1"
else
	fail "verify: plain message gets smime=none, otherwise unchanged, exit 1" "exit $rc $(ar vp.eml)"
fi
printf 'From: alice@example.com\nContent-Type: application/pkcs7-mime; name=smime.p7m\nContent-Transfer-Encoding: base64\n\nAAAA\n' > bad.eml
ctl verify-bad smime verify < bad.eml > vb.eml
rc=$?
ctl decrypt-bad smime decrypt < bad.eml > db.eml
rc2=$?
case "$(ar vb.eml)" in
*"smime=permerror"*)
	[ $rc -eq 1 ] && [ $rc2 -ne 0 ] && ! [ -s db.eml ] &&
		pass "malformed pkcs7-mime: permerror, decrypt fails" ||
		fail "malformed pkcs7-mime: permerror, decrypt fails" "exit $rc/$rc2" ;;
*) fail "malformed pkcs7-mime: permerror, decrypt fails" "$(ar vb.eml)" ;;
esac
sed 's/^From: .*/From: Mallory <mallory@example.com>/' msg.txt |
	ctl sign-mallory smime sign --from alice@example.com > sm.eml
ctl verify-policy smime verify < sm.eml > vm.eml
case "$(ar vm.eml)" in
*"smime=policy"*) pass "verify: From not in the signer certificate: policy" ;;
*) fail "verify: From not in the signer certificate: policy" "$(ar vm.eml)" ;;
esac

# --- a verdict only for what every reader sees -----------------------------
# Our Authentication-Results speaks for the message a mail reader will show.
# A sender who keeps bob's valid signature but adds a structure that other
# readers see differently (they take the last of two Content-Types or
# parameters, read past a line we stop at, show a third part of a
# multipart/signed, show the second of two From addresses, or the From
# inside the signed part) must not get smime=pass for it.  Each variant of os.eml (signed by bob, From: bob)
# with the verdict it must get.
python3 - os.eml <<'PYEOF' || fail "ambiguous: variants" "python3"
import re, sys
m = open(sys.argv[1], newline='').read().replace('\r\n', '\n')
h, body = m.split('\n\n', 1)
b = re.search(r'boundary="([^"]*)"', h).group(1)
ct = re.search(r'^Content-Type: .*(\n[ \t].*)*', h, re.M).group(0)
evil = 'Content-Type: text/plain\n\nPay invoice 1 to account MALLORY.\n'
wrapped = '--EVIL\n' + evil + '--EVIL\nContent-Type: text/plain\n\n' + body + '\n--EVIL--\n'
sig = re.search(r'\n(Content-Type: application/(x-)?pkcs7-signature[^\n]*)', body).group(1)
def put(name, head, text):
    open(name, 'w').write(head + '\n\n' + text)
put('amb-ct2.eml', h + '\nContent-Type: multipart/mixed; boundary="EVIL"', wrapped)
put('amb-ctsp.eml', h.replace('Content-Type:', 'Content-Type :') + '\nContent-Type: multipart/mixed; boundary="EVIL"', wrapped)
put('amb-param.eml', h.replace('boundary="%s"' % b, 'boundary="%s"; boundary="EVIL"' % b), wrapped)
put('amb-2231.eml', h.replace('boundary="%s"' % b, 'boundary="%s"; boundary*0="EVIL"' % b), wrapped)
put('amb-line.eml', h + '\nthis line has no colon\nContent-Type: multipart/mixed; boundary="EVIL"', wrapped)
put('amb-cte2.eml', h + '\nContent-Transfer-Encoding: 7bit\nContent-Transfer-Encoding: base64', body)
put('amb-third.eml', h, body.replace('--%s--' % b, '--%s\n%s--%s--' % (b, evil, b)))
put('amb-sigct.eml', h, body.replace(sig, sig + '\nContent-Type: text/plain'))
put('amb-from2.eml', h + '\nFrom: CEO <ceo@partner.example>', body)
put('amb-frombox.eml', h.replace('From: Bob <bob@partner.example>', 'From: Bob <bob@partner.example>, CEO <ceo@partner.example>'), body)
put('amb-fromok.eml', h.replace('From: Bob <bob@partner.example>', 'From: "Bob, Partner" <bob@partner.example> (a, b)'), body)
for name, v in (('angle2', 'Bob <bob@partner.example> <ceo@partner.example>'),
                ('dispq', '"ceo@partner.example" <bob@partner.example>'),
                ('disp2047', '=?utf-8?q?CEO_=3Cceo=40partner=2Eexample=3E?= <bob@partner.example>'),
                ('dispcomment', 'bob@partner.example (CEO <ceo@partner.example>)'),
                ('dispfull', '=?utf-8?q?ceo=EF=BC=A0partner=EF=BC=8Eexample?= <bob@partner.example>'),
                ('dispsame', '"Bob (bob@partner.example)" <bob@partner.example>'),
                ('case', 'Bob <Bob@Partner.Example>')):
    put('amb-from%s.eml' % name, h.replace('From: Bob <bob@partner.example>', 'From: ' + v), body)
PYEOF
# The signed entity's own From (RFC 9788 protected fields, or an opaque
# message's entity, whose fields join the message's when unwrapped): bob
# signing an entity whose From is the CEO is no pass for bob's message.
for e in 'ceo:From: CEO <ceo@partner.example>' 'two:From: Bob <bob@partner.example>, CEO <ceo@partner.example>' \
    'same:From: Bob Partner <BOB@partner.example>' 'disp:From: "ceo@partner.example" <bob@partner.example>'; do
	printf '%s\nContent-Type: text/plain\n\nPay invoice 1 to account MALLORY.\n' "${e#*:}" > "inner-${e%%:*}.txt"
	openssl cms -sign -in "inner-${e%%:*}.txt" -signer "$P/bob-ec.pem" -inkey "$P/bob-ec.key" \
		-certfile "$P/chain.pem" -from 'Bob <bob@partner.example>' -to alice@example.com \
		-subject inner > "amb-in${e%%:*}.eml" 2>> os.oerr
	openssl cms -sign -nodetach -in "inner-${e%%:*}.txt" -signer "$P/bob-ec.pem" -inkey "$P/bob-ec.key" \
		-certfile "$P/chain.pem" -from 'Bob <bob@partner.example>' -to alice@example.com \
		-subject inner > "amb-op${e%%:*}.eml" 2>> os.oerr
done
for c in "ct2:permerror (ambiguous structure: more than one Content-Type field)" \
    "ctsp:permerror (ambiguous structure: more than one Content-Type field)" \
    "param:permerror (ambiguous structure: a Content-Type field that readers parse differently" \
    "2231:permerror (ambiguous structure: a Content-Type field that readers parse differently" \
    "line:permerror (ambiguous structure: a header line that is no field)" \
    "cte2:permerror (ambiguous structure: more than one Content-Transfer-Encoding" \
    "third:permerror (malformed S/MIME structure)" \
    "sigct:permerror (ambiguous structure: more than one Content-Type field)" \
    "from2:policy (more than one From field;" \
    "frombox:policy (the From field names more than one mailbox;" \
    "fromok:pass (revocation unknown" \
    "fromangle2:policy (the From field names more than one mailbox;" \
    "fromdispq:policy (the From display name shows another address;" \
    "fromdisp2047:policy (the From display name shows another address;" \
    "fromdispcomment:policy (the From display name shows another address;" \
    "fromdispfull:policy (the From display name shows another address;" \
    "fromdispsame:pass (revocation unknown" "fromcase:pass (revocation unknown" \
    "inceo:policy (the From of the signed part is not the message's;" \
    "opceo:policy (the From of the signed part is not the message's;" \
    "intwo:policy (the signed part names more than one From;" \
    "optwo:policy (the signed part names more than one From;" \
    "indisp:policy (the From display name of the signed part shows another address;" \
    "opdisp:policy (the From display name of the signed part shows another address;" \
    "insame:pass (revocation unknown" "opsame:pass (revocation unknown"; do
	n=${c%%:*}
	want="Authentication-Results: $HOST; smime=${c#*:}"
	ctl "verify-amb-$n" smime verify < "amb-$n.eml" > "vamb-$n.eml"
	case "$(ar "vamb-$n.eml")" in
	"$want"*) pass "verify, ambiguous: $n gets smime=${c#*:}" ;;
	*) fail "verify, ambiguous: $n gets smime=${c#*:}" "$(ar "vamb-$n.eml")" ;;
	esac
done
# Unwrapping keeps one of each field a message has once: a whole message
# (From, To, Subject inside, as `openssl smime -encrypt` of a mail file or
# RFC 9788 header protection write it) encrypted under outer fields of its
# own gives one From, To and Subject, the inner ones; the opaque message
# whose entity says From: CEO is delivered with that From alone (and the
# policy verdict above), not with bob's besides.
printf 'From: Alice Inner <alice@example.com>\nTo: bob@partner.example\nSubject: inner subject\nContent-Type: text/plain\n\nsecret\n' > whole.txt
openssl cms -encrypt -in whole.txt -aes256 "$P/alice.pem" > whole.p7 2>> os.oerr
{ printf 'From: alice@example.com\nTo: bob@partner.example\nSubject: [...]\n'; cat whole.p7; } > whole.eml
if ctl dec-whole smime decrypt < whole.eml > dwhole.eml; then
	tr -d '\r' < dwhole.eml | sed '/^$/q' > dwhole.hdr
	if [ "$(grep -c '^From:' dwhole.hdr)/$(grep -c '^To:' dwhole.hdr)/$(grep -c '^Subject:' dwhole.hdr)" = 1/1/1 ] &&
	    grep -q '^From: Alice Inner' dwhole.hdr && grep -q '^Subject: inner subject' dwhole.hdr; then
		pass "decrypt: one From, To and Subject, the protected ones"
	else
		fail "decrypt: one From, To and Subject, the protected ones" "$(tr '\n' '|' < dwhole.hdr)"
	fi
else
	fail "decrypt: one From, To and Subject, the protected ones" "$(lastline dec-whole.err)"
fi
tr -d '\r' < vamb-opceo.eml | sed '/^$/q' > vopceo.hdr
[ "$(grep -c '^From:' vopceo.hdr)" = 1 ] && grep -q '^From: CEO' vopceo.hdr &&
	pass "verify opaque: the entity's From alone" ||
	fail "verify opaque: the entity's From alone" "$(tr '\n' '|' < vopceo.hdr)"
# An entity whose header block is over 1 MiB cannot have its fields
# checked: our Authentication-Results forged inside it would pass as ours.
# Decrypted, it is refused (the pipeline relays it encrypted); opaque
# signed, it is not unwrapped and the verdict says why.  The same when the
# message's and the entity's header are each under 1 MiB and together
# over it: the result's header could not be read to verify what it holds.
python3 - <<'PYEOF'
pad = ''.join('X-Pad-%d: %s\r\n' % (i, 'p' * 90) for i in range(12000))
open('bighdr.txt', 'w', newline='').write(pad + 'Authentication-Results: gw.example'
    + '; smime=pass (forged)\r\nFrom: Bob <bob@partner.example>\r\nContent-Type: text/plain\r\n\r\nForged.\r\n')
PYEOF
openssl cms -encrypt -in bighdr.txt -aes256 -from bob@partner.example -to alice@example.com \
	-subject bighdr "$P/alice.pem" > bighdr-enc.eml 2>> os.oerr
openssl cms -sign -nodetach -in bighdr.txt -signer "$P/bob.pem" -inkey "$P/bob.key" \
	-certfile "$P/chain.pem" -from 'Bob <bob@partner.example>' -to alice@example.com \
	-subject bighdr > bighdr-op.eml 2>> os.oerr
# decrypt_refused NAME FILE TEST: smrelayctl smime decrypt of FILE fails,
# saying that the result's header would be over 1 MiB
decrypt_refused() {
	if ctl "dec-$1" smime decrypt < "$2" > "d$1.eml"; then
		fail "$3" "exit 0, $(grep -c 'smime=pass (forged)' "d$1.eml") forged result(s)"
	elif grep -q "the decrypted message's header would be over 1024 KiB" "dec-$1.err"; then
		pass "$3"
	else
		fail "$3" "$(lastline "dec-$1.err")"
	fi
}
decrypt_refused bighdr bighdr-enc.eml "decrypt: an entity header over 1 MiB is refused"
python3 - <<'PYEOF'
half = ''.join('X-Pad-%d: %s\r\n' % (i, 'p' * 90) for i in range(6000))
open('halfhdr.txt', 'w', newline='').write(half + 'Content-Type: text/plain\r\n\r\nHalf.\r\n')
PYEOF
openssl cms -encrypt -in halfhdr.txt -aes256 "$P/alice.pem" > halfhdr.p7 2>> os.oerr
python3 -c 'import sys; h = "".join("X-Outer-%d: %s\r\n" % (i, "q" * 90) for i in range(6000)); sys.stdout.write(h + "From: bob@partner.example\r\n")' > halfhdr-enc.eml
cat halfhdr.p7 >> halfhdr-enc.eml
decrypt_refused halfhdr halfhdr-enc.eml "decrypt: a result header over 1 MiB is refused"
# verified without decrypting (a verify rule alone, or a decryption that
# failed as above): none, and the comment says nothing inside was checked
ctl verify-enc smime verify < bighdr-enc.eml > vbighdr-enc.eml
[ "$(ar vbighdr-enc.eml)" = "Authentication-Results: $HOST; smime=none (encrypted, not decrypted here: a signature inside is not checked)" ] &&
	pass "verify: an encrypted message is none, said why" ||
	fail "verify: an encrypted message is none, said why" "$(ar vbighdr-enc.eml)"
ctl verify-bighdr smime verify < bighdr-op.eml > vbighdr.eml
case "$(ar vbighdr.eml)" in
"Authentication-Results: $HOST; smime=permerror (the unwrapped message's header would be over 1024 KiB"*)
	if grep -q 'smime=pass (forged)' vbighdr.eml; then
		fail "verify opaque: an entity header over 1 MiB is not unwrapped" "the forged result is in the output"
	else
		pass "verify opaque: an entity header over 1 MiB is not unwrapped"
	fi ;;
*) fail "verify opaque: an entity header over 1 MiB is not unwrapped" "$(ar vbighdr.eml | cut -c1-200)" ;;
esac
# --- revocation: with CRLs imported, a revoked signer fails -----------------
openssl cms -sign -in ent.txt -signer "$P/revoked.pem" -inkey "$P/revoked.key" \
	-certfile "$P/chain.pem" -from alice@example.com -to bob@partner.example \
	-subject revoked > rev.eml 2> rev.oerr
ctl verify-rev0 smime verify < rev.eml > vr0.eml
# The intermediate goes in as a certificate (it chains to the anchor), not
# as an anchor; a CA that does not chain is refused, and so is a CRL whose
# signature does not verify or whose issuer is unknown.
openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.pem \
	-subj "/CN=Rogue CA" -days 2 -addext basicConstraints=critical,CA:TRUE 2>/dev/null
if ctl rogue-ca cert import rogue.pem > /dev/null; then
	fail "cert import: a CA that does not chain is refused" "exit 0"
else
	grep -q 'does not chain to a trust anchor' rogue-ca.err &&
		pass "cert import: a CA that does not chain is refused" ||
		fail "cert import: a CA that does not chain is refused" "$(cat rogue-ca.err)"
fi
openssl crl -in "$P/int.crl" -outform DER -out int-crl.der
python3 -c 'import sys; d=bytearray(open(sys.argv[1],"rb").read()); d[-5]^=1; open(sys.argv[2],"wb").write(d)' int-crl.der int-crl-bad.der
# The verifications above harvested the intermediate (it came with the
# signatures and chains to the anchor).
ctl list-int cert list > li.out
grep -q 'smrelay Test Intermediate.*harvest$' li.out &&
	pass "verify: the intermediate that came with a signature is harvested" ||
	fail "verify: the intermediate that came with a signature is harvested" "$(grep -i intermediate li.out)"
# In a fresh store: a CRL of an unknown issuer is refused; a signature
# carrying only its leaf fails until the intermediate is imported.
mkdir -p fresh
sed "s|$W/data|$W/fresh|" smrelay.conf > fresh.conf
fctl() { _n=$1; shift; "$CTL" -c "$W/fresh.conf" "$@" 2> "$_n.err"; }
fctl f-trust trust import "$P/trust.pem" > /dev/null
fctl crl-before-int crl import "$P/int.crl" > /dev/null &&
	fail "crl import: unknown issuer refused" "exit 0" ||
	{ grep -q 'neither a trust anchor nor an intermediate' crl-before-int.err &&
		pass "crl import: unknown issuer refused" ||
		fail "crl import: unknown issuer refused" "$(cat crl-before-int.err)"; }
openssl cms -sign -in ent.txt -signer "$P/alice.pem" -inkey "$P/alice.key" \
	-from alice@example.com -to bob@partner.example -subject leaf-only > leaf.eml 2> leaf.oerr
fctl verify-leaf0 smime verify < leaf.eml > vl0.eml
if fctl cert-int cert import "$P/int.pem" > /dev/null; then
	fctl verify-leaf smime verify < leaf.eml > vl.eml
	case "$(ar vl0.eml) / $(ar vl.eml)" in
	*"smime=fail (unable to get local issuer certificate"*" / "*"smime=pass"*)
		pass "verify: a leaf-only signature passes once the intermediate is imported" ;;
	*) fail "verify: a leaf-only signature passes once the intermediate is imported" "$(ar vl0.eml) / $(ar vl.eml)" ;;
	esac
else
	fail "cert import of the intermediate CA" "$(lastline cert-int.err)"
fi
ctl crl-bad crl import int-crl-bad.der > /dev/null &&
	fail "crl import: bad signature refused" "exit 0" ||
	{ grep -q 'does not verify' crl-bad.err && pass "crl import: bad signature refused" ||
		fail "crl import: bad signature refused" "$(cat crl-bad.err)"; }
if ctl crl-int crl import "$P/int.crl" > /dev/null && ctl crl-root crl import "$P/root.crl" > /dev/null; then
	ctl verify-rev smime verify < rev.eml > vr.eml
	case "$(ar vr0.eml) / $(ar vr.eml)" in
	*"smime=pass (revocation unknown: no usable CRL for revoked"*" / "*"smime=fail (certificate revoked; revocation: imported CRL)"*)
		pass "verify: revoked signer passes without CRLs (saying so), fails with them" ;;
	*) fail "verify: revoked signer passes without CRLs (saying so), fails with them" "$(ar vr0.eml) / $(ar vr.eml)" ;;
	esac
	ctl verify-crl-ok smime verify < s.eml > vc.eml
	ar vc.eml | grep -q 'smime=pass (revocation: imported CRL) ' && pass "verify: good signer passes with CRLs, checked" ||
		fail "verify: good signer passes with CRLs, checked" "$(ar vc.eml)"
	# revocation = off: not checked, and not claimed
	{ cat smrelay.conf; echo "revocation = off"; } > off.conf
	"$CTL" -c off.conf smime verify < rev.eml > vro.eml 2> verify-off.err
	case "$(ar vro.eml)" in
	*"smime=pass body.smime-identifier="*) pass "verify, revocation = off: no check, no comment" ;;
	*) fail "verify, revocation = off: no check, no comment" "$(ar vro.eml)" ;;
	esac
	# revocation = hard: the root's CRL alone leaves the intermediate's
	# certificates undecided: temperror, never pass
	ctl crl-list crl list > crls.out
	intcrl=$(grep -i 'Intermediate' crls.out | cut -f1 | head -n 1)
	{ cat smrelay.conf; echo "revocation = hard"; } > hard.conf
	if [ -n "$intcrl" ] && ctl crl-rm crl remove "$intcrl" > /dev/null; then
		"$CTL" -c hard.conf smime verify < s.eml > vh.eml 2> verify-hard.err
		ctl verify-soft-rootcrl smime verify < s.eml > vs.eml
		case "$(ar vh.eml) / $(ar vs.eml)" in
		*"smime=temperror ("*"unable to get certificate CRL"*" / "*"smime=pass (revocation unknown: no usable CRL for alice)"*)
			pass "root CRL only: hard gives temperror, soft passes naming the certificate" ;;
		*) fail "root CRL only: hard gives temperror, soft passes naming the certificate" "$(ar vh.eml) / $(ar vs.eml)" ;;
		esac
		ctl crl-int2 crl import "$P/int.crl" > /dev/null
	# Encrypting to a revoked partner certificate is refused, saying so;
	# with revocation = off it is not checked.
	ctl cert-erin cert import --force "$P/erin-revoked.pem" > /dev/null
	if ctl enc-revoked smime encrypt --to erin@partner.example < msg.txt > er.eml; then
		fail "encrypt to a revoked certificate: refused" "exit 0"
	else
		grep -q 'erin@partner.example (certificate of erin-revoked revoked)' enc-revoked.err &&
			pass "encrypt to a revoked certificate: refused" ||
			fail "encrypt to a revoked certificate: refused" "$(lastline enc-revoked.err)"
	fi
	# cert check: the path, each link's status, exit 0 only when usable
	if ctl check-bob cert check --email bob@partner.example > cb.out &&
	    grep -q 'bob.*good (CRL, imported)' cb.out &&
	    grep -q 'Intermediate.*good (CRL, imported)' cb.out &&
	    grep -q 'Test Root.*trust anchor' cb.out && grep -q '^usable: yes' cb.out; then
		pass "cert check: good partner, every link checked, exit 0"
	else
		fail "cert check: good partner, every link checked, exit 0" "$(tr '\n' '|' < cb.out) $(lastline check-bob.err)"
	fi
	if ctl check-erin cert check --email erin@partner.example > ce.out; then
		fail "cert check: revoked partner, exit 1" "exit 0"
	else
		grep -q 'erin-revoked.*REVOKED' ce.out && grep -q '^usable: no' ce.out &&
			pass "cert check: revoked partner, exit 1" ||
			fail "cert check: revoked partner, exit 1" "$(tr '\n' '|' < ce.out)"
	fi
	ctl check-none cert check 99999 > /dev/null && fail "cert check: unknown ID" "exit 0" ||
		{ grep -q 'no certificate 99999' check-none.err && pass "cert check: unknown ID" ||
			fail "cert check: unknown ID" "$(cat check-none.err)"; }
	# alice's newest certificate (revoked.pem, harvested while no CRL
	# said otherwise) is revoked: her older good one is used instead
	if ctl enc-alice smime encrypt --to alice@example.com < msg.txt > ea2.eml &&
	    openssl cms -decrypt -recip "$P/alice.pem" -inkey "$P/alice.key" -in ea2.eml -out /dev/null 2>/dev/null; then
		pass "encrypt: a revoked newest certificate is passed over for a good older one"
	else
		fail "encrypt: a revoked newest certificate is passed over for a good older one" "$(lastline enc-alice.err)"
	fi
	"$CTL" -c off.conf smime encrypt --to erin@partner.example < msg.txt > ero.eml 2> enc-off.err &&
		grep -qi 'pkcs7-mime' ero.eml && pass "encrypt, revocation = off: not checked" ||
		fail "encrypt, revocation = off: not checked" "$(lastline enc-off.err)"
		"$CTL" -c hard.conf smime verify < s.eml > vh2.eml 2> verify-hard2.err
		ar vh2.eml | grep -q 'smime=pass (revocation: imported CRL) ' && pass "hard, every CRL there: pass" ||
			fail "hard, every CRL there: pass" "$(ar vh2.eml)"
	else
		fail "crl list/remove for the hard case" "$(cat crls.out | tr '\n' ' ')$(lastline crl-rm.err)"
	fi
else
	fail "crl import" "$(lastline crl-int.err)$(lastline crl-root.err)"
fi

# --- size cap --------------------------------------------------------------
printf 'relay = 127.0.0.1:2525\ndata_dir = %s/data\nmax_message_size = 1k\n' "$W" > small.conf
head -c 4000 /dev/zero | tr '\0' 'x' | fold -w 70 | cat msg.txt - > big.txt
if "$CTL" -c small.conf smime sign --from alice@example.com < big.txt > big.out 2> big.err; then
	fail "message over max_message_size" "exit 0"
elif [ -s big.out ] || ! grep -q 'max_message_size' big.err; then
	fail "message over max_message_size" "$(lastline big.err)"
else
	pass "message over max_message_size: clear error"
fi

# --- internationalized domains ---------------------------------------------
# dora's certificate names dora@xn--mller-kva.example (A-labels, RFC 5280
# 7.5); written dora@müller.example (U-labels, SMTPUTF8) she is the same:
# found to encrypt to, her signature passes for that From, and a rule for
# either spelling covers both.
UDOM=$(printf 'm\303\274ller.example')
ctl idn-cert cert import "$P/dora.pem" > /dev/null ||
	fail "idn: cert import" "$(lastline idn-cert.err)"
if ctl idn-enc smime encrypt --to "dora@$UDOM" < msg.txt > idn-enc.eml &&
    openssl cms -decrypt -recip "$P/dora.pem" -inkey "$P/dora.key" -in idn-enc.eml \
	-out idn-enc.txt 2>/dev/null && grep -q 'this is signed' idn-enc.txt; then
	pass "idn: encrypt to dora@U-label finds the A-label certificate"
else
	fail "idn: encrypt to dora@U-label finds the A-label certificate" "$(lastline idn-enc.err)"
fi
printf 'Content-Type: text/plain\r\n\r\nfrom dora\r\n' > idn-ent.txt
openssl cms -sign -in idn-ent.txt -signer "$P/dora.pem" -inkey "$P/dora.key" \
	-certfile "$P/chain.pem" -from "Dora <dora@$UDOM>" -to alice@example.com \
	-subject idn > idn-signed.eml 2>> os.oerr
ctl idn-verify smime verify < idn-signed.eml > idn-verified.eml
case "$(ar idn-verified.eml)" in
"Authentication-Results: $HOST; smime=pass"*) pass "idn: From dora@U-label passes for the A-label certificate" ;;
*) fail "idn: From dora@U-label passes for the A-label certificate" "$(ar idn-verified.eml)" ;;
esac
ctl idn-rule policy add --recipient "@$UDOM" --action encrypt > /dev/null &&
	ctl idn-test policy test --sender alice@example.com --recipient dora@xn--mller-kva.example > idn-test.out &&
	grep -q '^rule: ' idn-test.out &&
	pass "idn: a rule for @U-label covers the A-label address" ||
	fail "idn: a rule for @U-label covers the A-label address" "$(head -n 4 idn-test.out | tr '\n' '|')"

if [ $fails -gt 0 ]; then
	echo "t_msg: $fails failed"
	exit 1
fi
echo "t_msg: all passed"
exit 0
