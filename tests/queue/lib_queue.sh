# shellcheck shell=bash
# tests/queue/lib_queue.sh: helpers for the spool/queue tests, on top of the
# integration harness (tests/integration/lib.sh: run_case, start_relay,
# swaks_*, wait_for, sink_files, ...).
#
# The next hop lives at a fixed port NH_PORT picked before the relay starts,
# so a test can start smrelayd while "the next hop is down" (nothing listens
# there) and bring one up later on the same port without touching the
# daemon's configuration:
#   relay_with_hop_down [write_conf args]   NH_PORT free, then start_relay
#   hop_up_sink                             smrelayctl sink on NH_PORT
#   hop_up_nexthop [nexthop.py options]     tests/integration/py/nexthop.py
#   hop_up_flaky [flaky_hop.py options]     tests/queue/flaky_hop.py
#   hop_down                                stop whichever runs
# All capture into the Maildir SINK_DIR ($CASE_DIR/maildir).

# shellcheck source=../integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
Q_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

qctl() {
	"$SMRELAYCTL" -c "$CONF" "$@"
}

# queue_len: the number of spooled messages (-1 if `queue list` fails).
queue_len() {
	local out
	out=$(qctl queue list 2>/dev/null) || { echo -1; return; }
	if [ -z "$out" ]; then
		echo 0
	else
		printf '%s\n' "$out" | wc -l
	fi
}

queue_is_empty() { [ "$(queue_len)" = 0 ]; }
queue_len_is() { [ "$(queue_len)" = "$1" ]; }

# wait_queue_empty SECONDS [flush]: poll until the spool is empty; with
# "flush", make everything due (queue flush) once a second meanwhile.
wait_queue_empty() {
	local secs=$1 flush=${2:-} n=0
	while ! queue_is_empty; do
		n=$((n + 1))
		if [ $n -gt $((secs * 5)) ]; then
			fail_because "spool not empty after $secs s: $(qctl queue list 2>&1 | cut -f1,3,4,8,9 | head -n 5 | tr '\n' '|')"
			return 1
		fi
		[ -n "$flush" ] && [ $((n % 5)) = 1 ] && qctl queue flush >/dev/null 2>&1
		sleep 0.2
	done
	return 0
}

relay_with_hop_down() {
	NH_PORT=$(free_port)
	start_relay "$@"
}

_hop_dirs() {
	SINK_DIR=$CASE_DIR/maildir
	mkdir -p "$SINK_DIR/new" "$SINK_DIR/cur" "$SINK_DIR/tmp"
	NH_EVENTS=$CASE_DIR/hop.events
	: >"$NH_EVENTS"
}

_hop_wait() {
	SINK_PID=$BG_PID
	wait_listen "$NH_PORT" "$SINK_PID" 15 ||
		fail_because "next hop ($1) did not start on $NH_PORT: $(tail -n 3 "$CASE_DIR/$1.log" | tr '\n' ' ')"
}

hop_up_sink() {
	_hop_dirs
	bg sink "$SMRELAYCTL" sink --listen "127.0.0.1:$NH_PORT" --maildir "$SINK_DIR"
	_hop_wait sink
}

hop_up_nexthop() {
	_hop_dirs
	bg nexthop "$PYTHON" "$IT_PY/nexthop.py" --listen "127.0.0.1:$NH_PORT" \
		--maildir "$SINK_DIR" --events "$NH_EVENTS" "$@"
	_hop_wait nexthop
}

hop_up_flaky() {
	_hop_dirs
	bg flaky "$PYTHON" "$Q_DIR/flaky_hop.py" --listen "127.0.0.1:$NH_PORT" \
		--maildir "$SINK_DIR" --events "$NH_EVENTS" "$@"
	_hop_wait flaky
}

# hop_down: stop the next hop (and wait until the port is free).
hop_down() {
	local pid=$SINK_PID
	[ -n "$pid" ] || return 0
	SINK_PID=""
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	untrack "$pid"
	wait_for 10 _port_free "$NH_PORT"
}
_port_free() { ! is_listening "$1"; }

# msgids FILE...: the Message-ID of each file, one a line (as in the file).
msgids() {
	local f
	for f in "$@"; do
		tr -d '\r' <"$f" | awk '/^$/ { exit } tolower($1) == "message-id:" { print $2; exit }'
	done
}

# sink_msgids: the Message-IDs of every message at the next hop.
sink_msgids() {
	local files
	mapfile -t files < <(sink_files)
	[ ${#files[@]} -gt 0 ] && msgids "${files[@]}"
}

# spool_msgids: the Message-IDs of every message in the spool, read the way
# an admin would: `queue show ID` prints each one after its envelope.
spool_msgids() {
	local id dir=$CASE_DIR/spool-show
	rm -rf "$dir"
	mkdir -p "$dir"
	for id in $("$SMRELAYCTL" -c "$CONF" queue list | cut -f1); do
		"$SMRELAYCTL" -c "$CONF" queue show "$id" |
			sed '1,/^--- message$/d' >"$dir/$id"
	done
	[ -n "$(ls "$dir")" ] && msgids "$dir"/*
}

# assert_exactly_once EXPECTED_FILE: every Message-ID listed in EXPECTED_FILE
# is at the next hop exactly once, and nothing else is there.
assert_exactly_once() {
	local exp=$1 got=$CASE_DIR/delivered.ids dups missing extra
	sink_msgids | sort >"$got"
	dups=$(uniq -d "$got" | head -n 3 | tr '\n' ' ')
	missing=$(sort -u "$exp" | comm -23 - <(sort -u "$got") | head -n 3 | tr '\n' ' ')
	extra=$(sort -u "$got" | comm -13 <(sort -u "$exp") - | head -n 3 | tr '\n' ' ')
	if [ -n "$dups" ]; then
		fail_because "delivered more than once: $dups($(uniq -d "$got" | wc -l) in all)"
		return 1
	fi
	if [ -n "$missing" ]; then
		fail_because "never delivered: $missing($(sort -u "$exp" | comm -23 - "$got" | wc -l) of $(sort -u "$exp" | wc -l))"
		return 1
	fi
	if [ -n "$extra" ]; then
		fail_because "unexpected messages at the next hop: $extra"
		return 1
	fi
	return 0
}

# count_msgid ID: how many messages at the next hop carry Message-ID ID.
count_msgid() {
	sink_msgids | grep -c -x -F -- "$1"
}

# dsn_files: the messages at the next hop with a null envelope sender.
dsn_files() {
	local f
	for f in $(sink_files); do
		head -n 1 "$f" | grep -q '^Return-Path: <>' && echo "$f"
	done
}
dsn_count() { dsn_files | grep -c .; }
_dsn_count_ge() { [ "$(dsn_count)" -ge "$1" ]; }

# check_dsn FILE [dsn.py options]: parse a DSN with python's email package.
check_dsn() {
	local out
	out=$("$PYTHON" "$Q_DIR/dsn.py" "$@" 2>&1)
	local rc=$?
	echo "# $out"
	[ $rc -eq 0 ] || fail_because "$(basename "$1"): $out"
}

# send_id MSGID [swaks options]: one message with that Message-ID.
send_id() {
	local id=$1
	shift
	swaks_send --header "Message-Id: $id" "$@"
}

# send_id_queued MSGID [swaks options]: ... which must be queued (QUEUE_ID).
send_id_queued() {
	local id=$1
	shift
	swaks_expect_queued --header "Message-Id: $id" "$@"
}

# log_has ERE: the daemon log has a matching line.
log_has() {
	grep -q -E -- "$1" "$CASE_DIR/smrelayd.log"
}
