# shellcheck shell=bash
# tests/lib/pgcluster.sh: a throwaway PostgreSQL cluster for tests, sourced
# by bash scripts (the Debian `postgresql` package's server binaries).
#
#   pg_start DIR      initdb a cluster in DIR (created; must not hold one
#                     already), listening on 127.0.0.1 on a free port and on
#                     a unix socket in DIR, fsync off, small buffers,
#                     scram-sha-256 passwords over TCP; a role and database
#                     "smrelay".  Exports PG_URL
#                     (postgresql://smrelay:PASSWORD@127.0.0.1:PORT/smrelay),
#                     PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE (for
#                     psql).  Returns non-zero with the reason on stderr.
#   pg_createdb NAME  a new empty database owned by smrelay: prints its URL
#   pg_stop           fast shutdown, waits for it
#   pg_kill           SIGKILL to the server and its backends: a crash
#   pg_restart        start again on the same port with the same data
#                     (after pg_stop or pg_kill; stops it first if running)
#   pg_running        whether the server answers
#   pg_cleanup        stop whatever runs and remove DIR (for an EXIT trap)
#
# PostgreSQL refuses to run as root: when the caller is root the server runs
# as the `smrelay` system user (contrib/install-deps.sh creates it) or else
# `nobody`, so DIR's parent directories must be searchable by that user.
# Every wait is a bounded poll (PG_WAIT seconds, default 30).
# shellcheck disable=SC2119

PG_DIR=""
PG_BIN=""
PG_OSUSER=""
PG_ADMIN=pgadmin
PG_WAIT=${PG_WAIT:-30}

# pg_bindir: print the newest /usr/lib/postgresql/*/bin that has initdb
# (or the directory of initdb in PATH).
pg_bindir() {
	local d best=""
	while IFS= read -r d; do
		[ -x "$d/initdb" ] && best=$d
	done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
	if [ -z "$best" ] && command -v initdb >/dev/null 2>&1; then
		best=$(dirname "$(command -v initdb)")
	fi
	[ -n "$best" ] || return 1
	echo "$best"
}

# pg_as CMD...: run CMD as the cluster's owner, in DIR, without the
# caller's PG* variables.
pg_as() {
	local envs=(env -u PGHOST -u PGPORT -u PGUSER -u PGPASSWORD
	    -u PGDATABASE -u PGSERVICE -u PGOPTIONS "HOME=$PG_DIR" LC_ALL=C)
	if [ "$(id -u)" = 0 ]; then
		(cd "$PG_DIR" && setpriv --reuid="$PG_OSUSER" \
		    --regid="$(id -g "$PG_OSUSER")" --clear-groups -- \
		    "${envs[@]}" "$@")
	else
		(cd "$PG_DIR" && "${envs[@]}" "$@")
	fi
}

# pg_free_port: a TCP port free on 127.0.0.1 right now.
# shellcheck source=tests/lib/free_port.sh
. "$(dirname "${BASH_SOURCE[0]}")/free_port.sh"
pg_free_port() {
	free_port
}

# pg_postmaster_pid: the server's pid from postmaster.pid, if it runs.
pg_postmaster_pid() {
	local pid
	[ -n "$PG_DIR" ] && [ -r "$PG_DIR/data/postmaster.pid" ] || return 1
	pid=$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null)
	[[ $pid =~ ^[0-9]+$ ]] && pg_alive "$pid" || return 1
	echo "$pid"
}

# pg_psql_admin [PSQL-ARGS]: run psql as the superuser over the unix
# socket (SQL on stdin).
# shellcheck disable=SC2120
pg_psql_admin() {
	pg_as "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" \
	    -p "$PGPORT" -U "$PG_ADMIN" -d postgres "$@"
}

# pg_running: the server accepts connections.
pg_running() {
	[ -n "$PG_DIR" ] && "$PG_BIN/pg_isready" -q -h 127.0.0.1 \
	    -p "$PGPORT" -t 2 >/dev/null 2>&1
}

# pg_wait_ready: poll until the server accepts connections (bounded), or
# it died.
pg_wait_ready() {
	local n=0
	while ! pg_running; do
		n=$((n + 1))
		if [ $n -gt $((PG_WAIT * 10)) ]; then
			echo "pgcluster: server not ready after ${PG_WAIT}s:" \
			    "$(tail -n 3 "$PG_DIR/pg.log" 2>/dev/null | tr '\n' ' ')" >&2
			return 1
		fi
		# after a second, a server that has no pid file has died
		if [ $n -gt 10 ] && ! pg_postmaster_pid >/dev/null; then
			echo "pgcluster: server exited:" \
			    "$(tail -n 3 "$PG_DIR/pg.log" 2>/dev/null | tr '\n' ' ')" >&2
			return 1
		fi
		sleep 0.1
	done
}

# pg_launch: start the server on PGPORT in the background and wait for it.
pg_launch() {
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/pg.log" \
	    -o "-p $PGPORT" -W start >/dev/null || return 1
	pg_wait_ready
}

pg_start() {
	local dir=$1 try conf
	if [ -z "$dir" ]; then
		echo "pgcluster: pg_start DIR" >&2
		return 1
	fi
	PG_BIN=$(pg_bindir) || {
		echo "pgcluster: no PostgreSQL server binaries (initdb)" >&2
		return 1
	}
	if [ -e "$dir/data" ]; then
		echo "pgcluster: $dir/data exists already" >&2
		return 1
	fi
	mkdir -p "$dir" || return 1
	PG_DIR=$(cd "$dir" && pwd)
	if [ "$(id -u)" = 0 ]; then
		if id smrelay >/dev/null 2>&1; then
			PG_OSUSER=smrelay
		else
			PG_OSUSER=nobody
		fi
		chown "$PG_OSUSER:$(id -g "$PG_OSUSER")" "$PG_DIR" || return 1
		chmod 700 "$PG_DIR"
		if ! pg_as test -w "$PG_DIR"; then
			echo "pgcluster: user $PG_OSUSER cannot reach $PG_DIR" \
			    "(make its parents searchable)" >&2
			return 1
		fi
	else
		PG_OSUSER=$(id -un)
	fi

	PGPASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	[ ${#PGPASSWORD} = 32 ] || return 1
	# the superuser's password: only trust over the socket is used
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$PG_DIR/adminpw"
	[ "$(id -u)" = 0 ] && chown "$PG_OSUSER" "$PG_DIR/adminpw"
	if ! pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U "$PG_ADMIN" \
	    --pwfile="$PG_DIR/adminpw" -E UTF8 --locale=C \
	    --auth-local=trust --auth-host=scram-sha-256 -N \
	    >"$PG_DIR/initdb.log" 2>&1; then
		echo "pgcluster: initdb failed: $(tail -n 3 "$PG_DIR/initdb.log" |
		    tr '\n' ' ')" >&2
		return 1
	fi
	conf=$PG_DIR/data/postgresql.conf
	cat >>"$conf" <<-EOF
	# pgcluster.sh: a throwaway test cluster
	listen_addresses = '127.0.0.1'
	unix_socket_directories = '$PG_DIR'
	fsync = off
	# synchronous_commit stays on: what a test saw committed survives pg_kill
	full_page_writes = off
	shared_buffers = 16MB
	max_connections = 60
	password_encryption = 'scram-sha-256'
	log_min_messages = warning
	log_connections = off
	EOF
	# the port can be taken between free_port and the server's bind
	for try in 1 2 3 4 5; do
		PGPORT=$(pg_free_port) || return 1
		if pg_launch 2>"$PG_DIR/launch.err"; then
			break
		fi
		if ! grep -q 'Address already in use' "$PG_DIR/pg.log" \
		    2>/dev/null || [ $try = 5 ]; then
			cat "$PG_DIR/launch.err" >&2
			return 1
		fi
		: >"$PG_DIR/pg.log"
	done
	echo "port = $PGPORT" >>"$conf"
	# the role's password goes in through stdin, not the command line
	if ! printf 'CREATE ROLE smrelay LOGIN PASSWORD %s;\nCREATE DATABASE smrelay OWNER smrelay;\n' \
	    "'$PGPASSWORD'" | pg_psql_admin >"$PG_DIR/setup.log" 2>&1; then
		echo "pgcluster: setup failed: $(tail -n 3 "$PG_DIR/setup.log")" >&2
		return 1
	fi
	export PGHOST=127.0.0.1 PGPORT PGUSER=smrelay PGPASSWORD \
	    PGDATABASE=smrelay PGCONNECT_TIMEOUT=5
	export PG_URL="postgresql://smrelay:$PGPASSWORD@127.0.0.1:$PGPORT/smrelay"
}

pg_createdb() {
	local name=$1
	if ! [[ $name =~ ^[a-z_][a-z0-9_]*$ ]]; then
		echo "pgcluster: pg_createdb: bad database name '$name'" >&2
		return 1
	fi
	echo "CREATE DATABASE $name OWNER smrelay;" | pg_psql_admin >&2 ||
		return 1
	echo "postgresql://smrelay:$PGPASSWORD@127.0.0.1:$PGPORT/$name"
}

pg_stop() {
	pg_postmaster_pid >/dev/null || return 0
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t "$PG_WAIT" \
	    stop >/dev/null
}

# pg_alive PID: PID runs (a zombie does not count).
pg_alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	[[ $st =~ ^[0-9]+\ \(.*\)\ ([A-Za-z]) ]] || return 1
	[ "${BASH_REMATCH[1]}" != Z ]
}

# pg_kill: what a crash of the machine's PostgreSQL looks like to clients:
# the postmaster and every backend SIGKILLed (by pid), nothing flushed.
pg_kill() {
	local pid kids k n=0 alive
	pid=$(pg_postmaster_pid) || return 0
	kids=$(ps -o pid= --ppid "$pid" 2>/dev/null)
	kill -KILL "$pid" 2>/dev/null
	for k in $kids; do
		kill -KILL "$k" 2>/dev/null
	done
	while :; do
		alive=0
		for k in $pid $kids; do
			pg_alive "$k" && alive=1
		done
		if [ $alive = 0 ]; then
			# the server refuses to start while its old pid is a
			# zombie nobody has reaped yet: wait a little, then
			# take its pid file away
			n=0
			while kill -0 "$pid" 2>/dev/null && [ $n -lt 30 ]; do
				n=$((n + 1))
				sleep 0.1
			done
			kill -0 "$pid" 2>/dev/null &&
				rm -f "$PG_DIR/data/postmaster.pid"
			return 0
		fi
		n=$((n + 1))
		if [ $n -gt $((PG_WAIT * 10)) ]; then
			echo "pgcluster: server still there after SIGKILL" >&2
			return 1
		fi
		sleep 0.1
	done
}

pg_restart() {
	pg_stop || return 1
	pg_launch
}

pg_cleanup() {
	[ -n "$PG_DIR" ] || return 0
	if pg_postmaster_pid >/dev/null; then
		pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w \
		    -t 10 stop >/dev/null 2>&1 || pg_kill
	fi
	rm -rf "$PG_DIR"
	PG_DIR=""
}
