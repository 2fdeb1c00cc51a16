#!/bin/sh
# tests/smime/t_opaque.sh: opaque signed-data (application/pkcs7-mime;
# smime-type=signed-data) verified in pieces by `smrelayctl smime verify`
# (smime_stream_verify: the body decoded into a spill file, split by
# cms_opaque_split into the signed entity and a detached signature): ours
# and openssl's (DER, and -stream: indefinite lengths, chunked content, and
# the same re-chunked nested, empty and one-byte), the entity given back
# under our Authentication-Results; tampered content fails; truncated,
# over-nested, trailing-chunk and mislabelled structures are permerror with
# the message kept; and a 40 MB opaque message costs no more memory than a
# 4 MB one (peak RSS of smrelayctl, ru_maxrss).
# Prints PASS/FAIL/SKIP per case; exits 1 when a case failed.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
CTL=${SMRELAYCTL:-$PWD/smrelayctl}
W=$(mktemp -d "${TMPDIR:-/tmp}/smime-opaque.XXXXXX") || exit 99
G=$W/gnupg
. "$srcdir/tests/smime/common.sh"

command -v openssl >/dev/null 2>&1 || { echo "SKIP: no openssl program"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
[ -x "$CTL" ] || { echo "FAIL: smrelayctl not built at $CTL"; exit 1; }
make_pki
HOST=gw.example
printf 'relay = 127.0.0.1:2525\ndata_dir = %s/data\nhostname = %s\nmax_message_size = 100M\n' \
	"$W" "$HOST" > smrelay.conf


ctl setup-key key import "$P/alice.p12" > /dev/null &&
	ctl setup-trust trust import "$P/trust.pem" > /dev/null ||
	{ echo "FAIL: store setup ($(cat setup-*.err | tail -n 1))"; exit 1; }

HDR='From: Alice <alice@example.com>\r\nTo: Bob <bob@partner.example>\r\nSubject: opaque test\r\nMessage-ID: <t-opaque.1@example.com>\r\n'
# The entity signed: a MIME entity, CRLF.
printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\nHello Bob,\r\nthis is opaque.\r\n' > ent
# verdict NAME WANT WHY FILE: `smime verify` of FILE says smime=WANT (and
# WHY); with pass, the entity comes back under our field and the outer ones.
verdict() {
	ctl "$1" smime verify < "$4" > "$1.out"
	case "$(ar "$1.out")" in
	"Authentication-Results: $HOST; smime=$2"*"$3"*) ;;
	*) fail "$1: smime=$2" "$(ar "$1.out") $(lastline "$1.err")"; return 1 ;;
	esac
	if [ "$2" = pass ]; then
		if ! tr -d '\r' < "$1.out" | grep -q '^this is opaque\.$' ||
		    grep -qi 'pkcs7-mime' "$1.out" ||
		    ! grep -q '^Subject: opaque test' "$1.out"; then
			fail "$1: entity given back" "$(head -c 400 "$1.out" | tr '\r\n' '  ')"
			return 1
		fi
	elif ! grep -qi 'application/pkcs7-mime' "$1.out"; then
		fail "$1: message kept" "no pkcs7-mime in the output"
		return 1
	fi
	pass "$1: smime=$2${3:+ ($3)}"
}

# --- ours, and openssl's in each encoding -----------------------------------
printf "$HDR" > msg.eml
cat ent >> msg.eml
if ctl sign-opaque smime sign --from alice@example.com --opaque < msg.eml > ours.eml; then
	verdict ours pass "" ours.eml
else
	fail "ours: smime sign --opaque" "$(lastline sign-opaque.err)"
fi
openssl cms -sign -nodetach -binary -in ent -outform DER -out o-der.der \
	-signer "$P/alice.pem" -inkey "$P/alice.key" 2> o.err &&
	wrap_p7m signed-data o-der.der > o-der.eml && verdict openssl-der pass "" o-der.eml ||
	[ -s o-der.eml ] || fail "openssl cms -sign" "$(lastline o.err)"
openssl cms -sign -nodetach -binary -stream -in ent -outform DER -out o-st.der \
	-signer "$P/alice.pem" -inkey "$P/alice.key" 2> o.err &&
	wrap_p7m signed-data o-st.der > o-st.eml && verdict openssl-stream pass "" o-st.eml
# no smime-type: found by its content type
wrap_p7m signed-data o-st.der | sed 's/ smime-type=signed-data;//' > o-nt.eml
verdict no-smime-type pass "" o-nt.eml

# rechunk IN OUT MODE: the content of IN's encapContentInfo as MODE:
#   nested    a constructed OCTET STRING holding a one-byte chunk, an empty
#             one, and a nested constructed one with the rest
#   deep      the content 40 constructed OCTET STRINGs deep
#   extra     a second OCTET STRING after the content inside [0]
#   noecontent no eContent at all (a detached signature sent as opaque)
#   truncated the DER cut in the middle of the content
# Every other length definite.
rechunk() {
	PYTHONPATH="$SMIME_PY" python3 - "$@" <<'PYEOF'
import sys
src, dst, mode = sys.argv[1:4]
data = open(src, 'rb').read()
from der import parse, enc, content
ci, _ = parse(data, 0)
sd = ci[1][1][1][0]
eci = sd[1][2]
econt = eci[1][1]
c = content(econt[1][0])
if mode == 'nested':
    new = (0x24, [(0x04, c[:1]), (0x04, b''), (0x24, [(0x04, c[1:10]), (0x04, c[10:])])])
    eci[1][1] = (0xa0, [new])
elif mode == 'deep':
    new = (0x04, c)
    for _ in range(40):
        new = (0x24, [new])
    eci[1][1] = (0xa0, [new])
elif mode == 'extra':
    eci[1][1] = (0xa0, [(0x04, c), (0x04, b'more')])
elif mode == 'noecontent':
    del eci[1][1]
out = enc(ci)
if mode == 'truncated':
    out = out[:len(out) // 2]
open(dst, 'wb').write(out)
PYEOF
}
if [ -s o-st.der ]; then
	for m in nested deep extra noecontent truncated; do
		rechunk o-st.der "r-$m.der" "$m" 2> "r-$m.perr" ||
			{ fail "rechunk $m" "$(lastline "r-$m.perr")"; continue; }
		wrap_p7m signed-data "r-$m.der" > "r-$m.eml"
	done
	verdict nested-chunks pass "" r-nested.eml
	verdict too-deep permerror "malformed CMS structure" r-deep.eml
	verdict extra-chunk permerror "malformed CMS structure" r-extra.eml
	verdict no-econtent permerror "malformed CMS structure" r-noecontent.eml
	verdict truncated permerror "malformed CMS structure" r-truncated.eml
fi

# --- tampered content, mislabelled envelope ---------------------------------
if [ -s o-der.der ]; then
	python3 -c '
import sys
d = bytearray(open(sys.argv[1], "rb").read())
i = d.find(b"this is opaque")
d[i] ^= 0x20
open(sys.argv[2], "wb").write(d)' o-der.der t.der &&
		wrap_p7m signed-data t.der > t.eml && verdict tampered fail "" t.eml
fi
openssl cms -encrypt -aes-256-cbc -binary -in ent -outform DER -out env.der "$P/bob.pem" 2> e.err &&
	wrap_p7m signed-data env.der > env.eml &&
	verdict envelope-as-signed permerror "not signed data" env.eml

# --- memory: 40 MB costs what 4 MB costs ------------------------------------
# peak NAME FILE: smrelayctl smime verify of FILE under python, its peak RSS
# in KiB on stdout (ru_maxrss of the child), the verdict in NAME.out.
peak() {
	python3 - "$CTL" "$W/smrelay.conf" "$2" "$1.out" "$1.err" <<'PYEOF'
import resource, subprocess, sys
ctl, conf, inp, out, err = sys.argv[1:6]
with open(inp, 'rb') as i, open(out, 'wb') as o, open(err, 'wb') as e:
    rc = subprocess.call([ctl, '-c', conf, 'smime', 'verify'], stdin=i, stdout=o, stderr=e)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
PYEOF
}
big_entity() {
	{ printf 'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n'
	  head -c "$1" /dev/urandom | base64 -w 76 | sed 's/$/\r/'; } > "$2"
}
big_entity 3000000 ent4
big_entity 30000000 ent40
ok=1
for s in 4 40; do
	openssl cms -sign -nodetach -binary -stream -in "ent$s" -outform DER -out "b$s.der" \
		-signer "$P/alice.pem" -inkey "$P/alice.key" 2> b.err &&
		wrap_p7m signed-data "b$s.der" > "b$s.eml" ||
		{ fail "big $s MB: openssl cms -sign" "$(lastline b.err)"; ok=0; }
	rm -f "b$s.der"
done
if [ $ok = 1 ]; then
	k4=$(peak big4 b4.eml) && k40=$(peak big40 b40.eml)
	rc=$?
	echo "# peak RSS of smime verify: $k4 KiB for 4 MB, $k40 KiB for 40 MB"
	if [ $rc -ne 0 ] || ! ar big40.out | grep -q 'smime=pass'; then
		fail "big 40 MB: smime=pass" "exit $rc $(ar big40.out) $(lastline big40.err)"
	elif ! tr -d '\r' < big40.out | sed '1,/^$/d' | cmp -s - "$(tr -d '\r' < ent40 | sed '1,/^$/d' > ent40.body; echo ent40.body)"; then
		fail "big 40 MB: entity given back byte for byte"
	elif [ $((k40 - k4)) -gt 8192 ]; then
		fail "big 40 MB: memory flat" "$k4 KiB for 4 MB, $k40 KiB for 40 MB"
	else
		pass "big 40 MB: smime=pass, entity equal, peak RSS +$((k40 - k4)) KiB over 4 MB"
	fi
fi

if [ $fails -gt 0 ]; then
	echo "t_opaque: $fails failed"
	exit 1
fi
echo "t_opaque: all passed"
exit 0
