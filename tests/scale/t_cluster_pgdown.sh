#!/bin/bash
# tests/scale/t_cluster_pgdown.sh: PostgreSQL stopped for PGD_OUTAGE (30)
# seconds under load (issue 18, "Proof" and "Bad input and faults").
#
# The topology of topo.sh with TOPO_DB=pg, the rule "sign mail from alice"
# (added through A before the nodes start, seen applied on both first).  The load goes
# through HAProxy (tests/queue/crash_client.py from alice to bob: unique
# Message-IDs, every final reply logged) at PGD_RATE messages a second.  At
# PGD_AT % of it PostgreSQL is stopped (pg_stop), and started again
# (pg_restart) PGD_OUTAGE seconds later.  Checked:
#   - while it is down: both nodes' /healthz say so (degraded, unreachable:
#     the body), their logs say the store is unreachable, and the load goes
#     on (messages got 250 during the outage: the cached policy is safe to
#     use for signing);
#   - every message that got 250 is at the sink, signed (openssl cms
#     -verify on one of them): none lost, none relayed
#     without the rule's signature;
#   - after pg_restart, without a reload or a restart: /healthz healthy
#     again on both nodes, and a rule removed through A is seen on B
#     (LISTEN is back).
# Skipped (77) with the reason when the PostgreSQL backend is not there.
#
# Environment: PGD_N (2000), PGD_RATE (40), PGD_CONNS (4), PGD_AT (20),
# PGD_OUTAGE (30), plus lib.sh's.
. "$(dirname "$0")/topo.sh"

PGD_N=${PGD_N:-2000}
PGD_RATE=${PGD_RATE:-40}
PGD_CONNS=${PGD_CONNS:-4}
PGD_AT=${PGD_AT:-20}
PGD_OUTAGE=${PGD_OUTAGE:-30}
CLIENT=$TOP_SRC/tests/queue/crash_client.py
TAG=pgd$$

if ! topo_db_choose pg; then
	echo "SKIP all: needs the PostgreSQL store: $TOPO_WHY"
	exit 77
fi
# The rule is in the store before the nodes start: this case is about the
# outage (t_cluster_sync.sh is about changes reaching running nodes).
topo_store_hook() {
	RULE_ID=$(topo_ctl A policy add --sender alice@example.com --action sign) && [ -n "$RULE_ID" ] ||
		fail_because "policy add on A: $(tail -n 1 "$T/ctl.log")"
}
topo_setup_or_die log_level=info

accepted_now() { topo_accepted "$T/progress"; }

# degraded NODE: /healthz on NODE says the store is not there.
degraded() {
	local h
	h=$(topo_health "$1") || return 1
	echo "$1 $(echo "$h" | tr '\n' ' ')" >>"$T/health.log"
	printf '%s\n' "$h" | grep -q -i -E 'degraded|unreachable|down|unavailable'
}

# healthy NODE: /healthz 200 and nothing about the store being away.
healthy() {
	local h
	h=$(topo_health "$1") || return 1
	echo "$1 $(echo "$h" | tr '\n' ' ')" >>"$T/health.log"
	[ "${h%%$'\n'*}" = 200 ] && ! printf '%s\n' "$h" | grep -q -i -E 'degraded|unreachable'
}

case_pgdown() {
	local id cpid t_stop a_stop a_back n acc died sinkn uniq missing unsigned
	local one="" left

	id=$RULE_ID
	topo_poll A multipart/signed 5 alice@example.com bob@partner.example &&
		topo_poll B multipart/signed 5 alice@example.com bob@partner.example ||
		{ IT_REASON="before the outage: $IT_REASON"; return 1; }
	wait_for 10 healthy A && wait_for 10 healthy B ||
		{ fail_because "/healthz not healthy before the outage: $(tail -n 2 "$T/health.log" | tr '\n' ' ')"; return 1; }

	"$PYTHON" "$CLIENT" --port "$HA_PORT" --count "$PGD_N" --conns "$PGD_CONNS" \
		--rate "$PGD_RATE" --deadline 400 --tag "$TAG" \
		--sender alice@example.com --rcpt bob@partner.example \
		--log "$T/client.tsv" --progress "$T/progress" >"$T/client.log" 2>&1 &
	cpid=$!
	IT_PIDS+=("$cpid")
	wait_for 120 eval '[ "$(accepted_now)" -ge $((PGD_N * PGD_AT / 100)) ]' ||
		{ fail_because "the load did not reach $PGD_AT % ($(accepted_now) accepted)"; return 1; }

	# The outage.
	a_stop=$(accepted_now)
	pg_stop >>"$T/pg.log" 2>&1 || { fail_because "pg_stop failed: $(tail -n 2 "$T/pg.log" | tr '\n' ' ')"; return 1; }
	t_stop=$(now_s)
	echo "# PostgreSQL stopped at $a_stop accepted"
	wait_for 15 degraded A && wait_for 15 degraded B ||
		{ fail_because "/healthz does not say the store is away within 15 s: $(tail -n 2 "$T/health.log" | tr '\n' ' ')"; return 1; }
	for n in A B; do
		wait_for 15 grep -q -i 'unreachable' "$T/$n.log" ||
			{ fail_because "node $n does not log that the store is unreachable"; return 1; }
	done
	echo "# both nodes degraded $(secs_since "$t_stop") s after the stop: $(grep -i -m1 'unreachable' "$T/A.log")"
	# Wait out the outage (the load runs on meanwhile; the client must
	# not die).
	while left=$(awk -v a="$t_stop" -v b="$(now_s)" -v o="$PGD_OUTAGE" 'BEGIN { d = o - (b - a); if (d > 0) printf "%.1f", d; else exit 1 }'); do
		kill -0 "$cpid" 2>/dev/null || break
		sleep "$(awk -v l="$left" 'BEGIN { print (l < 0.5 ? l : 0.5) }')"
	done
	a_back=$(accepted_now)
	pg_restart >>"$T/pg.log" 2>&1 || { fail_because "pg_restart failed: $(tail -n 2 "$T/pg.log" | tr '\n' ' ')"; return 1; }
	echo "# PostgreSQL back after $(secs_since "$t_stop") s, at $a_back accepted ($((a_back - a_stop)) accepted during the outage)"
	[ $((a_back - a_stop)) -gt 0 ] ||
		{ fail_because "no message got 250 while PostgreSQL was down: mail did not keep flowing on the cached policy"; return 1; }
	wait_for 30 healthy A && wait_for 30 healthy B ||
		{ fail_because "/healthz not healthy within 30 s of pg_restart: $(tail -n 2 "$T/health.log" | tr '\n' ' ')"; return 1; }

	wait "$cpid"
	untrack "$cpid"
	echo "# client: $(cat "$T/client.log")"
	grep -q '^accepted' "$T/client.log" ||
		{ fail_because "the client failed: $(tail -n 3 "$T/client.log" | tr '\n' ' ')"; return 1; }
	# Whatever was spooled meanwhile is delivered.
	for n in A B; do
		wait_for 120 eval '[ "$(topo_queue_len '$n')" = 0 ] || { topo_ctl '$n' queue flush >/dev/null 2>&1; false; }' ||
			{ fail_because "node $n's spool did not drain: $(topo_queue_len $n) left"; return 1; }
	done

	# The verdict: none lost, none unsigned.
	awk -F'\t' '$2 ~ /^2/ { print $1 }' "$T/client.tsv" | sort >"$T/accepted.ids"
	died=$(awk -F'\t' '$2 == "died"' "$T/client.tsv" | wc -l)
	topo_ids "$T/maildir" | grep -F ".$TAG@" | sort >"$T/sink.ids"
	sort -u "$T/sink.ids" >"$T/sink.uniq"
	acc=$(wc -l <"$T/accepted.ids")
	sinkn=$(wc -l <"$T/sink.ids")
	uniq=$(wc -l <"$T/sink.uniq")
	comm -23 "$T/accepted.ids" "$T/sink.uniq" >"$T/missing.ids"
	missing=$(wc -l <"$T/missing.ids")
	topo_unsigned "$TAG"
	unsigned=$TOPO_UNSIGNED
	one=$TOPO_SIGNED_ONE
	echo "# accepted (250): $acc; connection died before the reply: $died"
	echo "# at the sink: $sinkn copies of $uniq Message-IDs; unsigned: $unsigned"
	echo "# missing: $missing"
	echo "duplicates: $((sinkn - uniq))"
	if [ "$missing" -gt 0 ]; then
		sed 's/^/#   missing: /' "$T/missing.ids" | head -n 50
		fail_because "$missing of $acc accepted message(s) never reached the next hop: $(head -n 10 "$T/missing.ids" | tr '\n' ' ')"
		return 1
	fi
	[ "$acc" -ge "$PGD_N" ] || { fail_because "only $acc of $PGD_N messages accepted"; return 1; }
	[ "$unsigned" = 0 ] ||
		{ fail_because "$unsigned message(s) relayed without the signature the rule asks for"; return 1; }
	openssl cms -verify -CAfile "$P/trust.pem" -purpose smimesign -in "$one" -out /dev/null \
		2>"$T/verify.err" || { fail_because "openssl cms -verify $(basename "$one"): $(tail -n 1 "$T/verify.err")"; return 1; }

	# LISTEN is back: a change through A reaches B without a reload.
	topo_ctl A policy remove "$id" >/dev/null ||
		{ fail_because "policy remove on A after the outage: $(tail -n 1 "$T/ctl.log")"; return 1; }
	topo_poll B text/plain 2 alice@example.com bob@partner.example ||
		{ IT_REASON="after the outage, a rule removed through A: $IT_REASON"; return 1; }
	echo "# after the outage, a rule removed through A was gone on B after $POLL_SECS s"
	topo_node_stop A && topo_node_stop B
}

# pg_down_at_start: a node started while PostgreSQL is down starts (it
# says so in its log), is not healthy and answers 4xx to mail it has no
# policy for (nothing relayed unsigned), and once PostgreSQL is back it
# loads the policy by itself and signs, without a reload or a restart.
case_pgstart() {
	local id
	topo_node_stop A && topo_node_stop B || return 1
	id=$(topo_ctl A policy add --sender alice@example.com --action sign) && [ -n "$id" ] ||
		{ fail_because "policy add on A: $(tail -n 1 "$T/ctl.log")"; return 1; }
	pg_stop >>"$T/pg.log" 2>&1 || { fail_because "pg_stop failed: $(tail -n 2 "$T/pg.log" | tr '\n' ' ')"; return 1; }
	topo_node_start B || return 1
	grep -q 'database not reachable, starting without it' "$T/B.log" ||
		{ fail_because "node B does not log that it starts without the database"; return 1; }
	wait_for 15 degraded B ||
		{ fail_because "/healthz of B does not say the store is away: $(tail -n 1 "$T/health.log")"; return 1; }
	[ "$(topo_health B | head -n 1)" != 200 ] ||
		{ fail_because "/healthz of B is 200 with no policy loaded"; return 1; }
	topo_poll B refused 1 alice@example.com bob@partner.example ||
		{ IT_REASON="with PostgreSQL down at start: $IT_REASON"; return 1; }
	[[ $SENT_REPLY =~ ^4 ]] ||
		{ fail_because "mail with no policy loaded got $SENT_REPLY, not a 4xx"; return 1; }
	echo "# PostgreSQL down at start: B answers $SENT_REPLY"
	pg_restart >>"$T/pg.log" 2>&1 || { fail_because "pg_restart failed: $(tail -n 2 "$T/pg.log" | tr '\n' ' ')"; return 1; }
	wait_for 40 healthy B ||
		{ fail_because "/healthz of B not healthy within 40 s of pg_restart: $(tail -n 1 "$T/health.log")"; return 1; }
	topo_poll B multipart/signed 5 alice@example.com bob@partner.example ||
		{ IT_REASON="after PostgreSQL came back: $IT_REASON"; return 1; }
	openssl cms -verify -CAfile "$P/trust.pem" -purpose smimesign -in "$POLL_FILE" -out /dev/null \
		2>"$T/verify.err" || { fail_because "openssl cms -verify: $(tail -n 1 "$T/verify.err")"; return 1; }
	echo "# PostgreSQL back: B signs, $POLL_SECS s after its first try"
	topo_node_stop B
}

run_case pg_down_30s case_pgdown
run_case pg_down_at_start case_pgstart
it_finish
