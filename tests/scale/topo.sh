# shellcheck shell=bash
# tests/scale/topo.sh: the multi-node topology of issue 18 on one machine,
# sourced by each tests/scale/t_cluster_*.sh, which stands up ONE topology
# (it is expensive) and runs its cases against it:
#
#   client -> HAProxy (mode tcp, roundrobin, send-proxy-v2, SMTP health
#             checks, redispatch) on HA_PORT
#          -> node A, node B: smrelayd each with its own data_dir, spool and
#             key file, listening with proxy=v2 on *_PORT (for HAProxy) and
#             without PROXY on *_DPORT (to talk to one node directly),
#             /metrics and /healthz on *_MPORT
#          -> `smrelayctl sink` (a Maildir, so the checks can read what
#             arrived) on NH_PORT
#   TOPO_PROCESSES=N sets `processes = N` on both nodes (default: unset, 1).
#   store:  TOPO_DB=pg: one PostgreSQL cluster (tests/lib/pgcluster.sh) that
#           both nodes name in `database = PG_URL`; TOPO_DB=sqlite: each node
#           its own smrelay.db (nothing is shared but the next hop)
#
# The S/MIME side is the test PKI of tests/smime/pki.sh: alice@example.com
# is our identity (her key imported on each node: keys are per node), bob
# @partner.example a partner under the same trust anchor.
#
# Harness: tests/integration/lib.sh (run_case, PASS/FAIL lines, free_port,
# wait_for, fail_because).  The topology's processes are not the per-case
# ones of lib.sh (run_case kills those after each case): they live in
# TOPO_PIDS and are stopped by the exit trap, with the PostgreSQL cluster.
#
# Entry points:
#   topo_db_choose MODE       sqlite | pg | auto (TOPO_DB, default auto):
#                             sets TOPO_DB; for pg starts the cluster; on
#                             failure sets TOPO_WHY and returns 1
#   topo_up [KEY=VALUE...]    write the configs (extra smrelayd.conf keys for
#                             both nodes), set up the store (and call
#                             topo_store_hook if the test defines it), start sink,
#                             nodes and HAProxy; HOP_A_PORT (if set before)
#                             is node A's next hop instead of NH_PORT
#   topo_ctl NODE ARGS...     smrelayctl on NODE's config
#   topo_node_start NODE      start (or restart) NODE, wait for its ports
#   topo_node_kill NODE       kill -9 NODE's parent and all its children
#   topo_node_stop NODE       SIGTERM; fails unless it exits 0 within 20 s
#   topo_send NODE|ha ...     one message through tests/scale/send.py
#   topo_health NODE          the /healthz answer (status line, then body)
set -u
TOP_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../integration/lib.sh
. "$TOP_SRC/tests/integration/lib.sh"
need_bins
for b in haproxy openssl; do
	have $b || { echo "SKIP all: $b not installed"; exit 77; }
done

# The PostgreSQL helpers, where they are (sourced here, at the top level,
# before our exit trap is set: topo_cleanup calls pg_cleanup).
TOPO_PGLIB=0
if [ -f "$TOP_SRC/tests/lib/pgcluster.sh" ]; then
	# shellcheck source=/dev/null
	. "$TOP_SRC/tests/lib/pgcluster.sh"
	TOPO_PGLIB=1
fi

T=$IT_TMP/topo
mkdir -p "$T"
chmod 755 "$T"
TOPO_PIDS=()
TOPO_PG=0
TOPO_DB=${TOPO_DB:-auto}
TOPO_WHY=""
SEND_PY=$TOP_SRC/tests/scale/send.py
HTTP_PY=$TOP_SRC/tests/metrics/httpc.py
declare -A NODE_PID NODE_PORT NODE_DPORT NODE_MPORT

# ---------------------------------------------------------------- cleanup

# topo_pid_tree PID: PID and every descendant of it (children first).
topo_pid_tree() {
	local p c
	# cat opens the files: mawk stops at one that is gone
	for c in $(cat /proc/[0-9]*/stat 2>/dev/null | awk -v pp="$1" '$4 == pp { print $1 }'); do
		topo_pid_tree "$c"
	done
	echo "$1"
}

topo_cleanup() {
	local rc=$? p n
	for p in "${TOPO_PIDS[@]+"${TOPO_PIDS[@]}"}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${TOPO_PIDS[@]+"${TOPO_PIDS[@]}"}"; do
		n=0
		while kill -0 "$p" 2>/dev/null && [ $n -lt 50 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	TOPO_PIDS=()
	[ $TOPO_PG = 1 ] && pg_cleanup >/dev/null 2>&1
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		topo_show_logs
	fi
	(exit $rc)
	it_cleanup
}
trap topo_cleanup EXIT

topo_untrack() {
	local p keep=()
	for p in "${TOPO_PIDS[@]+"${TOPO_PIDS[@]}"}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	TOPO_PIDS=("${keep[@]+"${keep[@]}"}")
}

# The tails of the topology's logs, for the .log file of a failed run.
topo_show_logs() {
	local f
	for f in "$T"/*.log; do
		[ -s "$f" ] || continue
		echo "#   --- topo/$(basename "$f") (last 30 lines)"
		tail -n 30 "$f" | sed 's/^/#   /'
	done
}

# ---------------------------------------------------------------- the store

# topo_db_choose MODE: sqlite, pg or auto (pg where tests/lib/pgcluster.sh
# and a smrelayd that takes `database = postgresql://` are there, else
# sqlite).
topo_db_choose() {
	local mode=$1 out
	TOPO_WHY=""
	[ "$mode" = sqlite ] && { TOPO_DB=sqlite; return 0; }
	if [ $TOPO_PGLIB = 0 ]; then
		TOPO_WHY="tests/lib/pgcluster.sh is missing (the PostgreSQL backend has not landed)"
	elif ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
		TOPO_WHY="PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin/initdb)"
	else
		TOPO_PG=1
		if ! pg_start "$IT_TMP/pg" >"$T/pg_start.log" 2>&1; then
			TOPO_WHY="pg_start failed: $(tail -n 2 "$T/pg_start.log" | tr '\n' ' ')"
		else
			# Does smrelayd take the key? (-n checks the config and
			# the database.)
			mkdir -p "$T/probe"
			printf 'listen = 127.0.0.1:1 tls=none\nrelay = 127.0.0.1:1\ndata_dir = %s\ndatabase = %s\n' \
				"$T/probe" "$PG_URL" >"$T/probe.conf"
			if out=$("$SMRELAYD" -c "$T/probe.conf" -n 2>&1); then
				TOPO_DB=pg
				return 0
			fi
			TOPO_WHY="smrelayd -n rejects 'database = postgresql://...': $(echo "$out" | tail -n 1)"
		fi
	fi
	if [ "$mode" = auto ]; then
		echo "# TOPO_DB=auto: sqlite, because $TOPO_WHY"
		TOPO_DB=sqlite
		return 0
	fi
	return 1
}

# ---------------------------------------------------------------- nodes

# topo_ctl NODE ARGS...: smrelayctl on NODE's config, stderr to ctl.log.
topo_ctl() {
	local node=$1
	shift
	echo "== [$node] smrelayctl $*" >>"$T/ctl.log"
	"$SMRELAYCTL" -c "$T/$node.conf" "$@" 2>>"$T/ctl.log"
}

# topo_conf NODE NEXTHOP_PORT [KEY=VALUE...]: NODE's smrelayd.conf.
topo_conf() {
	local node=$1 hop=$2 kv
	shift 2
	mkdir -p "$T/$node"
	chmod 755 "$T/$node"
	{
		echo "# node $node of the tests/scale topology ($IT_SCRIPT)"
		echo "listen = 127.0.0.1:${NODE_PORT[$node]} tls=none proxy=v2"
		echo "listen = 127.0.0.1:${NODE_DPORT[$node]} tls=none"
		echo "metrics_listen = 127.0.0.1:${NODE_MPORT[$node]}"
		echo "hostname = node$node.test"
		echo "relay = 127.0.0.1:$hop"
		echo "relay_tls = none"
		echo "data_dir = $T/$node"
		[ "$TOPO_DB" = pg ] && echo "database = $PG_URL"
		[ -n "${TOPO_PROCESSES:-}" ] && echo "processes = $TOPO_PROCESSES"
		for kv in "$@"; do
			echo "${kv%%=*} = ${kv#*=}"
		done
	} >"$T/$node.conf"
}

# topo_node_start NODE: start smrelayd for NODE (its log appended to
# NODE.log across restarts), wait until both its SMTP ports listen.
topo_node_start() {
	local node=$1 pid p
	echo "---- start $(date +%T.%N)" >>"$T/$node.log"
	"$SMRELAYD" -c "$T/$node.conf" -f -v >>"$T/$node.log" 2>&1 &
	pid=$!
	TOPO_PIDS+=("$pid")
	NODE_PID[$node]=$pid
	for p in "${NODE_PORT[$node]}" "${NODE_DPORT[$node]}"; do
		wait_listen "$p" "$pid" 30 || {
			fail_because "node $node not listening on $p: $(tail -n 3 "$T/$node.log" | tr '\n' ' ')"
			return 1
		}
	done
}

# topo_node_kill NODE: SIGKILL to the parent and every process under it at
# once (a node that dies whole, as with a power cut), then wait until its
# ports are free.
topo_node_kill() {
	local node=$1 pid=${NODE_PID[$1]} all p
	all=$(topo_pid_tree "$pid")
	# shellcheck disable=SC2086
	kill -KILL $all 2>/dev/null
	wait "$pid" 2>/dev/null
	topo_untrack "$pid"
	NODE_PID[$node]=""
	echo "---- kill -9 $(echo $all | tr '\n' ' ') $(date +%T.%N)" >>"$T/$node.log"
	for p in $all; do
		wait_for 10 eval "! kill -0 $p 2>/dev/null" || true
	done
	wait_for 10 port_free "${NODE_PORT[$node]}" &&
		wait_for 10 port_free "${NODE_DPORT[$node]}"
}

# topo_node_stop NODE: SIGTERM; it must exit 0 within 20 s.
topo_node_stop() {
	local node=$1 pid=${NODE_PID[$1]} rc
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	if ! wait_for 20 eval "! kill -0 $pid 2>/dev/null"; then
		kill -KILL "$pid" 2>/dev/null
		fail_because "node $node did not exit within 20 s of SIGTERM"
		return 1
	fi
	wait "$pid"
	rc=$?
	topo_untrack "$pid"
	NODE_PID[$node]=""
	[ $rc -eq 0 ] || fail_because "node $node exited with status $rc after SIGTERM (see topo/$node.log)"
}

# ---------------------------------------------------------------- peers

# topo_sink NAME PORT: `smrelayctl sink` on 127.0.0.1:PORT into the Maildir
# $T/NAME.
topo_sink() {
	local pid
	mkdir -p "$T/$1/new" "$T/$1/cur" "$T/$1/tmp"
	"$SMRELAYCTL" sink --listen "127.0.0.1:$2" --maildir "$T/$1" >"$T/$1.log" 2>&1 &
	pid=$!
	TOPO_PIDS+=("$pid")
	wait_listen "$2" "$pid" 15 ||
		{ fail_because "sink $1 did not start on $2: $(tail -n 3 "$T/$1.log" | tr '\n' ' ')"; return 1; }
}

# topo_haproxy: HAProxy in the foreground (-db, tracked) on HA_PORT in front
# of both nodes.  The health check is an SMTP one (220 banner, EHLO) behind
# a PROXY v2 LOCAL header (HAProxy sends it on checks of a send-proxy-v2
# server); a connection refused by a dead node is retried on the other
# (retries, redispatch).
topo_haproxy() {
	local pid
	cat >"$T/haproxy.cfg" <<EOC
global
	log stderr format short local0 info
	maxconn 500
defaults
	mode tcp
	log global
	option tcplog
	option redispatch
	retries 3
	timeout connect 2s
	timeout client 5m
	timeout server 5m
	timeout check 2s
frontend smtp
	bind 127.0.0.1:$HA_PORT
	default_backend nodes
backend nodes
	balance roundrobin
	option smtpchk EHLO haproxy.test
	default-server send-proxy-v2 check inter 1s fall 2 rise 2
	server A 127.0.0.1:${NODE_PORT[A]}
	server B 127.0.0.1:${NODE_PORT[B]}
EOC
	haproxy -c -f "$T/haproxy.cfg" >"$T/haproxy-check.log" 2>&1 ||
		{ fail_because "haproxy -c: $(tail -n 3 "$T/haproxy-check.log" | tr '\n' ' ')"; return 1; }
	haproxy -db -f "$T/haproxy.cfg" >"$T/haproxy.log" 2>&1 </dev/null &
	pid=$!
	TOPO_PIDS+=("$pid")
	HA_PID=$pid
	wait_listen "$HA_PORT" "$pid" 15 ||
		{ fail_because "haproxy did not start: $(tail -n 3 "$T/haproxy.log" | tr '\n' ' ')"; return 1; }
}

# topo_ha_up NODE: HAProxy's health check has NODE up (its log says so, or
# the first check passed: nothing logged as DOWN after the last UP).
topo_ha_up() {
	! awk -v s="nodes/$1 " 'index($0, s) { st = ($0 ~ / is DOWN/) ? "down" : ($0 ~ / is UP/ ? "up" : st) }
		END { exit st != "down" }' "$T/haproxy.log"
}

# ---------------------------------------------------------------- setup

# topo_pki: the S/MIME test PKI in $T/pki (alice-id.pem: alice's
# certificate, chain and key in one file, as `key import` takes it).
topo_pki() {
	P=$T/pki
	sh "$TOP_SRC/tests/smime/pki.sh" "$P" >"$T/pki.log" 2>&1 ||
		{ fail_because "pki.sh: $(tail -n 3 "$T/pki.log" | tr '\n' ' ')"; return 1; }
	cat "$P/alice.pem" "$P/chain.pem" "$P/alice.key" >"$P/alice-id.pem"
	chmod 644 "$P"/*.pem
}

# topo_store_init: the trust anchor in the store (once: the store is shared
# with PostgreSQL; on each node with SQLite) and alice's key on each node
# (the key file is per node).
topo_store_init() {
	local n
	for n in A B; do
		if [ "$n" = A ] || [ "$TOPO_DB" = sqlite ]; then
			topo_ctl $n trust import "$P/trust.pem" >/dev/null ||
				{ fail_because "[$n] trust import: $(tail -n 1 "$T/ctl.log")"; return 1; }
		fi
		topo_ctl $n key import "$P/alice-id.pem" >/dev/null ||
			{ fail_because "[$n] key import: $(tail -n 1 "$T/ctl.log")"; return 1; }
	done
}

# topo_up [KEY=VALUE...]: everything, in order: ports, PKI, configs, store,
# sink, nodes, HAProxy (until both nodes pass its health check).
topo_up() {
	local n
	CASE=setup
	for n in A B; do
		NODE_PORT[$n]=$(free_port)
		NODE_DPORT[$n]=$(free_port)
		NODE_MPORT[$n]=$(free_port)
		NODE_PID[$n]=""
	done
	HA_PORT=$(free_port)
	NH_PORT=$(free_port)
	SINK_DIR=$T/maildir
	topo_pki || return 1
	topo_conf A "${HOP_A_PORT:-$NH_PORT}" "$@" &&
		topo_conf B "$NH_PORT" "$@" || return 1
	topo_store_init || return 1
	# a test's own store content before the nodes start
	if declare -F topo_store_hook >/dev/null; then
		topo_store_hook || return 1
	fi
	topo_sink maildir "$NH_PORT" || return 1
	topo_node_start A && topo_node_start B || return 1
	topo_haproxy || return 1
	wait_for 15 topo_ha_up A && wait_for 15 topo_ha_up B ||
		{ fail_because "HAProxy does not see both nodes up"; return 1; }
	echo "# topology ($TOPO_DB): haproxy :$HA_PORT -> A :${NODE_PORT[A]} (direct :${NODE_DPORT[A]}, pid ${NODE_PID[A]}), B :${NODE_PORT[B]} (direct :${NODE_DPORT[B]}, pid ${NODE_PID[B]}) -> sink :$NH_PORT${HOP_A_PORT:+ (A: :$HOP_A_PORT)}"
}

# topo_setup_or_die [KEY=VALUE...]: topo_up, or a FAIL line and exit 1.
topo_setup_or_die() {
	if ! topo_up "$@"; then
		echo "FAIL setup: $IT_REASON"
		exit 1
	fi
}

# ---------------------------------------------------------------- traffic

# topo_send NODE|ha [send.py options]: one message to NODE's direct port or
# through HAProxy; the final reply in SENT_REPLY; 0 when it was 250.
topo_send() {
	local port
	case $1 in
	ha) port=$HA_PORT ;;
	*) port=${NODE_DPORT[$1]} ;;
	esac
	shift
	SENT_REPLY=$(timeout 60 "$PYTHON" "$SEND_PY" --port "$port" "$@" 2>>"$T/send.log")
}

# topo_find_id DIR... -- ID: the file under the Maildirs holding Message-ID ID.
topo_find_id() {
	local dirs=() id
	while [ "$1" != -- ]; do dirs+=("$1/new" "$1/cur"); shift; done
	id=$2
	grep -l -i -F -m1 "Message-ID: <$id>" -r "${dirs[@]}" 2>/dev/null | head -n 1
}

# topo_ids DIR...: the Message-IDs at the sink(s), one line per copy.
topo_ids() {
	local d dirs=()
	for d in "$@"; do dirs+=("$d/new" "$d/cur"); done
	find "${dirs[@]}" -type f -exec grep -h -i -m1 '^Message-ID:' {} + 2>/dev/null |
		tr -d '\r' | awk '{ print $2 }'
}

# toptype FILE: the first Content-Type of FILE's header, lower case, no
# parameters.
toptype() {
	awk 'BEGIN { IGNORECASE = 1 } { sub(/\r$/, "") } /^$/ { exit }
	     tolower($0) ~ /^content-type:/ { v = tolower($0); sub(/^content-type:[ \t]*/, "", v);
	         sub(/;.*/, "", v); print v; exit }' "$1"
}

# topo_health NODE: GET /healthz on NODE: the status code, a newline, the body.
topo_health() {
	"$PYTHON" "$HTTP_PY" get "http://127.0.0.1:${NODE_MPORT[$1]}/healthz" 2>/dev/null
}

# topo_queue_len NODE: the number of entries in NODE's spool (-1: failed).
topo_queue_len() {
	local out
	out=$(topo_ctl "$1" queue list) || { echo -1; return; }
	if [ -z "$out" ]; then echo 0; else printf '%s\n' "$out" | wc -l; fi
}

# topo_unsigned TAG: the messages at the sink whose Message-ID holds
# ".TAG@" and that are not multipart/signed, counted in TOPO_UNSIGNED (each
# named on a "# unsigned:" line); TOPO_SIGNED_ONE: one that is.
topo_unsigned() {
	local f
	TOPO_UNSIGNED=0
	TOPO_SIGNED_ONE=""
	for f in $(grep -l -r -F ".$1@" "$T/maildir/new" "$T/maildir/cur"); do
		if [ "$(toptype "$f")" != multipart/signed ]; then
			TOPO_UNSIGNED=$((TOPO_UNSIGNED + 1))
			echo "# unsigned: $f"
		else
			TOPO_SIGNED_ONE=$f
		fi
	done
}

# topo_accepted FILE: how many messages the load client
# (tests/queue/crash_client.py --progress FILE) got 250 for so far.
topo_accepted() {
	local a
	{ read -r a _ <"$1"; } 2>/dev/null
	echo "${a:-0}"
}

# now_s: the time in seconds, with fractions.
now_s() { date +%s.%N; }
# secs_since T0: seconds since T0, 3 decimals.
secs_since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.3f", b - a }'; }

# topo_poll NODE WANT SECS FROM TO: send FROM -> TO messages (new
# Message-IDs) to NODE's direct port, one after the other, until one comes
# out as WANT: a top Content-Type at the sink (text/plain,
# multipart/signed, application/pkcs7-mime), or "refused" (a 4xx or 5xx
# reply).  Fails when a message sent more than SECS after the call still
# came out otherwise.  POLL_SECS: seconds from the call to the sending of
# the first message that came out as WANT; POLL_FILE: that message at the
# sink; POLL_N: messages sent.
POLL_SEQ=0
topo_poll() {
	local node=$1 want=$2 secs=$3 from=$4 to=$5 t0 el id rc got f
	t0=$(now_s)
	POLL_N=0
	POLL_FILE=""
	while :; do
		POLL_SEQ=$((POLL_SEQ + 1))
		POLL_N=$((POLL_N + 1))
		id="poll-$POLL_SEQ.$$@scale.test"
		el=$(secs_since "$t0")
		topo_send "$node" --sender "$from" --rcpt "$to" --id "$id"
		rc=$?
		echo "poll $node $id at +$el s: $SENT_REPLY" >>"$T/poll.log"
		f=""
		if [[ $SENT_REPLY =~ ^[45] ]]; then
			got="refused ($SENT_REPLY)"
			[ "$want" = refused ] && got=refused
		elif [ $rc -ne 0 ]; then
			got="no answer ($SENT_REPLY)"
		elif ! wait_for 10 eval 'f=$(topo_find_id "$T/maildir" -- "$id") && [ -n "$f" ]'; then
			got="accepted but not at the sink"
		else
			got=$(toptype "$f")
			got=${got:-text/plain}
		fi
		if [ "$got" = "$want" ]; then
			POLL_SECS=$el
			POLL_FILE=$f
			return 0
		fi
		if awk -v e="$el" -v s="$secs" 'BEGIN { exit !(e > s) }'; then
			fail_because "node $node: a message sent $el s after the start (the ${POLL_N}th) came out as '$got', not '$want'"
			return 1
		fi
	done
}
