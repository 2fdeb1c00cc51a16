#!/bin/sh
# tests/smime/t_memo.sh: what the verification memo (proto/cms_memo.c)
# remembers between messages in a long-running process, and when it
# forgets: tests/smime/memo_tool verifies signed messages through the
# daemon's path (smime_stream_verify, the certificate cache over a store that
# smrelayctl filled) and says whether the chain check came from the memo.
#   - the second message of a signer is a hit, with the same verdict
#   - a CRL that revokes the signer, imported by smrelayctl: the next
#     message says revoked (never a good verdict from the memo), and so
#     does the one after (failures are not remembered)
#   - any other store change (a certificate imported) forgets the verdicts
#   - soft mode without CRLs: "revocation unknown" is remembered as such
# Prints PASS/FAIL/SKIP per case; exits 1 when a case failed.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
CTL=${SMRELAYCTL:-$PWD/smrelayctl}
TOOL=${MEMO_TOOL:-$PWD/tests/smime/memo_tool}
W=$(mktemp -d "${TMPDIR:-/tmp}/smime-memo.XXXXXX") || exit 99
G=$W/gnupg
. "$srcdir/tests/smime/common.sh"

command -v openssl >/dev/null 2>&1 || { echo "SKIP: no openssl program"; exit 77; }
[ -x "$CTL" ] || { echo "FAIL: smrelayctl not built at $CTL"; exit 1; }
[ -x "$TOOL" ] || { echo "FAIL: memo_tool not built at $TOOL"; exit 1; }
make_pki
printf 'relay = 127.0.0.1:2525\ndata_dir = %s/data\nhostname = memo.example\n' \
	"$W" > smrelay.conf
ctl() { "$CTL" -c "$W/smrelay.conf" "$@"; }

# A key (the key file), the anchor, the intermediate as a certificate,
# both CRLs of pki.sh
# (the intermediate's revokes other certificates, not alice's).
{ ctl key import "$P/bob.p12" && ctl trust import "$P/trust.pem" && ctl cert import "$P/int.pem" &&
	ctl crl import "$P/int.crl" && ctl crl import "$P/root.crl"; } \
	> setup.out 2>&1 || { echo "FAIL: store setup ($(lastline setup.out))"; exit 1; }

# alice.eml: signed by alice with her chain; bob.eml: another signer
printf 'Content-Type: text/plain\r\n\r\nmemo test\r\n' > ent.txt
openssl cms -sign -in ent.txt -signer "$P/alice.pem" -inkey "$P/alice.key" \
	-certfile "$P/chain.pem" -from alice@example.com -to bob@partner.example \
	-subject memo > alice.eml 2> sign.err &&
	openssl cms -sign -in ent.txt -signer "$P/bob.pem" -inkey "$P/bob.key" \
	-certfile "$P/chain.pem" -from bob@partner.example -to alice@example.com \
	-subject memo > bob.eml 2>> sign.err ||
	{ echo "FAIL: openssl cms -sign ($(lastline sign.err))"; exit 1; }

# alice2.crl: the intermediate revokes alice now (a CRL issued after
# int.crl, so the store replaces it)
(cd "$P" && CADB=int.db openssl ca -config ca.cnf -cert int.pem -keyfile int.key \
	-revoke alice.pem -crl_reason keyCompromise && CADB=int.db openssl ca \
	-config ca.cnf -cert int.pem -keyfile int.key -gencrl -out alice2.crl) \
	> ca.out 2>&1 || { echo "FAIL: openssl ca ($(lastline ca.out))"; exit 1; }

# expect NAME PATTERN LINE FILE: line LINE of FILE matches PATTERN
expect() {
	_got=$(sed -n "$3p" "$4")
	case $_got in
	$2) pass "$1" ;;
	*) fail "$1" "line $3: $_got" ;;
	esac
}

# hard mode: every link decided by the stored CRLs
"$TOOL" "$W/data" hard > hard.out 2> hard.err <<EOF
verify alice.eml
verify bob.eml
sync
verify alice.eml
verify alice.eml
verify bob.eml
verify bob.eml
sync
verify alice.eml
run "$CTL" -c "$W/smrelay.conf" cert import "$P/bob-ec.pem" > /dev/null
sync
verify alice.eml
verify alice.eml
run "$CTL" -c "$W/smrelay.conf" crl import "$P/alice2.crl" > /dev/null
sync
verify alice.eml
verify alice.eml
verify bob.eml
EOF
[ -s hard.err ] && fail "memo_tool hard" "$(lastline hard.err)"
expect "first messages: chains checked, pass" 'smime=pass () chain=miss' 1 hard.out
expect "the harvests of the first passes changed the store: reloaded" \
	'reloaded' 3 hard.out
expect "after a reload the chain is checked again" 'smime=pass () chain=miss' 4 hard.out
expect "next message of the signer: chain from the memo, pass" \
	'smime=pass () chain=hit' 5 hard.out
expect "another signer: its own chain check" 'smime=pass () chain=miss' 6 hard.out
expect "another signer, again: from the memo" 'smime=pass () chain=hit' 7 hard.out
expect "store unchanged: nothing reloaded" 'unchanged' 8 hard.out
expect "store unchanged: still from the memo" 'smime=pass () chain=hit' 9 hard.out
expect "store change (certificate imported): reloaded" 'reloaded' 11 hard.out
expect "store change: the verdict is forgotten, checked again" \
	'smime=pass () chain=miss' 12 hard.out
expect "store change: remembered again" 'smime=pass () chain=hit' 13 hard.out
expect "CRL revoking the signer imported: reloaded" 'reloaded' 15 hard.out
expect "after the new CRL: revoked, not the remembered pass" \
	'smime=fail (certificate revoked) chain=miss' 16 hard.out
expect "revoked again: a failure is never remembered" \
	'smime=fail (certificate revoked) chain=miss' 17 hard.out
expect "the other signer, not revoked: pass" 'smime=pass () chain=*' 18 hard.out

# soft mode, no CRL in a fresh store: the pass says revocation is unknown,
# from the memo too
mkdir soft && printf 'relay = 127.0.0.1:2525\ndata_dir = %s/soft/data\nhostname = memo.example\n' \
	"$W" > soft.conf
{ "$CTL" -c soft.conf key import "$P/bob.p12" &&
	"$CTL" -c soft.conf trust import "$P/trust.pem" &&
	"$CTL" -c soft.conf cert import "$P/int.pem"; } > soft-setup.out 2>&1 ||
	fail "soft store setup" "$(lastline soft-setup.out)"
"$TOOL" "$W/soft/data" soft > soft.out 2> soft.err <<EOF
verify alice.eml
sync
verify alice.eml
verify alice.eml
EOF
[ -s soft.err ] && fail "memo_tool soft" "$(lastline soft.err)"
expect "soft, no CRL: pass, chain checked" 'smime=pass () chain=miss' 3 soft.out
expect "soft, no CRL: from the memo" 'smime=pass () chain=hit' 4 soft.out
# the Authentication-Results comment is checked through smrelayctl: the
# same engine, one message per process
"$CTL" -c soft.conf smime verify < alice.eml > soft-ar.eml 2> soft-ar.err
case $(head -n 1 soft-ar.eml | tr -d '\r') in
*"smime=pass (revocation unknown"*) pass "soft, no CRL: the verdict says revocation unknown" ;;
*) fail "soft, no CRL: the verdict says revocation unknown" "$(head -n 1 soft-ar.eml)" ;;
esac

if [ $fails -gt 0 ]; then
	echo "t_memo: $fails failed"
	exit 1
fi
echo "t_memo: all passed"
exit 0
