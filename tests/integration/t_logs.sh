#!/bin/bash
# tests/integration/t_logs.sh: the logs an admin greps (docs/OPERATIONS.md,
# "Logs"): under -f every line starts with an ISO 8601 time with
# milliseconds; one line per delivery attempt per recipient, with the queue
# ID that the client's 250 reply carries; a deferred message keeps its ID
# when the spool delivers it later.  Sent with swaks to smrelayd, relayed to
# `smrelayctl sink`.
set -u
TOP_SRC=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib.sh
. "$TOP_SRC/tests/integration/lib.sh"
need_bins
trap it_cleanup EXIT

STAMP='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}[+-][0-9]{2}:[0-9]{2} '

# The queue ID of the last 250 reply after DATA, into QID.
reply_qid() {
	QID=$(grep -E '^ *<[-~] *250 .*queued as [0-9a-f]{16}' "$SWAKS_LOG" | tail -n 1 |
		grep -o -E 'queued as [0-9a-f]{16}' | cut -c11-)
	[ -n "$QID" ] || { fail_because "no 'queued as ID' in the 250 reply: $(grep -E '^ *<[-~] *250 ' "$SWAKS_LOG" | tail -n 1)"; return 1; }
}

# lines_for ID RCPT [STATUS]: the log's delivery lines for RCPT under ID.
lines_for() {
	grep -E "^[^ ]+ $1: to=<$2>, " "$CASE_DIR/smrelayd.log" |
		grep -E "status=${3:-[a-z]+} " || true
}

# n_lines ID RCPT STATUS N: at least N such lines (for wait_for).
n_lines() { [ "$(lines_for "$1" "$2" "$3" | wc -l)" -ge "$4" ]; }

# Two recipients relayed over STARTTLS: one line each, with everything.
t_one_line_per_rcpt() {
	it_certs && start_sink --tls-cert "$PKI/srv.pem" --tls-key "$PKI/srv.key" &&
		start_relay relay_tls=may || return 1
	swaks_send --to alice@example.net,bob@example.net \
		--header "Message-Id: <logs.1@client.test>" || return 1
	reply_qid || return 1
	wait_delivered 1 || return 1
	wait_for 10 n_lines "$QID" bob@example.net sent 1 || { fail_because "no sent line for bob under $QID"; return 1; }
	local r l
	for r in alice@example.net bob@example.net; do
		assert_eq 1 "$(lines_for "$QID" $r | wc -l)" "delivery lines for $r" || return 1
		l=$(lines_for "$QID" $r)
		echo "# $l"
		[[ $l =~ $STAMP ]] || { fail_because "no ISO 8601 time with ms: $l"; return 1; }
		local want
		for want in 'msgid=<logs\.1@client\.test>' "relay=127\\.0\\.0\\.1(\\[127\\.0\\.0\\.1\\])?:$NH_PORT," \
		    'delay=[0-9]+\.[0-9]{2},' 'delays=[0-9.]+/[0-9.]+/[0-9.]+,' \
		    'tls=TLSv1\.[23]:[A-Z0-9_-]+' 'smime=none' 'dsn=2\.0\.0' 'status=sent \(250 '; do
			[[ $l =~ $want ]] || { fail_because "line for $r lacks /$want/: $l"; return 1; }
		done
	done
	# every line of the foreground log has the time
	if grep -v -E "$STAMP" "$CASE_DIR/smrelayd.log" | grep -q .; then
		fail_because "lines without a time: $(grep -v -E "$STAMP" "$CASE_DIR/smrelayd.log" | head -n 2)"
		return 1
	fi
}

# The next hop is down: a deferred line with the ID of the 250; then it
# comes up, the queue is flushed, and a sent line has the same ID.
t_deferred_then_sent() {
	NH_PORT=$(free_port)
	start_relay || return 1
	swaks_send --to carol@example.net --header "Message-Id: <logs.2@client.test>" || return 1
	reply_qid || return 1
	wait_for 10 n_lines "$QID" carol@example.net deferred 1 ||
		{ fail_because "no deferred line under $QID: $(grep 'to=<carol' "$CASE_DIR/smrelayd.log")"; return 1; }
	SINK_DIR=$CASE_DIR/maildir
	mkdir -p "$SINK_DIR/new" "$SINK_DIR/cur" "$SINK_DIR/tmp"
	bg sink "$SMRELAYCTL" sink --listen "127.0.0.1:$NH_PORT" --maildir "$SINK_DIR"
	wait_listen "$NH_PORT" "$BG_PID" 15 || { fail_because "sink did not start"; return 1; }
	"$SMRELAYCTL" -c "$CONF" queue flush "$QID" >/dev/null ||
		{ fail_because "queue flush $QID failed"; return 1; }
	wait_delivered 1 || return 1
	wait_for 10 n_lines "$QID" carol@example.net sent 1 ||
		{ fail_because "no sent line under $QID: $(grep 'to=<carol' "$CASE_DIR/smrelayd.log")"; return 1; }
	assert_eq 2 "$(lines_for "$QID" carol@example.net | wc -l)" "lines for carol under $QID" || return 1
	lines_for "$QID" carol@example.net | sed 's/^/# /'
	lines_for "$QID" carol@example.net deferred | grep -q -E 'msgid=<logs\.2@client\.test>, relay=127\.0\.0\.1:[0-9]+, .*dsn=4\.[0-9]\.[0-9]+, status=deferred \(4' ||
		{ fail_because "deferred line: $(lines_for "$QID" carol@example.net deferred)"; return 1; }
	# the retry says what S/MIME did before the copy was queued, as the
	# first attempt did
	local s1 s2
	s1=$(lines_for "$QID" carol@example.net deferred | grep -o 'smime=[^,]*')
	s2=$(lines_for "$QID" carol@example.net sent | grep -o 'smime=[^,]*')
	[ -n "$s1" ] && [ "$s1" != "smime=-" ] || { fail_because "first attempt: '$s1'"; return 1; }
	assert_eq "$s1" "$s2" "smime= of the retry" || return 1
}

run_case one_line_per_rcpt t_one_line_per_rcpt
run_case deferred_then_sent t_deferred_then_sent
it_finish
