#!/bin/bash
# t_db_pg.sh: the PostgreSQL backend of store/db.h (store/db_pg.c) against a
# throwaway cluster (tests/lib/pgcluster.sh): test_db's cases with PG_URL,
# then the server taken away under two open connections, once by SIGKILL
# (a crash) and once by a fast shutdown, and started again: each call fails
# with DB_ERR_CONNECTION meanwhile, nothing crashes, and afterwards the same
# connections work, LISTEN included.  Prints `PASS name` or `FAIL name:
# reason` per case; exits 1 if any failed, 77 without PostgreSQL.
set -u

srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${abs_top_builddir:-$PWD}
TEST_DB=${TEST_DB:-$BUILD/tests/store/test_db}
# shellcheck source=../lib/pgcluster.sh
. "$srcdir/tests/lib/pgcluster.sh"

if ! pg_bindir >/dev/null; then
	echo "SKIP t_db_pg: no PostgreSQL server binaries"
	exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/smrelay-t_db_pg.XXXXXX") || exit 99
chmod 755 "$T"		# the cluster's user (as root: smrelay) gets in
COPROC_PID=""
cleanup() {
	[ -n "$COPROC_PID" ] && kill "$COPROC_PID" 2>/dev/null
	pg_cleanup
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

FAILS=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; FAILS=$((FAILS + 1)); }

if ! pg_start "$T/pg" 2>"$T/pg_start.err"; then
	echo "FAIL pg_start: $(tr '\n' ' ' <"$T/pg_start.err")"
	exit 1
fi

# the common cases and PostgreSQL's own, on a database of their own
if URL=$(pg_createdb t_db 2>"$T/createdb.err"); then
	if PG_URL=$URL "$TEST_DB" >"$T/test_db.out" 2>&1; then
		pass cases
	else
		fail cases "$(grep -m 5 FAIL "$T/test_db.out" | tr '\n' ' ')"
	fi
else
	fail cases "pg_createdb: $(cat "$T/createdb.err")"
fi

# expect LINE: the next line of test_db crash is LINE (30 s at most)
expect() {
	local line
	if ! IFS= read -r -t 30 -u "${TD[0]}" line; then
		echo "no '$1' from test_db (exited or hung)"
		return 1
	fi
	if [ "$line" != "$1" ]; then
		echo "'$line' where '$1' was expected"
		return 1
	fi
}

# the server taken away twice under open connections
coproc TD { PG_URL=$PG_URL exec "$TEST_DB" crash 2 2>"$T/crash.err"; }
COPROC_PID=$TD_PID
ok=1
for how in pg_kill pg_stop; do
	if ! why=$(expect READY); then ok=0; break; fi
	if ! $how 2>"$T/$how.err"; then
		why="$how failed: $(cat "$T/$how.err")"; ok=0; break
	fi
	echo gone >&"${TD[1]}"
	if ! why=$(expect DOWN); then ok=0; break; fi
	if ! pg_restart 2>"$T/restart.err"; then
		why="pg_restart: $(cat "$T/restart.err")"; ok=0; break
	fi
	echo back >&"${TD[1]}"
done
if [ $ok = 1 ] && ! why=$(expect OK); then
	ok=0
fi
wait "$COPROC_PID" 2>/dev/null
rc=$?
COPROC_PID=""
if [ $ok = 1 ] && [ $rc = 0 ]; then
	pass server_lost
else
	fail server_lost "${why:-exit $rc}; $(grep -m 5 -E 'FAIL|fatal|ERROR|Sanitizer' "$T/crash.err" | tr '\n' ' ')"
fi

[ $FAILS = 0 ]
