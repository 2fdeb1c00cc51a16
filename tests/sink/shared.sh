# shellcheck shell=bash
# tests/sink/shared.sh: peers started once for a whole test script, on top
# of the integration harness (source tests/integration/lib.sh first).
# Peers started once for a whole script: shared_keep takes them out of
# run_case's per-case cleanup; the last case stops them with shared_stop
# (each must exit 0 on SIGTERM), and the EXIT trap kills what is left.
SHARED_PIDS=()
shared_keep() {
	local p
	for p in "$@"; do
		untrack "$p"
		SHARED_PIDS+=("$p")
	done
}

sink_cleanup() {
	local rc=$? p
	for p in "${SHARED_PIDS[@]+"${SHARED_PIDS[@]}"}"; do
		kill -KILL "$p" 2>/dev/null
	done
	(exit $rc)
	it_cleanup
}
trap sink_cleanup EXIT

# shared_stop: SIGTERM every shared peer; each must exit 0 within 20 s.
shared_stop() {
	local p n rc
	for p in "${SHARED_PIDS[@]+"${SHARED_PIDS[@]}"}"; do
		kill -TERM "$p" 2>/dev/null
		n=0
		while kill -0 "$p" 2>/dev/null; do
			n=$((n + 1))
			[ $n -gt 200 ] && { fail_because "pid $p did not exit within 20 s of SIGTERM"; return 1; }
			sleep 0.1
		done
		wait "$p"
		rc=$?
		[ $rc -eq 0 ] || { fail_because "pid $p exited $rc after SIGTERM (sanitizer report? see $PEERS_DIR)"; return 1; }
	done
	SHARED_PIDS=()
}
