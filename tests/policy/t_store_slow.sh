#!/bin/bash
# tests/policy/t_store_slow.sh: the event loop never waits on the store
# (daemon/smime/storeq.c).  A python process takes an exclusive lock on the
# SQLite store (locking_mode=EXCLUSIVE, BEGIN EXCLUSIVE and a write: readers
# and writers of other connections wait, then fail), as a slow or lost
# PostgreSQL would: sessions keep answering at once, signed mail is verified
# and relayed on the cached policy, the node says it is degraded (log,
# smrelay_store_up, /healthz), the signer harvested meanwhile is written
# once the lock is gone, and the node says it is back.
# Harness: tests/integration/lib.sh; test PKI: tests/smime/pki.sh.
set -u
TOP_SRC=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../integration/lib.sh
. "$TOP_SRC/tests/integration/lib.sh"
need_bins
for b in swaks openssl; do
	have $b || { echo "SKIP all: $b not installed"; exit 77; }
done

P=$IT_TMP/spki
BODY="Signed while the store was locked."
if ! sh "$TOP_SRC/tests/smime/pki.sh" "$P" >"$IT_TMP/spki.log" 2>&1; then
	echo "FAIL setup: pki.sh: $(tail -n 3 "$IT_TMP/spki.log" | tr '\n' ' ')"
	exit 1
fi

ctl() { "$SMRELAYCTL" -c "$CONF" "$@" 2>>"$CASE_DIR/ctl.log"; }

# http PATH: GET it from the metrics listener; status line then body in OUT.
http() {
	OUT=$("$PYTHON" "$TOP_SRC/tests/metrics/httpc.py" get \
		"http://127.0.0.1:$MPORT$1" 5 2>&1)
}

# lock_db MODE: hold a lock on the store until $CASE_DIR/release exists (at
# most 120 s); returns when it is taken.  MODE write: BEGIN EXCLUSIVE (other
# writers wait, then fail; readers go on, SQLite's WAL).  MODE read: the
# WAL-index read-mark locks of smrelay.db-shm (bytes 123..127, the file
# format of https://sqlite.org/walformat.html), so that no connection can
# begin a read: what a lost database server looks like to its clients.
lock_db() {
	rm -f "$CASE_DIR/locked" "$CASE_DIR/release"
	bg locker "$PYTHON" -c '
import fcntl, os, sqlite3, sys, time
mode, db, d = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "write":
    c = sqlite3.connect(db, isolation_level=None, timeout=30)
    c.execute("BEGIN EXCLUSIVE")
else:
    fd = os.open(db + "-shm", os.O_RDWR)
    end = time.time() + 30
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 123, os.SEEK_SET)
            break
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.01)
open(os.path.join(d, "locked"), "w").close()
end = time.time() + 120
while time.time() < end and not os.path.exists(os.path.join(d, "release")):
    time.sleep(0.05)
' "$1" "$CASE_DIR/data/smrelay.db" "$CASE_DIR"
	LOCKER_PID=$BG_PID
	wait_for 40 test -e "$CASE_DIR/locked" ||
		{ fail_because "the store could not be locked: $(tail -n 2 "$CASE_DIR/locker.log" | tr '\n' ' ')"; return 1; }
}

unlock_db() {
	touch "$CASE_DIR/release"
	wait "$LOCKER_PID" 2>/dev/null
	untrack "$LOCKER_PID"
}

# ms CMD...: run CMD, its wall time in milliseconds in MS.
ms() {
	local t0 rc
	t0=$(date +%s%N)
	"$@"
	rc=$?
	MS=$((($(date +%s%N) - t0) / 1000000))
	return $rc
}

log_has() { grep -q -E "$1" "$CASE_DIR/smrelayd.log"; }

case_locked() {
	local fp d=$CASE_DIR
	start_sink || return 1
	it_certs || return 1
	PORT=$(free_port)
	MPORT=$(free_port)
	CONF=$d/smrelayd.conf
	mkdir -p "$d/data"
	write_conf "$CONF" "metrics_listen=127.0.0.1:$MPORT"
	ctl trust import "$P/trust.pem" >/dev/null &&
		ctl key import "$P/alice.p12" >/dev/null &&
		ctl policy add --recipient alice@example.com --action verify >/dev/null ||
		{ fail_because "store setup: $(tail -n 1 "$d/ctl.log")"; return 1; }
	fp=$(openssl x509 -in "$P/bob.pem" -noout -fingerprint -sha256 | cut -d= -f2 |
		tr -d : | tr 'A-F' 'a-f')
	start_smrelayd "$CONF" "$PORT" "$MPORT" || return 1
	wait_for 10 log_has 'gateway: 1 policy rule' ||
		{ fail_because "no policy loaded at start"; return 1; }
	printf 'Content-Type: text/plain; charset=us-ascii\n\nHello Alice,\n\n%s\n' "$BODY" >"$d/ent.txt"
	openssl cms -sign -in "$d/ent.txt" -signer "$P/bob.pem" -inkey "$P/bob.key" \
		-certfile "$P/chain.pem" -from 'Bob <bob@partner.example>' \
		-to alice@example.com -subject 'signed by bob' >"$d/in.eml" 2>"$d/sign.err" ||
		{ fail_because "openssl cms -sign: $(tail -n 1 "$d/sign.err")"; return 1; }

	# 1. writers wait: the loop answers, the signer is harvested later
	lock_db write || return 1
	ms chat expect:220 line:"EHLO client.test" expect:250 line:QUIT expect:221 ||
		{ unlock_db; return 1; }
	[ "$MS" -lt 2000 ] ||
		{ fail_because "EHLO to QUIT took $MS ms with the store locked"; unlock_db; return 1; }
	ms swaks_send --from bob@partner.example --to alice@example.com \
		--data "@$d/in.eml" || { unlock_db; return 1; }
	[ "$MS" -lt 5000 ] ||
		{ fail_because "a transaction took $MS ms with the store locked"; unlock_db; return 1; }
	wait_delivered 1 || { unlock_db; return 1; }
	F=$(sink_file_for alice@example.com) &&
		assert_header "$F" Authentication-Results 'smime=pass' ||
		{ unlock_db; return 1; }
	ms chat expect:220 line:"EHLO client.test" expect:250 line:QUIT expect:221 ||
		{ unlock_db; return 1; }
	[ "$MS" -lt 2000 ] ||
		{ fail_because "EHLO to QUIT took $MS ms while the harvest waits"; unlock_db; return 1; }
	! ctl cert list | grep -q -i "$fp" ||
		{ fail_because "bob's certificate written through the lock"; unlock_db; return 1; }
	wait_for 40 log_has 'harvest: 1 certificate\(s\) not stored yet' ||
		{ fail_because "no 'not stored yet' line for the harvest within 40 s"; unlock_db; return 1; }
	unlock_db
	wait_for 20 sh -c "'$SMRELAYCTL' -c '$CONF' cert list 2>/dev/null | grep -q -i '$fp'" ||
		{ fail_because "bob's harvested certificate not in the store after the unlock"; return 1; }
	log_has 'harvest: stored certificate id=' ||
		{ fail_because "no 'stored certificate' line"; return 1; }

	# 2. nothing can be read: degraded, the loop still answers
	lock_db read || return 1
	wait_for 40 log_has 'store unreachable: serving cached policy and certificates since' ||
		{ fail_because "no 'store unreachable' line within 40 s"; unlock_db; return 1; }
	ms chat expect:220 line:"EHLO client.test" expect:250 line:QUIT expect:221 ||
		{ unlock_db; return 1; }
	[ "$MS" -lt 2000 ] ||
		{ fail_because "EHLO to QUIT took $MS ms while degraded"; unlock_db; return 1; }
	http /healthz
	[[ $OUT == 200* ]] && [[ $OUT == *degraded* ]] ||
		{ fail_because "/healthz while degraded: $OUT"; unlock_db; return 1; }
	http /metrics
	printf '%s\n' "$OUT" | grep -q '^smrelay_store_up 0' ||
		{ fail_because "smrelay_store_up is not 0 while degraded"; unlock_db; return 1; }
	# (a message now would wait on the worker threads' own reads, OCSP
	# answers per chain: not the loop's, and not yet cached)
	unlock_db
	wait_for 40 log_has 'store reachable again' ||
		{ fail_because "no 'store reachable again' line within 40 s of the unlock"; return 1; }
	http /healthz
	[ "$OUT" = "$(printf '200\nok')" ] ||
		{ fail_because "/healthz after the store came back: $OUT"; return 1; }
	http /metrics
	printf '%s\n' "$OUT" | grep -q '^smrelay_store_up 1' ||
		fail_because "smrelay_store_up is not 1 after the store came back"
}

run_case store_locked_loop_answers case_locked
it_finish
