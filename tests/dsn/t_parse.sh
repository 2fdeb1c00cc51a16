#!/bin/sh
# tests/dsn/t_parse.sh: DSNs built by dsn_tool (proto/dsn.c) read back with
# python3's email package (policy.default), as a mail client or an MTA's
# bounce parser reads them: multipart/report with report-type
# delivery-status, the per-message and per-recipient fields of the
# message/delivery-status part, the returned message or header section,
# no parser defects.  Prints PASS/FAIL per case; exits 1 if any failed.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
TOOL=${DSN_TOOL:-$PWD/tests/dsn/dsn_tool}
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
[ -x "$TOOL" ] || { echo "FAIL: dsn_tool not built at $TOOL"; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/dsn-parse.XXXXXX") || exit 99
trap 'rm -rf "$W"' EXIT
FAILS=0

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; FAILS=$((FAILS + 1)); }

# The checker: check.py DSN-FILE KEY=VALUE...; prints nothing when every
# expectation holds, else one line per broken one.
cat > "$W/check.py" <<'EOF'
import sys, email, email.policy, email.utils

raw = open(sys.argv[1], 'rb').read()
exp = dict(a.split('=', 1) for a in sys.argv[2:])
for k, v in list(exp.items()):
    if v.startswith('@'):           # the value is in a file
        exp[k] = open(v[1:], encoding='utf-8').read().rstrip('\n')
bad = []

def want(cond, what):
    if not cond:
        bad.append(what)

def walk_defects(m, where):
    for part in m.walk():
        if part.defects:
            bad.append('%s: defects %r' % (where, part.defects))

want(b'\n' not in raw.replace(b'\r\n', b''), 'bare LF')
msg = email.message_from_bytes(raw, policy=email.policy.default)
walk_defects(msg, 'message')
want(msg.get_content_type() == 'multipart/report',
     'content type %s' % msg.get_content_type())
want(msg.get_param('report-type') == 'delivery-status',
     'report-type %r' % msg.get_param('report-type'))
want(str(msg['Auto-Submitted']) == 'auto-replied', 'Auto-Submitted')
want(msg['From'].addresses[0].addr_spec.startswith('MAILER-DAEMON@'),
     'From %s' % msg['From'])
want(msg['To'].addresses[0].addr_spec == exp.get('to', 'alice@example.org'),
     'To %s' % msg['To'])
want(email.utils.parsedate_to_datetime(str(msg['Date'])) is not None, 'Date')
want(str(msg['Subject']) == exp['subject'], 'Subject %s' % msg['Subject'])
parts = msg.get_payload()
nparts = int(exp.get('parts', '3'))
want(len(parts) == nparts, '%d parts' % len(parts))
if len(parts) >= 2:
    want(parts[0].get_content_type() == 'text/plain', 'part 1 type')
    human = parts[0].get_content()
    for r in exp.get('rcpts', '').split(','):
        if r:
            want('<%s>' % r in human, 'text part lacks %s' % r)
    ds = parts[1]
    want(ds.get_content_type() == 'message/delivery-status', 'part 2 type')
    blocks = ds.get_payload()
    want(isinstance(blocks, list), 'delivery-status not parsed as fields')
    per_msg, per_rcpt = blocks[0], blocks[1:]
    want(str(per_msg['Reporting-MTA']) == 'dns; gw.example',
         'Reporting-MTA %s' % per_msg['Reporting-MTA'])
    want(email.utils.parsedate_to_datetime(str(per_msg['Arrival-Date']))
         is not None, 'Arrival-Date')
    if 'envid' in exp:
        want(str(per_msg['Original-Envelope-Id']) == exp['envid'],
             'Original-Envelope-Id %s' % per_msg['Original-Envelope-Id'])
    else:
        want(per_msg['Original-Envelope-Id'] is None, 'unasked ENVID')
    if 'from_mta' in exp:
        want(str(per_msg['Received-From-MTA']) == 'dns; ' + exp['from_mta'],
             'Received-From-MTA %s' % per_msg['Received-From-MTA'])
    rcpts = [r for r in exp.get('rcpts', '').split(',') if r]
    want(len(per_rcpt) == len(rcpts), '%d recipient blocks' % len(per_rcpt))
    actions = exp.get('actions', '').split(',')
    statuses = exp.get('statuses', '').split(',')
    for i, b in enumerate(per_rcpt[:len(rcpts)]):
        want(str(b['Final-Recipient']) == 'rfc822; ' + rcpts[i],
             'Final-Recipient %s' % b['Final-Recipient'])
        want(str(b['Action']) == actions[i], 'Action %s' % b['Action'])
        want(str(b['Status']) == statuses[i], 'Status %s' % b['Status'])
        if actions[i] == 'delayed':
            want(email.utils.parsedate_to_datetime(
                str(b['Will-Retry-Until'])) is not None, 'Will-Retry-Until')
    if 'orcpt' in exp:
        want(str(per_rcpt[0]['Original-Recipient']) == exp['orcpt'],
             'Original-Recipient %s' % per_rcpt[0]['Original-Recipient'])
    if 'diag' in exp:
        d = str(per_rcpt[0]['Diagnostic-Code'])
        want(d == 'smtp; ' + exp['diag'], 'Diagnostic-Code %r' % d)
    if 'remote' in exp:
        want(str(per_rcpt[0]['Remote-MTA']) == 'dns; ' + exp['remote'],
             'Remote-MTA %s' % per_rcpt[0]['Remote-MTA'])
if nparts == 3 and len(parts) == 3:
    o = parts[2]
    if exp.get('ret') == 'full':
        want(o.get_content_type() == 'message/rfc822', 'part 3 type')
        inner = o.get_payload()[0]
        want(str(inner['Subject']) == exp['orig_subject'],
             'returned Subject %s' % inner['Subject'])
        if 'inner_type' in exp:
            want(inner.get_content_type() == exp['inner_type'],
                 'returned type %s' % inner.get_content_type())
            want(inner.get_boundary() != msg.get_boundary(),
                 'inner and outer boundary alike')
        else:
            body = inner.get_payload(decode=True).decode('utf-8')
            want(exp['orig_body'] in body, 'returned body %r' % body)
    else:
        want(o.get_content_type() == 'text/rfc822-headers', 'part 3 type')
        hdrs = o.get_payload(decode=True).decode('ascii')
        want('Subject: ' + exp['orig_subject'] in hdrs, 'returned header')
        want(exp['orig_body'] not in hdrs, 'body returned with RET=HDRS')
for b in bad:
    print(b)
EOF

printf 'From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: quarterly report\r\nMessage-ID: <q1@example.org>\r\n\r\nHello Bob,\r\nthe figures.\r\n' > "$W/orig.eml"
printf 'From: alice@example.org\nSubject: bare LF\n\nline one\nline two\n' > "$W/lf.eml"
printf 'From: alice@example.org\r\nSubject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\303\274\303\237e aus M\303\274nchen\r\n' > "$W/8bit.eml"

# case NAME 'CHECK-ARGS' TOOL-ARGS...: build, then parse and check.
case_() {
	_n=$1 _c=$2
	shift 2
	if ! "$TOOL" "$@" > "$W/$_n.dsn" 2> "$W/$_n.err"; then
		fail "$_n" "dsn_tool: $(head -1 "$W/$_n.err")"
		return
	fi
	eval "set -- $_c"
	python3 "$W/check.py" "$W/$_n.dsn" "$@" > "$W/$_n.out" 2>&1
	if [ $? -ne 0 ] || [ -s "$W/$_n.out" ]; then
		fail "$_n" "$(head -3 "$W/$_n.out" | tr '\n' ';')"
	else
		pass "$_n"
	fi
}

UNDEL='subject="Undelivered Mail Returned to Sender"'
case_ fail_two_hdrs "$UNDEL rcpts=bob@example.net,carol@example.net \
	actions=failed,failed statuses=5.1.1,4.4.7 orcpt=rfc822\\;Bob+Filter@example.net \
	diag='550 5.1.1 no such user' remote=mx.example.net from_mta=client.example \
	orig_subject='quarterly report' orig_body='the figures'" \
	-m client.example \
	-r 'bob@example.net|rfc822;Bob+2BFilter@example.net|failed|5.1.1|mx.example.net|550 5.1.1 no such user' \
	-r 'carol@example.net||failed|4.4.7|mx.example.net|451 4.4.1 timed out' \
	"$W/orig.eml"

case_ fail_full_envid "$UNDEL rcpts=bob@example.net actions=failed \
	statuses=5.1.1 envid=QQ+314159 ret=full orig_subject='quarterly report' \
	orig_body='the figures'" \
	-f -e 'QQ+2B314159' \
	-r 'bob@example.net||failed|5.1.1|mx.example.net|550 5.1.1 no such user' \
	"$W/orig.eml"

case_ delay "subject='Delayed Mail (still being retried)' rcpts=bob@example.net \
	actions=delayed statuses=4.4.1 orig_subject='quarterly report' \
	orig_body='the figures'" \
	-r 'bob@example.net||delayed|4.4.1|mx.example.net|421 4.4.1 try later' \
	"$W/orig.eml"

LONG='550-5.1.1 The email account that you tried to reach does not exist. Please try\n550-5.1.1 double-checking the recipient'"'"'s address for typos or unnecessary spaces. See\n550 5.1.1 https://support.example.com/mail/answer/6596/a-very-long-path-without-spaces x12si - gsmtp'
printf '%s\n' "$LONG" | sed 's/\\n/ /g' > "$W/long.txt"
case_ barelf_longdiag "$UNDEL rcpts=bob@example.net actions=failed \
	statuses=5.1.1 ret=full orig_subject='bare LF' orig_body='line two' \
	diag=@$W/long.txt" \
	-f -r "bob@example.net||failed|5.1.1|mx.example.net|$LONG" "$W/lf.eml"

case_ 8bit_full "$UNDEL rcpts=bob@example.net actions=failed statuses=5.6.0 \
	ret=full orig_subject=8bit orig_body='aus M$(printf '\303\274')nchen'" \
	-f -r 'bob@example.net||failed|5.6.0|||' "$W/8bit.eml"
if grep -q '^8bit=1' "$W/8bit_full.err"; then pass 8bit_flag
else fail 8bit_flag "dsn_is_8bit did not say 8bit"; fi

case_ success_noorig "subject='Successful Mail Delivery Report' parts=2 \
	rcpts=dave@example.com,erin@example.com actions=delivered,relayed \
	statuses=2.0.0,2.0.0" \
	-r 'dave@example.com||delivered|2.0.0|mx.example.com|250 2.0.0 OK' \
	-r 'erin@example.com||relayed|2.0.0|old.example.com|'

# An original that is itself a DSN of ours keeps its MIME structure.
"$TOOL" -f -r 'bob@example.net||failed|5.1.1|||' "$W/orig.eml" \
	> "$W/inner.eml" 2>/dev/null
case_ dsn_of_dsn "$UNDEL rcpts=bob@example.net actions=failed \
	statuses=5.1.1 ret=full inner_type=multipart/report \
	orig_subject='Undelivered Mail Returned to Sender'" \
	-f -r 'bob@example.net||failed|5.1.1|||' "$W/inner.eml"

if "$TOOL" -s '' -r 'bob@example.net||failed|5.1.1|||' "$W/orig.eml" \
	> "$W/null.dsn" 2> "$W/null.err"; then
	fail null_sender "a DSN to the null sender was built"
elif grep -q 'null sender' "$W/null.err"; then pass null_sender
else fail null_sender "$(head -1 "$W/null.err")"; fi

[ "$FAILS" -eq 0 ] || exit 1
exit 0
