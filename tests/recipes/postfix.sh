# shellcheck shell=bash
# tests/recipes/postfix.sh: private Postfix instances for the recipe tests,
# sourced after tests/integration/lib.sh.  Each instance has its own
# config_directory, queue_directory and data_directory under $IT_TMP, listens
# only on the loopback ports it is given, logs to its own file, and is
# stopped by the harness's exit trap.  The system's Postfix (its
# /etc/postfix, port 25) is never read, touched or started.

PF_DIRS=()

# pf_have: the Postfix programs are installed (Debian package postfix) and
# we are root (postfix start needs it; the CI runs the tests as root).
pf_have() {
	[ "$(id -u)" = 0 ] && [ -x /usr/sbin/postfix ] && [ -x /usr/sbin/postconf ] &&
		[ -d /usr/lib/postfix/sbin ] && getent passwd postfix >/dev/null &&
		getent group postdrop >/dev/null
}

# pf_init NAME: write a fresh instance in $IT_TMP/pf-NAME (PF_DIR): main.cf
# for a loopback relay with no local delivery, and a master.cf with the
# internal services only.  Add listeners with pf_listen, settings with
# pf_set, then pf_start.
pf_init() {
	PF_DIR=$IT_TMP/pf-$1
	mkdir -p "$PF_DIR/etc" "$PF_DIR/spool" "$PF_DIR/data"
	chown postfix "$PF_DIR/data"   # master.lock, written as mail_owner
	cat >"$PF_DIR/etc/main.cf" <<EOC
# private instance $1 of $IT_SCRIPT (tests/recipes/postfix.sh)
compatibility_level = 3.6
queue_directory = $PF_DIR/spool
data_directory = $PF_DIR/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-$1
maillog_file = $PF_DIR/maillog
maillog_file_prefixes = $PF_DIR
myhostname = $1.test
mydomain = test
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks reject
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_dns_support_level = disabled
biff = no
append_dot_mydomain = no
in_flow_delay = 0
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
EOC
	{
		echo "# service type private unpriv chroot wakeup maxproc command"
		local svc
		for svc in "pickup unix n - n 60 1 pickup" "cleanup unix n - n - 0 cleanup" \
			"qmgr unix n - n 300 1 qmgr" "tlsmgr unix - - n 1000? 1 tlsmgr" \
			"rewrite unix - - n - - trivial-rewrite" "bounce unix - - n - 0 bounce" \
			"defer unix - - n - 0 bounce" "trace unix - - n - 0 bounce" \
			"verify unix - - n - 1 verify" "flush unix n - n 1000? 0 flush" \
			"proxymap unix - - n - - proxymap" "proxywrite unix - - n - 1 proxymap" \
			"smtp unix - - n - - smtp" "relay unix - - n - - smtp" \
			"showq unix n - n - - showq" "error unix - - n - - error" \
			"retry unix - - n - - error" "discard unix - - n - - discard" \
			"anvil unix - - n - 1 anvil" "scache unix - - n - 1 scache" \
			"postlog unix-dgram n - n - 1 postlogd"; do
			echo "$svc"
		done
	} >"$PF_DIR/etc/master.cf"
	PF_DIRS+=("$PF_DIR")
}

# pf_set NAME=VALUE...: main.cf settings of the current instance.
pf_set() {
	postconf -c "$PF_DIR/etc" -e "$@"
}

# pf_listen PORT [-o NAME=VALUE]...: an smtpd listener on 127.0.0.1:PORT.
pf_listen() {
	local port=$1
	shift
	{
		echo "127.0.0.1:$port inet n - n - - smtpd"
		while [ $# -gt 0 ]; do
			echo "  $1"
			shift
		done
	} >>"$PF_DIR/etc/master.cf"
}

# pf_start PORT...: start the current instance and wait until it listens
# on each PORT (a problem is in $PF_DIR/maillog or start.log).
pf_start() {
	local p
	if ! postfix -c "$PF_DIR/etc" start >"$PF_DIR/start.log" 2>&1; then
		fail_because "postfix -c $PF_DIR/etc start: $(tail -n 3 "$PF_DIR/start.log" | tr '\n' ' ')"
		return 1
	fi
	for p in "$@"; do
		wait_for 30 is_listening "$p" || {
			fail_because "private Postfix not listening on $p: $(tail -n 3 "$PF_DIR/maillog" 2>/dev/null | tr '\n' ' ')"
			return 1
		}
	done
}

# pf_stop_all: stop every instance (the exit trap calls it).
pf_stop_all() {
	local d pid n
	for d in "${PF_DIRS[@]+"${PF_DIRS[@]}"}"; do
		[ -f "$d/spool/pid/master.pid" ] || continue
		pid=$(tr -d ' ' <"$d/spool/pid/master.pid")
		postfix -c "$d/etc" stop >/dev/null 2>&1
		n=0
		while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	done
	PF_DIRS=()
}

# pf_log_wait ERE [SECONDS]: wait until the current instance's log matches.
pf_log_wait() {
	wait_for "${2:-30}" grep -q -E -- "$1" "$PF_DIR/maillog" ||
		fail_because "no /$1/ in the private Postfix's log within ${2:-30} s: $(tail -n 3 "$PF_DIR/maillog" 2>/dev/null | tr '\n' ' ')"
}
