#!/bin/sh
# tests/smime/t_kind.sh: cms_structure_nid(), the check that a message
# claiming S/MIME really is signed or enveloped data before a sign or
# encrypt rule leaves it alone, reads the CMS once in bounded memory and
# decides as a whole-object d2i does.  Objects from openssl cms (detached
# and opaque signed-data, DER and -stream BER, EnvelopedData CBC and
# streamed, AuthEnvelopedData GCM; 270 KB of content, so the content is
# passed over, not kept) give their type with every size of subtree kept
# whole (16 bytes, the default 64 KiB, everything); hostile ones are
# malformed every way: an envelope whose recipientInfos is not a SET (the
# OID alone says enveloped), truncated, a content length that lies, 40
# nested OCTET STRINGs, a bare enveloped-data OID, trailing bytes (d2i
# ignores them; so do we).
# Prints PASS/FAIL/SKIP per case; exits 1 when a case failed.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
TOOL=${SMIME_TOOL:-$PWD/tests/smime/smime_tool}
W=$(mktemp -d "${TMPDIR:-/tmp}/smime-kind.XXXXXX") || exit 99
G=$W/gnupg
. "$srcdir/tests/smime/common.sh"

command -v openssl >/dev/null 2>&1 || { echo "SKIP: no openssl program"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
[ -x "$TOOL" ] || { echo "FAIL: smime_tool not built at $TOOL"; exit 1; }
make_pki

head -c 200000 /dev/urandom | base64 > big
printf 'Content-Type: text/plain\r\n\r\n' | cat - big > ent
S="-signer $P/alice.pem -inkey $P/alice.key"
# shellcheck disable=SC2086
openssl cms -sign -in ent $S -outform DER -out det.der 2>>o.err &&
	openssl cms -sign -nodetach -binary -in ent $S -outform DER -out opq.der 2>>o.err &&
	openssl cms -sign -nodetach -binary -stream -in ent $S -outform DER -out opqs.der 2>>o.err &&
	openssl cms -encrypt -aes-256-cbc -binary -in ent -outform DER -out env.der "$P/bob.pem" 2>>o.err &&
	openssl cms -encrypt -aes-256-cbc -binary -stream -in ent -outform DER -out envs.der "$P/bob.pem" 2>>o.err &&
	openssl cms -encrypt -aes-256-gcm -binary -in ent -outform DER -out gcm.der "$P/bob.pem" 2>>o.err ||
	{ echo "FAIL: openssl cms ($(lastline o.err))"; exit 1; }

# kind NAME FILE WANT: every keep size says WANT (a type, or "malformed").
kind() {
	for k in 16 65536 1000000000; do
		r=$("$TOOL" kind --keep "$k" < "$2" | cut -d: -f1)
		[ "$r" = "$3" ] || { fail "$1" "keep $k: $r, want $3"; return 1; }
	done
	pass "$1: $3"
}
kind detached det.der pkcs7-signedData
kind opaque-der opq.der pkcs7-signedData
kind opaque-stream opqs.der pkcs7-signedData
kind enveloped-cbc env.der pkcs7-envelopedData
kind enveloped-stream envs.der pkcs7-envelopedData
kind authenveloped-gcm gcm.der id-smime-ct-authEnvelopedData

# mutate IN OUT MODE: a hostile variant of IN (DER, definite lengths).
mutate() {
	PYTHONPATH="$SMIME_PY" python3 - "$@" <<'PYEOF'
import sys
src, dst, mode = sys.argv[1:4]
data = open(src, 'rb').read()
from der import parse, ln, enc
ci, _ = parse(data, 0)
env = ci[1][1][1][0]                    # EnvelopedData
eci = env[1][2]                         # EncryptedContentInfo
out = None
if mode == 'not-a-set':
    env[1][1] = [0x02, b'\x01']         # recipientInfos: an INTEGER
elif mode == 'truncated':
    out = enc(ci)[:len(data) // 2]
elif mode == 'lying-length':
    # the encrypted content claims 1 MB more than there is
    tag, body = eci[1][2]
    e = enc(ci)
    old = bytes([tag]) + ln(len(body))
    new = bytes([tag]) + ln(len(body) + (1 << 20))
    i = e.index(old + body[:16])
    out = e[:i] + new + e[i + len(old):]
elif mode == 'deep':
    tag, body = eci[1][2]
    new = [0x04, body]
    for _ in range(40):
        new = [0x24, [new]]
    eci[1][2] = [0xa0, [new]]
elif mode == 'bare-oid':
    out = bytes.fromhex('3080060b2a864886f70d0109100117a080') + b'\x30\x80' + b'junk' * 1000
elif mode == 'trailing':
    out = data + b'\x00garbage'
open(dst, 'wb').write(out if out is not None else enc(ci))
PYEOF
}
for m in not-a-set truncated lying-length deep bare-oid trailing; do
	mutate env.der "m-$m.der" "$m" 2> "m-$m.err" ||
		{ fail "mutate $m" "$(lastline "m-$m.err")"; continue; }
done
kind envelope-not-a-set m-not-a-set.der malformed
kind truncated m-truncated.der malformed
kind lying-length m-lying-length.der malformed
kind too-deep m-deep.der malformed
kind bare-oid m-bare-oid.der malformed
kind trailing-bytes m-trailing.der pkcs7-envelopedData

[ "$fails" -eq 0 ] || exit 1
exit 0
