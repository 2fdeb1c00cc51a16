#!/bin/bash
# t_queue.sh: the durable spool and the queue runner end to end, against
# real peers (Postfix's smtp-source, swaks, `smrelayctl sink`, nexthop.py and
# flaky_hop.py as next hops), checked at the next hop by Message-ID:
#   down_100        next hop down: 100 messages queued, then delivered
#                   exactly once after it comes up and `queue flush`
#   every_other_451 a hop that 451s every other transaction (RCPT, DATA)
#   drop_after_dot  a hop that hangs up after the final dot, before replying
#   rcpt_550        550 for one recipient: mirrored in-line; on a queued
#                   retry, the other is delivered and a DSN bounces it
#   expiry          queue_lifetime: a failure DSN for the sender, none for <>
#   delay_warning   delay_warning_time: one delayed DSN, none for NOTIFY=NEVER
#   dsn_return_size RET=FULL: the body back up to 50,000 bytes, else headers
#   full_disk       452 4.3.1 on a full tmpfs data_dir, nothing lost
#   cli             queue hold/release/remove/show/flush, bad ids, --json
#   ctl_after_idle  a flush after a few idle seconds is still noticed
#   restart         kill -9, a stray body: start-up cleans and delivers
. "$(dirname "$0")/lib_queue.sh"
need_bins

Q_MOUNTS=()
q_cleanup() {
	local rc=$? m
	for m in "${Q_MOUNTS[@]+"${Q_MOUNTS[@]}"}"; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	(exit $rc)
	it_cleanup
}
trap q_cleanup EXIT

# ---------------------------------------------------------------- 1

t_down_100() {
	local out
	have smtp-source || { skip "smtp-source not installed"; return 0; }
	relay_with_hop_down || return 1
	timeout 120 smtp-source -s 5 -m 100 -l 1024 -f sender@example.com \
		-t rcpt@example.net "127.0.0.1:$PORT" >"$CASE_DIR/smtp-source.log" 2>&1 ||
		{ fail_because "smtp-source failed: $(tail -n 2 "$CASE_DIR/smtp-source.log")"; return 1; }
	# every message got its 250 only once it was durable: all 100 are there
	queue_len_is 100 || { fail_because "queue list shows $(queue_len) message(s), expected 100"; return 1; }
	[ "$(grep -c 'copy queued id=' "$CASE_DIR/smrelayd.log")" = 100 ] ||
		{ fail_because "the log shows $(grep -c 'copy queued id=' "$CASE_DIR/smrelayd.log") queued copies, expected 100"; return 1; }
	spool_msgids | sort >"$CASE_DIR/expected.ids"
	[ "$(sort -u "$CASE_DIR/expected.ids" | wc -l)" = 100 ] ||
		{ fail_because "the spool holds $(sort -u "$CASE_DIR/expected.ids" | wc -l) distinct Message-IDs, expected 100"; return 1; }
	hop_up_sink || return 1
	out=$(qctl queue flush 2>&1) || { fail_because "queue flush: $out"; return 1; }
	echo "# queue flush: $out"
	wait_delivered 100 60 || return 1
	wait_queue_empty 20 || return 1
	assert_exactly_once "$CASE_DIR/expected.ids" || return 1
	[ -z "$(find "$CASE_DIR/data/spool/msg" -type f)" ] ||
		{ fail_because "bodies left in spool/msg: $(ls "$CASE_DIR/data/spool/msg" | head -n 3)"; return 1; }
	stop_smrelayd || return 1
	assert_sink_count 100
}

# ---------------------------------------------------------------- 2

t_every_other_451() {
	local i n=12 queued=0
	NH_PORT=$(free_port)
	hop_up_flaky --fail-every 2 --fail-where alternate && start_relay || return 1
	: >"$CASE_DIR/expected.ids"
	for i in $(seq 1 $n); do
		send_id "<q2.$i@queue.test>" --to "r$i@example.net" || return 1
		grep -q -E '^ *<[-~] *250 ' "$SWAKS_LOG" || { fail_because "message $i: no 250"; return 1; }
		grep -q -E '^ *<[-~] *250 .*queued as [0-9a-f]{16}' "$SWAKS_LOG" && queued=$((queued + 1))
		echo "<q2.$i@queue.test>" >>"$CASE_DIR/expected.ids"
	done
	echo "# $queued of $n queued in-line ($(grep -c -- '-> 451' "$NH_EVENTS") 451 at RCPT, $(grep -c 'DATA.*-> 451' "$NH_EVENTS") at DATA)"
	[ "$queued" -gt 0 ] || { fail_because "nothing was queued: the hop never failed?"; return 1; }
	grep -q 'RCPT.*-> 451' "$NH_EVENTS" && grep -q 'DATA.*-> 451' "$NH_EVENTS" ||
		{ fail_because "the hop did not fail both at RCPT and at DATA"; return 1; }
	wait_queue_empty 45 flush || return 1
	echo "# $(grep -c '^MAIL' "$NH_EVENTS") transactions at the hop for $n messages"
	assert_exactly_once "$CASE_DIR/expected.ids"
}

# ---------------------------------------------------------------- 3

# One message through a hop that hangs up after the final dot of the first
# transaction; $1 = store: it stored that copy first.
_drop_once() {
	local id=$1 store=$2 c
	hop_up_flaky --drop-after-dot 1 ${store:+--store-dropped} || return 1
	send_id_queued "$id" --to alice@example.net || return 1
	grep -q '^DROP' "$NH_EVENTS" || { fail_because "the hop never dropped a connection"; return 1; }
	echo "# $id: client got: $(grep -E '^ *<[-~] *250 .*queued as' "$SWAKS_LOG" | tail -n 1 | sed 's/^ *//')"
	echo "# hop: $(grep '^DROP' "$NH_EVENTS")"
	qctl queue flush "$QUEUE_ID" >/dev/null || { fail_because "queue flush $QUEUE_ID failed"; return 1; }
	wait_queue_empty 20 flush || return 1
	c=$(count_msgid "$id")
	if [ -n "$store" ]; then
		case $c in
		1) echo "# observed: the hop stored the dropped copy; delivered once in all (no duplicate)" ;;
		2) echo "# observed: the hop stored the dropped copy; the retry delivered a second one (DUPLICATE, acceptable: the reply was lost)" ;;
		*) fail_because "$id: $c copies at the hop (it stored the first): expected 1 or 2"; return 1 ;;
		esac
	else
		[ "$c" = 1 ] || { fail_because "$id: $c copies at the hop, expected exactly 1 (the dropped one was not stored)"; return 1; }
		echo "# observed: the hop did not store the dropped copy; delivered exactly once on the retry"
	fi
	hop_down
}

t_drop_after_dot() {
	NH_PORT=$(free_port)
	start_relay || return 1
	_drop_once "<q3.nostore@queue.test>" "" || return 1
	_drop_once "<q3.stored@queue.test>" store || return 1
	if log_has 'may deliver it twice'; then
		echo "# daemon log: $(grep -m1 'may deliver it twice' "$CASE_DIR/smrelayd.log" | sed 's/^.*queue id/queue id/')"
	fi
	return 0
}

# ---------------------------------------------------------------- 4

t_rcpt_550() {
	local bob='bob@=550 5.1.1 <bob@example.net>: Recipient address rejected' f
	NH_PORT=$(free_port)
	hop_up_nexthop --rcpt-reply "$bob" && start_relay || return 1
	# in-line: bob's 550 mirrored at RCPT, alice gets it
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:"RCPT TO:<bob@example.net>" expect:550:'5\.1\.1' \
		line:DATA expect:354 send:"Message-Id: <q4.inline@queue.test>\r\nSubject: q4\r\n\r\nbody\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net || return 1
	assert_eq 1 "$(count_msgid '<q4.inline@queue.test>')" "copies of q4.inline" || return 1
	queue_is_empty || { fail_because "something was queued in-line: $(qctl queue list)"; return 1; }
	# post-acceptance: queued for both while the hop is down ...
	hop_down || return 1
	send_id_queued "<q4.queued@queue.test>" --from sender@example.com \
		--to alice@example.net,bob@example.net || return 1
	qctl queue show "$QUEUE_ID" >"$CASE_DIR/show.txt" 2>&1
	grep -q '^recipient: <bob@example.net> pending' "$CASE_DIR/show.txt" ||
		{ fail_because "queue show: bob not pending: $(tr '\n' '|' <"$CASE_DIR/show.txt")"; return 1; }
	# ... then a hop that refuses bob
	hop_up_nexthop --rcpt-reply "$bob" || return 1
	qctl queue flush "$QUEUE_ID" >/dev/null || { fail_because "queue flush failed"; return 1; }
	wait_for 20 _dsn_count_ge 1 || { fail_because "no DSN at the next hop after 20 s ($(sink_count) messages there; queue: $(qctl queue list | cut -f1,8,9))"; return 1; }
	wait_queue_empty 20 flush || return 1
	assert_eq 2 "$(sink_count)" "messages at the hop after the retry (alice's copy of q4.inline, the DSN)" 2>/dev/null
	[ "$(count_msgid '<q4.queued@queue.test>')" = 1 ] ||
		{ fail_because "q4.queued delivered $(count_msgid '<q4.queued@queue.test>') time(s), expected 1 (to alice)"; return 1; }
	for f in $(sink_files); do
		[ "$(msgids "$f")" = '<q4.queued@queue.test>' ] || continue
		assert_file_matches "$f" '^Delivered-To: alice@example.net' "retry for alice" &&
			assert_file_lacks "$f" '^Delivered-To: bob@example.net' "retry for alice" || return 1
	done
	assert_eq 1 "$(dsn_count)" "DSNs at the hop" || return 1
	f=$(dsn_files)
	check_dsn "$f" --sender sender@example.com --final bob@example.net \
		--action failed --status-re '^5\.[0-9]+\.[0-9]+$' --orig-msgid '<q4.queued@queue.test>' || return 1
	assert_file_matches "$f" '^X-Mail-Args: <>' "DSN envelope (MAIL FROM:<>)"
}

# ---------------------------------------------------------------- 5

# The next hop is down while both are queued; once queue_lifetime has
# passed it comes back, refusing them with 451, and a message relayed in-line
# makes the backlog due (flushes too): both expire; only the one with a
# sender gets a DSN.
t_expiry() {
	local f id1 id2 id3 t0
	relay_with_hop_down queue_lifetime=5s || return 1
	t0=$(date +%s)
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com> RET=HDRS ENVID=q5-envid.42" expect:250 \
		line:"RCPT TO:<alice@late.example>" expect:250 \
		line:DATA expect:354 send:"Message-Id: <q5.expire@queue.test>\r\nSubject: q5\r\n\r\nbody\r\n.\r\n" expect:'250:queued as' \
		line:"MAIL FROM:<>" expect:250 \
		line:"RCPT TO:<null@late.example>" expect:250 \
		line:DATA expect:354 send:"Message-Id: <q5.null@queue.test>\r\nSubject: q5 bounce\r\n\r\nbody\r\n.\r\n" expect:'250:queued as' \
		line:QUIT expect:221 || return 1
	queue_len_is 2 || { fail_because "expected 2 queued, have: $(qctl queue list)"; return 1; }
	id1=$(qctl queue list | awk -F '\t' '$7 == "<sender@example.com>" { print $1 }')
	id2=$(qctl queue list | awk -F '\t' '$7 == "<>" { print $1 }')
	[ -n "$id1" ] && [ -n "$id2" ] || { fail_because "queue list: $(qctl queue list)"; return 1; }
	hop_up_nexthop --rcpt-reply '@late.example=451 4.3.0 try again later' || return 1
	wait_for 10 _seconds_since_ge "$t0" 6
	send_id "<q5.inline@queue.test>" --to ok@example.net || return 1
	# relayed in-line: its 250 names a queue ID the spool does not have
	id3=$(grep -o -E 'queued as [0-9a-f]{16}' "$SWAKS_LOG" | tail -n 1 | cut -c11-)
	[ -n "$id3" ] || { fail_because "no queue ID in the in-line 250"; return 1; }
	qctl queue show "$id3" >/dev/null 2>&1 &&
		{ fail_because "the in-line message was queued, not relayed"; return 1; }
	qctl queue flush >/dev/null
	wait_for 20 _dsn_count_ge 1 || { fail_because "no DSN within 20 s (queue: $(qctl queue list | cut -f1,4,7,8,9 | tr '\n' '|'))"; return 1; }
	wait_queue_empty 20 flush || return 1
	log_has "queue id=$id1 expired" || { fail_because "no 'expired' log line for $id1"; return 1; }
	log_has "queue id=$id2 expired" || { fail_because "no 'expired' log line for the null-sender message $id2"; return 1; }
	if log_has "queue id=$id2: .*DSN"; then
		fail_because "a DSN for the null-sender message: $(grep "queue id=$id2: .*DSN" "$CASE_DIR/smrelayd.log" | head -n 1)"
		return 1
	fi
	assert_eq 1 "$(dsn_count)" "DSNs at the hop (one for sender@, none for <>)" || return 1
	assert_eq 2 "$(sink_count)" "messages at the hop (the in-line one, the DSN)" || return 1
	f=$(dsn_files)
	check_dsn "$f" --sender sender@example.com --final alice@late.example --action failed \
		--status-re '^(5\.[0-9]+\.[0-9]+|4\.4\.7)$' --envid q5-envid.42 \
		--orig-msgid '<q5.expire@queue.test>' || return 1
	grep -q -i 'q5.null' "$f" && { fail_because "the DSN mentions the null-sender message"; return 1; }
	echo "# diagnostic: $(grep -i -m1 '^Diagnostic-Code' "$f" | tr -d '\r')"
	return 0
}
_seconds_since_ge() { [ $(($(date +%s) - $1)) -ge "$2" ]; }

# RET=FULL returns the whole message up to 50,000 bytes (Postfix's
# bounce_size_limit); a 3 MB one comes back as its header section, so a
# DSN costs bounded memory whatever the original's size.
t_dsn_return_size() {
	local f small="" big=""
	relay_with_hop_down || return 1
	{ printf 'Message-Id: <q9.big@queue.test>\r\nSubject: q9 big\r\n\r\n'
	  head -c 2300000 /dev/urandom | base64 -w 76 | sed 's/$/\r/'
	  printf 'END-OF-BIG\r\n.\r\n'; } >"$CASE_DIR/big.wire"
	chat --timeout 60 expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com> RET=FULL" expect:250 \
		line:"RCPT TO:<bob@example.net>" expect:250 \
		line:DATA expect:354 send:"Message-Id: <q9.small@queue.test>\r\nSubject: q9 small\r\n\r\nSMALL-BODY-LINE\r\n.\r\n" expect:'250:queued as' \
		line:"MAIL FROM:<sender@example.com> RET=FULL" expect:250 \
		line:"RCPT TO:<bob@example.net>" expect:250 \
		line:DATA expect:354 sendfile:"$CASE_DIR/big.wire" expect:'250:queued as' \
		line:QUIT expect:221 || return 1
	# `queue show` prints the whole 3 MB body (read in pieces)
	for f in $(qctl queue list | cut -f1); do
		qctl queue show "$f" >"$CASE_DIR/show-$f.txt" 2>&1
		grep -q 'q9.big' "$CASE_DIR/show-$f.txt" && big=$CASE_DIR/show-$f.txt
	done
	[ -n "$big" ] || { fail_because "queue show: no q9.big in the spool"; return 1; }
	assert_file_matches "$big" '^END-OF-BIG' "queue show of the big message" || return 1
	big=""
	hop_up_nexthop --rcpt-reply 'bob@=550 5.1.1 <bob@example.net>: Recipient address rejected' || return 1
	qctl queue flush >/dev/null
	wait_for 20 _dsn_count_ge 2 || { fail_because "$(dsn_count) DSN(s) within 20 s, want 2 (queue: $(qctl queue list | cut -f1,4,7,8,9 | tr '\n' '|'))"; return 1; }
	for f in $(dsn_files); do
		grep -q 'q9.small' "$f" && small=$f
		grep -q 'q9.big' "$f" && big=$f
	done
	[ -n "$small" ] && [ -n "$big" ] || { fail_because "no DSN for each of q9.small and q9.big"; return 1; }
	check_dsn "$small" --sender sender@example.com --final bob@example.net \
		--orig-msgid '<q9.small@queue.test>' &&
		check_dsn "$big" --sender sender@example.com --final bob@example.net \
			--orig-msgid '<q9.big@queue.test>' || return 1
	assert_file_matches "$small" '^Content-Type: message/rfc822' "small DSN's third part" &&
		assert_file_matches "$small" 'SMALL-BODY-LINE' "small DSN returns the body" &&
		assert_file_matches "$big" '^Content-Type: text/rfc822-headers' "big DSN's third part" &&
		assert_file_lacks "$big" 'END-OF-BIG' "big DSN" || return 1
	[ "$(stat -c %s "$big")" -lt 60000 ] ||
		fail_because "the DSN of the 3 MB message is $(stat -c %s "$big") bytes"
}

# delay_warning_time: one "delayed" DSN per message, not repeated on later
# attempts, none for a recipient with NOTIFY=NEVER; the messages stay queued.
t_delay_warning() {
	local f
	relay_with_hop_down delay_warning_time=2s || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<slow@late.example>" expect:250 \
		line:DATA expect:354 send:"Message-Id: <q5.delay@queue.test>\r\nSubject: q5d\r\n\r\nbody\r\n.\r\n" expect:'250:queued as' \
		line:"MAIL FROM:<other@example.com>" expect:250 \
		line:"RCPT TO:<quiet@late.example> NOTIFY=NEVER" expect:250 \
		line:DATA expect:354 send:"Message-Id: <q5.never@queue.test>\r\nSubject: q5n\r\n\r\nbody\r\n.\r\n" expect:'250:queued as' \
		line:QUIT expect:221 || return 1
	hop_up_nexthop --rcpt-reply '@late.example=451 4.3.0 try again later' || return 1
	sleep 2.5       # past delay_warning_time
	qctl queue flush >/dev/null
	wait_for 20 _dsn_count_ge 1 || { fail_because "no delay DSN within 20 s (queue: $(qctl queue list | cut -f1,4,7,8,9 | tr '\n' '|'))"; return 1; }
	# more attempts: no second warning
	qctl queue flush >/dev/null; sleep 1.5; qctl queue flush >/dev/null; sleep 1.5
	assert_eq 1 "$(dsn_count)" "delay DSNs at the hop (one for sender@, none for NOTIFY=NEVER)" || return 1
	f=$(dsn_files)
	check_dsn "$f" --sender sender@example.com --final slow@late.example --action delayed \
		--status-re '^4\.[0-9]+\.[0-9]+$' --orig-msgid '<q5.delay@queue.test>' || return 1
	grep -q -i '^Will-Retry-Until:' "$f" || { fail_because "the delay DSN has no Will-Retry-Until"; return 1; }
	queue_len_is 2 || { fail_because "both messages should still be queued: $(qctl queue list)"; return 1; }
}

# ---------------------------------------------------------------- 6

_t_full_disk() {
	local mnt=$CASE_DIR/data i
	mkdir -p "$mnt"
	if ! mount -t tmpfs -o size=2m tmpfs "$mnt" 2>"$CASE_DIR/mount.log"; then
		skip "cannot mount a tmpfs (not root or no CAP_SYS_ADMIN): $(head -n 1 "$CASE_DIR/mount.log")"
		return 0
	fi
	Q_MOUNTS+=("$mnt")
	relay_with_hop_down || return 1
	send_id_queued "<q6.before@queue.test>" --to alice@example.net || return 1
	echo "<q6.before@queue.test>" >"$CASE_DIR/expected.ids"
	# fill it up
	dd if=/dev/zero of="$mnt/filler" bs=64k count=64 >/dev/null 2>&1
	echo "# data_dir: $(df -k "$mnt" | awk 'NR == 2 { print $3 " KiB used, " $4 " KiB free" }')"
	swaks_expect_reject 4 --header "Message-Id: <q6.full@queue.test>" --to alice@example.net || return 1
	grep -q -E '^ *<\*\* *452 4\.3\.1' "$SWAKS_LOG" ||
		{ fail_because "full disk: expected 452 4.3.1, got: $(grep -E '^ *<\*\*' "$SWAKS_LOG" | head -n 1)"; return 1; }
	echo "# full disk: $(grep -E '^ *<\*\*' "$SWAKS_LOG" | head -n 1 | sed 's/^ *//')"
	kill -0 "$SMRELAYD_PID" 2>/dev/null || { fail_because "smrelayd died on the full disk"; return 1; }
	rm -f "$mnt/filler"
	for i in 1 2; do
		send_id_queued "<q6.after$i@queue.test>" --to alice@example.net || return 1
		echo "<q6.after$i@queue.test>" >>"$CASE_DIR/expected.ids"
	done
	queue_len_is 3 || { fail_because "expected 3 queued, have $(queue_len): $(qctl queue list | cut -f1,8)"; return 1; }
	spool_msgids | sort >"$CASE_DIR/spool.ids"
	sort "$CASE_DIR/expected.ids" | cmp -s - "$CASE_DIR/spool.ids" ||
		{ fail_because "spool bodies hold $(tr '\n' ' ' <"$CASE_DIR/spool.ids"), expected $(tr '\n' ' ' <"$CASE_DIR/expected.ids")"; return 1; }
	hop_up_sink || return 1
	qctl queue flush >/dev/null || { fail_because "queue flush failed"; return 1; }
	wait_queue_empty 20 flush || return 1
	assert_exactly_once "$CASE_DIR/expected.ids"
}

t_full_disk() {
	local rc
	_t_full_disk
	rc=$?
	if [ $rc -eq 0 ] && [ -n "$SMRELAYD_PID" ]; then
		stop_smrelayd || rc=1
	fi
	it_kill_all
	if [ ${#Q_MOUNTS[@]} -gt 0 ]; then
		umount "$CASE_DIR/data" || umount -l "$CASE_DIR/data"
		Q_MOUNTS=()
	fi
	return $rc
}

# ---------------------------------------------------------------- 7

_ctl_fails() {   # _ctl_fails ERE ARGS...: non-zero exit, stderr matching ERE
	local ere=$1 out rc
	shift
	out=$(qctl "$@" 2>&1 >/dev/null)
	rc=$?
	[ $rc -ne 0 ] || { fail_because "smrelayctl $*: exit 0, expected an error"; return 1; }
	printf '%s\n' "$out" | grep -q -E -- "$ere" ||
		{ fail_because "smrelayctl $*: exit $rc, message '$out' does not match /$ere/"; return 1; }
	echo "# smrelayctl $*: exit $rc: $out"
}

t_cli() {
	local a b c out i
	relay_with_hop_down || return 1
	send_id_queued "<q7.a@queue.test>" --to a1@example.net,a2@example.net || return 1
	a=$QUEUE_ID
	send_id_queued "<q7.b@queue.test>" --to b@example.net || return 1
	b=$QUEUE_ID
	send_id_queued "<q7.c@queue.test>" --to c@example.net || return 1
	c=$QUEUE_ID
	# show: recipients with their states
	out=$(qctl queue show "$a" 2>&1) || { fail_because "queue show $a: $out"; return 1; }
	printf '%s\n' "$out" | grep -q -E '^recipient: <a1@example.net> pending' &&
		printf '%s\n' "$out" | grep -q -E '^recipient: <a2@example.net> pending' ||
		{ fail_because "queue show $a: $(printf '%s' "$out" | tr '\n' '|')"; return 1; }
	# --json: an array of objects
	qctl --json queue list >"$CASE_DIR/list.json" 2>&1 || { fail_because "--json queue list failed"; return 1; }
	"$PYTHON" - "$CASE_DIR/list.json" "$a" "$b" "$c" <<'EOF' || { fail_because "--json queue list content: $(cat "$CASE_DIR/list.json" | head -c 300)"; return 1; }
import json, sys
rows = json.load(open(sys.argv[1]))
assert isinstance(rows, list) and len(rows) == 3, rows
ids = sorted(r["id"] for r in rows)
assert ids == sorted(sys.argv[2:5]), ids
a = [r for r in rows if r["id"] == sys.argv[2]][0]
assert a["sender"] == "sender@example.com", a
assert sorted(x["address"] for x in a["recipients"]) == ["a1@example.net", "a2@example.net"], a
assert all(x["state"] for x in a["recipients"]), a
EOF
	out=$(qctl --json queue show "$a" 2>&1) && printf '%s\n' "$out" | "$PYTHON" -m json.tool >/dev/null 2>&1 ||
		{ fail_because "--json queue show: $out"; return 1; }
	# bad and unknown ids
	_ctl_fails 'bad queue id' queue show nonsense || return 1
	_ctl_fails 'bad queue id' queue hold "${a}0" || return 1
	_ctl_fails 'no such message' queue show 0123456789abcdef || return 1
	_ctl_fails 'no such message' queue hold 0123456789abcdef || return 1
	_ctl_fails 'no such message' queue release 0123456789abcdef || return 1
	_ctl_fails 'no such message' queue remove 0123456789abcdef || return 1
	_ctl_fails 'no such message' queue flush 0123456789abcdef || return 1
	# hold a, remove b
	out=$(qctl queue hold "$a" 2>&1) || { fail_because "queue hold $a: $out"; return 1; }
	qctl queue list | awk -F '\t' -v id="$a" '$1 == id && $3 == "hold" { f = 1 } END { exit !f }' ||
		{ fail_because "after hold: $(qctl queue list | cut -f1,3)"; return 1; }
	out=$(qctl queue remove "$b" 2>&1) || { fail_because "queue remove $b: $out"; return 1; }
	qctl queue list | grep -q "^$b" && { fail_because "queue remove $b: still listed"; return 1; }
	[ -e "$CASE_DIR/data/spool/msg/$b" ] && { fail_because "queue remove $b: body still in spool/msg"; return 1; }
	_ctl_fails 'no such message' queue show "$b" || return 1
	# the hop comes up; flush: c goes, a (held) stays
	hop_up_sink || return 1
	out=$(qctl queue flush 2>&1) || { fail_because "queue flush: $out"; return 1; }
	echo "# queue flush: $out"
	wait_for 15 queue_len_is 1 || { fail_because "after flush: $(qctl queue list | cut -f1,3,8,9)"; return 1; }
	wait_delivered 1 || return 1
	assert_eq 1 "$(count_msgid '<q7.c@queue.test>')" "copies of c" || return 1
	# held through another flush and a successful in-line delivery
	send_id "<q7.d@queue.test>" --to d@example.net || return 1
	for i in 1 2 3 4 5 6; do
		qctl queue flush >/dev/null
		sleep 0.4
	done
	assert_eq 0 "$(count_msgid '<q7.a@queue.test>')" "copies of the held message a" || return 1
	qctl queue list | awk -F '\t' -v id="$a" '$1 == id && $3 == "hold" { f = 1 } END { exit !f }' ||
		{ fail_because "held message: $(qctl queue list | cut -f1,3)"; return 1; }
	# release: delivered
	out=$(qctl queue release "$a" 2>&1) || { fail_because "queue release $a: $out"; return 1; }
	wait_queue_empty 15 || return 1
	assert_eq 1 "$(count_msgid '<q7.a@queue.test>')" "copies of a after release" || return 1
	assert_eq 0 "$(count_msgid '<q7.b@queue.test>')" "copies of the removed message b" || return 1
	printf '%s\n' '<q7.a@queue.test>' '<q7.c@queue.test>' '<q7.d@queue.test>' >"$CASE_DIR/expected.ids"
	assert_exactly_once "$CASE_DIR/expected.ids"
}


# ---------------------------------------------------------------- 7b

# smrelayctl changes after the daemon has been idle for a few seconds (no
# smrelayctl change for more than one poll interval): a flush must still be
# noticed within about a second.
t_ctl_after_idle() {
	relay_with_hop_down || return 1
	send_id_queued "<q7b.idle@queue.test>" --to alice@example.net || return 1
	hop_up_sink || return 1
	sleep 2     # two poll intervals without any smrelayctl change
	qctl queue flush "$QUEUE_ID" >/dev/null || { fail_because "queue flush failed"; return 1; }
	wait_for 10 queue_is_empty || {
		fail_because "queue flush $QUEUE_ID after 2 s idle not acted on within 10 s (next attempt per queue list: $(qctl queue list | cut -f5))"
		return 1
	}
	assert_eq 1 "$(count_msgid '<q7b.idle@queue.test>')" "copies delivered"
}

# ---------------------------------------------------------------- 8

# A spool row whose hold state is none of ours (written by another
# program, or a newer version): kept and held, said in the log, never
# dropped nor sent nor expired behind the admin's back; queue release
# sends it.
t_unknown_hold() {
	local i id
	relay_with_hop_down || return 1
	: >"$CASE_DIR/expected.ids"
	for i in 1 2; do
		send_id_queued "<q9.$i@queue.test>" --to "u$i@example.net" || return 1
		echo "<q9.$i@queue.test>" >>"$CASE_DIR/expected.ids"
	done
	stop_smrelayd || return 1
	mv "$CASE_DIR/smrelayd.log" "$CASE_DIR/smrelayd.1.log"
	id=$(qctl queue list | awk -F '\t' '$8 ~ /u1@example.net/ { print $1 }')
	[ -n "$id" ] || { fail_because "queue list: $(qctl queue list)"; return 1; }
	sqlite3 "$CASE_DIR/data/spool/queue.db" "UPDATE queue SET held = 7 WHERE id = '$id'" ||
		{ fail_because "cannot set the hold state"; return 1; }
	hop_up_sink || return 1
	start_smrelayd "$CONF" "$PORT" || return 1
	wait_delivered 1 20 && assert_delivered_to u2@example.net || return 1
	assert_file_matches "$CASE_DIR/smrelayd.log" "$id: unknown hold state 7: held" "the log line" || return 1
	qctl queue list | grep -F "$id" | grep -q -w -F hold ||
		{ fail_because "not listed as held: $(qctl queue list)"; return 1; }
	qctl queue release "$id" >/dev/null || { fail_because "queue release failed"; return 1; }
	wait_queue_empty 20 && assert_exactly_once "$CASE_DIR/expected.ids"
}

t_restart() {
	local i stray=$CASE_DIR/data/spool/msg/00112233aabbccdd
	relay_with_hop_down || return 1
	: >"$CASE_DIR/expected.ids"
	for i in 1 2 3; do
		send_id_queued "<q8.$i@queue.test>" --to "r$i@example.net" || return 1
		echo "<q8.$i@queue.test>" >>"$CASE_DIR/expected.ids"
	done
	kill -KILL "$SMRELAYD_PID"
	wait "$SMRELAYD_PID" 2>/dev/null
	untrack "$SMRELAYD_PID"
	SMRELAYD_PID=""
	mv "$CASE_DIR/smrelayd.log" "$CASE_DIR/smrelayd.1.log"
	# a torn write: a body without a row
	printf 'Message-Id: <q8.stray@queue.test>\r\nSubject: torn\r\n\r\nhalf a mess' >"$stray"
	queue_len_is 3 || { fail_because "after kill -9: $(queue_len) queued, expected 3"; return 1; }
	# as the version before left it (schema 2: no smime column); the
	# start upgrades it in place and delivers what it holds
	sqlite3 "$CASE_DIR/data/spool/queue.db" "ALTER TABLE queue DROP COLUMN smime; PRAGMA user_version = 2;" ||
		{ fail_because "cannot make the spool schema 2"; return 1; }
	hop_up_sink || return 1
	start_smrelayd "$CONF" "$PORT" || return 1
	# queued entries are retried at once after a start: no flush
	wait_queue_empty 20 || return 1
	wait_for 5 test ! -e "$stray" || { fail_because "the stray body $(basename "$stray") is still in spool/msg"; return 1; }
	assert_exactly_once "$CASE_DIR/expected.ids" || return 1
	assert_eq 3 "$(sqlite3 "$CASE_DIR/data/spool/queue.db" 'PRAGMA user_version')" "spool schema after the start" || return 1
	stop_smrelayd || return 1
	[ -z "$(find "$CASE_DIR/data/spool/msg" -type f)" ] ||
		{ fail_because "files left in spool/msg: $(ls "$CASE_DIR/data/spool/msg")"; return 1; }
}

run_case down_100 t_down_100
run_case every_other_451 t_every_other_451
run_case drop_after_dot t_drop_after_dot
run_case rcpt_550 t_rcpt_550
run_case expiry t_expiry
run_case delay_warning t_delay_warning
run_case dsn_return_size t_dsn_return_size
run_case full_disk t_full_disk
run_case cli t_cli
run_case ctl_after_idle t_ctl_after_idle
run_case restart t_restart
run_case unknown_hold t_unknown_hold
it_finish
