#!/bin/bash
# tests/scale/t_cluster_slowpg.sh: PostgreSQL slow, for real (issue 18, "Bad
# input and faults": "slow (seconds per query)").
#
# The topology of topo.sh with TOPO_DB=pg, the rule "sign mail from alice"
# in the store before the nodes start.  A psql session of the test takes
# LOCK TABLE ... IN ACCESS EXCLUSIVE MODE, in a transaction, on what the
# nodes read (meta: the change check; policy_rules, certificates,
# cert_emails, trust_anchors, crls: a reload and the RCPT lookups) and holds
# it while mail flows through HAProxy (tests/queue/crash_client.py, alice
# to bob).  Two cases:
#   lock_short    held SLOW_SHORT (8) s: longer than one change check
#                 (STOREQ_SYNC, 1 s), shorter than the nodes'
#                 statement_timeout (10 s): their queries wait
#   lock_timeout  held SLOW_LONG (22) s: past the statement_timeout, so
#                 the nodes' queries fail with a timeout; and a RCPT whose
#                 rule needs a certificate lookup gets a 4xx while the lock
#                 is still held (storeq waits STOREQ_LOOKUP_WAIT, 5 s, for
#                 a lookup, the gateway asks at most 3 times)
# Checked in each: while the lock is held both nodes answer an SMTP
# greeting and /healthz (at all, within 5 s: their event loops are not
# waiting on the database); their logs say what happened (the store is
# slow / a query timed out); every message that got 250 is at the sink,
# signed (the cached rule), and the load got 250s while the lock was held;
# after the release, a rule change through A applies on B (bounded poll).
# Skipped (77) with the reason when the PostgreSQL backend is not there.
#
# Environment: SLOW_SHORT, SLOW_LONG, SLOW_N (messages per case, 120),
# SLOW_RATE (15 a second), plus lib.sh's.
. "$(dirname "$0")/topo.sh"

SLOW_SHORT=${SLOW_SHORT:-8}
SLOW_LONG=${SLOW_LONG:-22}
SLOW_N=${SLOW_N:-120}
SLOW_RATE=${SLOW_RATE:-15}
CLIENT=$TOP_SRC/tests/queue/crash_client.py
LOCK_TABLES="meta, policy_rules, certificates, cert_emails, trust_anchors, crls"
ANSWER_WITHIN=5

if ! topo_db_choose pg; then
	echo "SKIP all: needs the PostgreSQL store: $TOPO_WHY"
	exit 77
fi
topo_store_hook() {
	RULE_ID=$(topo_ctl A policy add --sender alice@example.com --action sign) && [ -n "$RULE_ID" ] ||
		{ fail_because "policy add on A: $(tail -n 1 "$T/ctl.log")"; return 1; }
	# a recipient whose RCPT needs a certificate lookup (never cached)
	topo_ctl A policy add --recipient newguy@partner.example --action sign,encrypt \
		--if-no-cert reject --priority 5 >/dev/null ||
		fail_because "policy add on A: $(tail -n 1 "$T/ctl.log")"
}
topo_setup_or_die log_level=info

accepted_now() { topo_accepted "$CASE_DIR/progress"; }

# greets NODE: NODE's direct port sends its 220 within ANSWER_WITHIN s.
greets() {
	"$PYTHON" - "${NODE_DPORT[$1]}" "$ANSWER_WITHIN" <<'EOP'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=float(sys.argv[2]))
s.settimeout(float(sys.argv[2]))
line = s.recv(512).decode(errors="replace")
try:
    s.sendall(b"QUIT\r\n")
except OSError:
    pass
sys.exit(0 if line.startswith("220") else 1)
EOP
}

# answers NODE: /healthz on NODE answers (any status) within ANSWER_WITHIN s.
answers() {
	local h
	h=$(timeout "$ANSWER_WITHIN" "$PYTHON" "$HTTP_PY" get \
		"http://127.0.0.1:${NODE_MPORT[$1]}/healthz" "$ANSWER_WITHIN" 2>/dev/null) || return 1
	echo "$1 $(echo "$h" | tr '\n' ' ')" >>"$CASE_DIR/health.log"
	[[ ${h%%$'\n'*} =~ ^[0-9]{3}$ ]]
}

# lock_start SECS: a psql session that locks LOCK_TABLES and holds them
# SECS seconds (LOCK_PID); returns once the lock is taken.
lock_start() {
	{
		echo "BEGIN;"
		echo "LOCK TABLE $LOCK_TABLES IN ACCESS EXCLUSIVE MODE;"
		echo "\\echo locked"
		echo "SELECT pg_sleep($1);"
		echo "COMMIT;"
		echo "\\echo released"
	} >"$CASE_DIR/lock.sql"
	: >"$CASE_DIR/lock.out"
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -f "$CASE_DIR/lock.sql" \
		>"$CASE_DIR/lock.out" 2>&1 &
	LOCK_PID=$!
	IT_PIDS+=("$LOCK_PID")
	wait_for 10 grep -q '^locked' "$CASE_DIR/lock.out" ||
		{ fail_because "psql did not take the lock: $(tr '\n' ' ' <"$CASE_DIR/lock.out")"; return 1; }
}

# stuck: queries of both nodes wait for the lock (a change check comes
# every second on each).
stuck() {
	local n
	n=$("$PG_BIN/psql" -X -q -A -t -c "SELECT count(*) FROM pg_locks WHERE NOT granted" 2>/dev/null) &&
		[ "${n:-0}" -ge 2 ]
}

# lock_wait SECS: the lock session is over within SECS, committed.
lock_wait() {
	wait_for "$1" eval "! kill -0 $LOCK_PID 2>/dev/null" ||
		{ fail_because "the lock session did not end"; return 1; }
	wait "$LOCK_PID"
	untrack "$LOCK_PID"
	grep -q '^released' "$CASE_DIR/lock.out" ||
		{ fail_because "the lock session failed: $(tr '\n' ' ' <"$CASE_DIR/lock.out")"; return 1; }
}

# log_mark NODE: the line count of NODE's log now.
log_mark() { wc -l <"$T/$1.log"; }

# log_since NODE MARK ERE: a line of NODE's log after MARK matches ERE.
log_since() { tail -n +"$(($2 + 1))" "$T/$1.log" | grep -q -i -E "$3"; }

# verdict TAG: every 250'd message of the load tagged TAG at the sink,
# signed (openssl cms -verify on one).
verdict() {
	local tag=$1 acc missing unsigned one n
	for n in A B; do
		wait_for 60 eval '[ "$(topo_queue_len '$n')" = 0 ] || { topo_ctl '$n' queue flush >/dev/null 2>&1; false; }' ||
			{ fail_because "node $n's spool did not drain: $(topo_queue_len $n) left"; return 1; }
	done
	awk -F'\t' '$2 ~ /^2/ { print $1 }' "$CASE_DIR/client.tsv" | sort >"$CASE_DIR/accepted.ids"
	topo_ids "$T/maildir" | grep -F ".$tag@" | sort -u >"$CASE_DIR/sink.ids"
	comm -23 "$CASE_DIR/accepted.ids" "$CASE_DIR/sink.ids" >"$CASE_DIR/missing.ids"
	acc=$(wc -l <"$CASE_DIR/accepted.ids")
	missing=$(wc -l <"$CASE_DIR/missing.ids")
	topo_unsigned "$tag"
	unsigned=$TOPO_UNSIGNED
	one=$TOPO_SIGNED_ONE
	echo "# accepted (250): $acc of $SLOW_N; missing at the sink: $missing; unsigned: $unsigned"
	[ "$missing" = 0 ] ||
		{ fail_because "$missing of $acc accepted message(s) not at the sink: $(head -n 5 "$CASE_DIR/missing.ids" | tr '\n' ' ')"; return 1; }
	[ "$acc" -ge "$SLOW_N" ] || { fail_because "only $acc of $SLOW_N messages accepted"; return 1; }
	[ "$unsigned" = 0 ] ||
		{ fail_because "$unsigned message(s) relayed without the signature the rule asks for"; return 1; }
	openssl cms -verify -CAfile "$P/trust.pem" -purpose smimesign -in "$one" -out /dev/null \
		2>"$CASE_DIR/verify.err" || { fail_because "openssl cms -verify $(basename "$one"): $(tail -n 1 "$CASE_DIR/verify.err")"; return 1; }
}

# slow_case SECS LOGRE [rcpt]: the lock held SECS seconds under load; LOGRE:
# what both nodes' logs must say meanwhile; rcpt: also a RCPT that needs a
# certificate lookup, temp-failed before the lock is released.
slow_case() {
	local secs=$1 logre=$2 tag=slow$$$CASE cpid a0 a1 ma mb n t0

	topo_poll A multipart/signed 10 alice@example.com bob@partner.example &&
		topo_poll B multipart/signed 10 alice@example.com bob@partner.example ||
		{ IT_REASON="before the lock: $IT_REASON"; return 1; }
	"$PYTHON" "$CLIENT" --port "$HA_PORT" --count "$SLOW_N" --conns 3 \
		--rate "$SLOW_RATE" --deadline 150 --tag "$tag" \
		--sender alice@example.com --rcpt bob@partner.example \
		--log "$CASE_DIR/client.tsv" --progress "$CASE_DIR/progress" \
		>"$CASE_DIR/client.log" 2>&1 &
	cpid=$!
	IT_PIDS+=("$cpid")
	wait_for 30 eval '[ "$(accepted_now)" -ge 10 ]' ||
		{ fail_because "the load did not start ($(accepted_now) accepted)"; return 1; }

	ma=$(log_mark A)
	mb=$(log_mark B)
	lock_start "$secs" || return 1
	t0=$(now_s)
	a0=$(accepted_now)
	echo "# $LOCK_TABLES locked for $secs s at $a0 accepted"
	# Once the nodes' queries wait behind the lock, ask them.
	wait_for 5 stuck || { fail_because "no query of the nodes waits for the lock"; return 1; }
	for n in A B; do
		greets $n || { fail_because "node $n: no SMTP greeting within $ANSWER_WITHIN s while the store is locked"; return 1; }
		answers $n || { fail_because "node $n: /healthz did not answer within $ANSWER_WITHIN s while the store is locked"; return 1; }
	done
	echo "# both nodes greeted and answered /healthz $(secs_since "$t0") s into the lock"
	if [ "${3:-}" = rcpt ]; then
		# A RCPT that needs the store: temp-failed while the lock is
		# still held (a lookup is not waited for without bound).
		topo_send A --sender alice@example.com --rcpt newguy@partner.example \
			--id "newguy.$tag@scale.test"
		echo "# RCPT needing a lookup answered $(secs_since "$t0") s into the lock: $SENT_REPLY"
		[[ $SENT_REPLY =~ ^4 ]] ||
			{ fail_because "RCPT needing a lookup while the store is locked: '$SENT_REPLY', not a 4xx"; return 1; }
		kill -0 "$LOCK_PID" 2>/dev/null ||
			{ fail_because "RCPT needing a lookup answered only after the lock was released"; return 1; }
		# past the statement timeout, the store thread reconnecting:
		# the loops still answer
		for n in A B; do
			greets $n && answers $n ||
				{ fail_because "node $n: no greeting or /healthz $(secs_since "$t0") s into the lock"; return 1; }
		done
		echo "# both nodes greeted and answered /healthz again $(secs_since "$t0") s into the lock"
	fi
	lock_wait $((secs + 15)) || return 1
	a1=$(accepted_now)
	echo "# lock released after $(secs_since "$t0") s at $a1 accepted ($((a1 - a0)) while it was held)"
	[ $((a1 - a0)) -gt 0 ] ||
		{ fail_because "no message got 250 while the store was locked"; return 1; }
	# The logs say what happened.
	wait_for 20 eval 'log_since A $ma "$logre" && log_since B $mb "$logre"' ||
		{ fail_because "the nodes' logs do not say /$logre/ (A: $(tail -n +$((ma + 1)) "$T/A.log" | grep -i -m1 -E 'store|slow|timeout')) (B: $(tail -n +$((mb + 1)) "$T/B.log" | grep -i -m1 -E 'store|slow|timeout'))"; return 1; }
	echo "# A says: $(tail -n +$((ma + 1)) "$T/A.log" | grep -i -m1 -E "$logre")"

	wait_for 150 eval "! kill -0 $cpid 2>/dev/null" ||
		{ fail_because "the client did not finish"; return 1; }
	wait "$cpid"
	untrack "$cpid"
	grep -q '^accepted' "$CASE_DIR/client.log" ||
		{ fail_because "the client failed: $(tail -n 3 "$CASE_DIR/client.log" | tr '\n' ' ')"; return 1; }
	verdict "$tag" || return 1

	# After the release a change through A reaches B: the rule removed,
	# then added again (for the next case).
	topo_ctl A policy remove "$RULE_ID" >/dev/null ||
		{ fail_because "policy remove on A after the lock: $(tail -n 1 "$T/ctl.log")"; return 1; }
	topo_poll B text/plain 20 alice@example.com bob@partner.example ||
		{ IT_REASON="after the lock, rule $RULE_ID removed through A: $IT_REASON"; return 1; }
	echo "# after the lock, the rule removed through A was gone on B after $POLL_SECS s"
	RULE_ID=$(topo_ctl A policy add --sender alice@example.com --action sign) && [ -n "$RULE_ID" ] ||
		{ fail_because "policy add on A: $(tail -n 1 "$T/ctl.log")"; return 1; }
	topo_poll B multipart/signed 20 alice@example.com bob@partner.example ||
		{ IT_REASON="after the lock, rule $RULE_ID added through A: $IT_REASON"; return 1; }
}

case_short() { slow_case "$SLOW_SHORT" 'store slow'; }
case_timeout() { slow_case "$SLOW_LONG" 'statement timeout' rcpt; }
case_stop() { topo_node_stop A && topo_node_stop B; }

run_case lock_short case_short
run_case lock_timeout case_timeout
run_case nodes_stop_cleanly case_stop
it_finish
