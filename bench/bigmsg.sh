#!/bin/bash
# bench/bigmsg.sh: peak memory of smrelayd for big messages sent at once
# (issue 15; see docs/BENCHMARKS.md).  For each mode (sign+encrypt from
# alice@example.com to bob@partner.example; decrypt+verify of a message
# signed by bob and encrypted to alice with openssl cms) and each count N in
# COUNTS, a fresh smrelayd (data_dir on disk, Postfix's smtp-sink as the
# next hop: it has no SIZE limit, and the result is 1.4 x the message) gets
# N transactions of a SIZE-byte message at once; printed: the VmHWM of
# smrelayd-net (sessions and S/MIME workers) before and after, the growth
# per message in flight, and the wall time until every message was at the
# sink.
#
# Environment: SIZE (50000000), COUNTS ("1 10 50"), MODES ("signenc
# decver"), SMRELAYD / SMRELAYCTL (default: build/ of this tree).  Uses the
# harness of tests/integration/lib.sh and tests/smime/pki.sh; needs
# python3 and openssl.  Disk: about 6 x SIZE per message in flight.
set -u
TOP_SRC=$(cd "$(dirname "$0")/.." && pwd)
abs_top_builddir=${abs_top_builddir:-$TOP_SRC/build}
IT_TIMEOUT=${IT_TIMEOUT:-7200}
# shellcheck source=../tests/integration/lib.sh
. "$TOP_SRC/tests/integration/lib.sh"
need_bins
SIZE=${SIZE:-50000000}
COUNTS=${COUNTS:-"1 10 50"}
MODES=${MODES:-"signenc decver"}
P=$IT_TMP/spki
sh "$TOP_SRC/tests/smime/pki.sh" "$P" >"$IT_TMP/spki.log" 2>&1 || { echo "pki.sh failed"; exit 1; }

# The two messages, made once.
CASE_DIR=$IT_TMP
"$PYTHON" "$IT_PY/bigmsg.py" plain --size "$SIZE" --from alice@example.com \
	--to bob@partner.example "$IT_TMP/out.wire" || exit 1
"$PYTHON" "$IT_PY/bigmsg.py" entity --size "$SIZE" "$IT_TMP/ent" &&
	openssl cms -sign -binary -in "$IT_TMP/ent" -signer "$P/bob.pem" -inkey "$P/bob.key" \
		-certfile "$P/int.pem" -out "$IT_TMP/signed" &&
	openssl cms -encrypt -binary -stream -aes256 -in "$IT_TMP/signed" \
		-out "$IT_TMP/env" "$P/alice.pem" || exit 1
{ printf 'From: <bob@partner.example>\r\nTo: <alice@example.com>\r\nSubject: big\r\n'
  cat "$IT_TMP/env"; } >"$IT_TMP/in.eml"
"$PYTHON" "$IT_PY/bigmsg.py" wire "$IT_TMP/in.eml" "$IT_TMP/in.wire" || exit 1
rm -f "$IT_TMP/ent" "$IT_TMP/signed" "$IT_TMP/env" "$IT_TMP/in.eml"

ctl() { "$SMRELAYCTL" -c "$CONF" "$@" >/dev/null 2>>"$CASE_DIR/ctl.log"; }

# run MODE N: one measurement.
run() {
	local mode=$1 n=$2 from to wire base peak t0 t1 i pids=() bad=0
	start_smtp_sink || return 1     # no SIZE limit: the result is 1.4 x
	it_certs || return 1
	PORT=$(free_port)
	CONF=$CASE_DIR/smrelayd.conf
	mkdir -p "$CASE_DIR/data"
	write_conf "$CONF" log_level=info max_message_size=500M
	ctl trust import "$P/trust.pem" && ctl key import "$P/alice.p12" &&
		ctl cert import "$P/bob.pem" || return 1
	if [ "$mode" = signenc ]; then
		ctl policy add --sender @example.com --recipient @partner.example --action sign,encrypt
		from=alice@example.com to=bob@partner.example wire=$IT_TMP/out.wire
	else
		ctl policy add --recipient alice@example.com --action decrypt,verify
		from=bob@partner.example to=alice@example.com wire=$IT_TMP/in.wire
	fi
	start_smrelayd "$CONF" "$PORT" || return 1
	NET=$(smrelayd_child "$SMRELAYD_PID" smrelayd-net) || NET=$SMRELAYD_PID
	base=$(rss_kb "$NET" VmHWM)
	t0=$(date +%s.%N)
	for i in $(seq 1 "$n"); do
		timeout 3600 "$PYTHON" "$IT_PY/chat.py" --timeout 600 127.0.0.1 "$PORT" expect:220 \
			line:"EHLO bench.test" expect:250 line:"MAIL FROM:<$from>" expect:250 \
			line:"RCPT TO:<$to>" expect:250 line:DATA expect:354 \
			sendfile:"$wire" expect:250 line:QUIT expect:221 2>/dev/null &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || bad=$((bad + 1)); done
	wait_for 600 _count_ge "$n"
	t1=$(date +%s.%N)
	peak=$(rss_kb "$NET" VmHWM)
	printf '%-8s N=%-3d size=%d  VmHWM %6d -> %7d KiB  growth/msg %6d KiB  wall %6.1f s  failed %d  at sink %d\n' \
		"$mode" "$n" "$SIZE" "$base" "$peak" $(((peak - base) / n)) \
		"$(echo "$t1 - $t0" | bc)" "$bad" "$(sink_count)"
	stop_smrelayd
}

for mode in $MODES; do
	for n in $COUNTS; do
		CASE=$mode.$n
		CASE_DIR=$IT_TMP/$mode.$n
		mkdir -p "$CASE_DIR"
		run "$mode" "$n" || echo "$mode N=$n: failed (logs in $CASE_DIR)"
		it_kill_all
		rm -rf "$CASE_DIR/maildir" "$CASE_DIR/data"
	done
done
