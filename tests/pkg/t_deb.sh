#!/bin/bash
# t_deb.sh: the Debian package end to end.  Builds it from a copy of the
# tree with dpkg-buildpackage -us -uc -b (the quick tests run in the
# build), then twice: dpkg -i, the installed files (programs, man pages
# found by man, the conffile, the unit, the docs), the smrelay user and
# /var/lib/smrelay (0700, the user's); smrelayd -n on the installed
# configuration; the installed daemon started as the unit starts it
# (/usr/sbin/smrelayd -f, the default configuration, relay pointed at a
# `smrelayctl sink`), one message through it, its network process running
# as smrelay; SIGTERM; dpkg --purge, after which the files, /etc/smrelay,
# /var/lib/smrelay and the enablement symlink are gone.
#   fresh: no smrelay user before; the package creates it, purge removes it.
#   kept:  a smrelay user made by the administrator; the package uses it,
#          purge leaves it.
# The machine's smrelay user, if any, is put back as it was at the end;
# while processes run as it, it is left alone and only "kept" runs.
#
# Needs root (dpkg -i) and dpkg-buildpackage with debhelper; skips (77)
# otherwise, and when a smrelay package is installed already.  Takes a few
# minutes (the build); tests/run-all.sh runs it as a step of its own.
# Environment: DEB_DIR=DIR reuses the .deb in DIR instead of building.
set -u

srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
root=$(cd "$srcdir" && pwd)
FAILS=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; FAILS=$((FAILS + 1)); }
skip() { echo "SKIP t_deb: $1"; exit 77; }

[ "$(id -u)" = 0 ] || skip "not root (dpkg -i)"
for p in dpkg-buildpackage dh python3 useradd; do
	command -v "$p" >/dev/null 2>&1 || skip "no $p (contrib/install-deps.sh --test)"
done
if dpkg-query -W -f='${Status}' smrelay 2>/dev/null | grep -q 'ok installed'; then
	skip "the smrelay package is installed on this machine: not touching it"
fi
# Processes of the smrelay user (other tests, a daemon): the user stays,
# and only the kept cycle runs.
busy_user=0
if pgrep -u smrelay >/dev/null 2>&1; then
	busy_user=1
	echo "# processes run as smrelay here: the user stays, the fresh cycle is left out"
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/smrelay-t_deb.XXXXXX") || exit 99
chmod 755 "$T"
SAVED_USER=$(getent passwd smrelay)
SAVED_GROUP=$(getent group smrelay)
DAEMON= SINK=

# Put the machine's smrelay user and group back as they were.
restore_user() {
	local u g
	u=$(getent passwd smrelay)
	g=$(getent group smrelay)
	[ "$u" = "$SAVED_USER" ] && [ "$g" = "$SAVED_GROUP" ] && return 0
	[ -n "$u" ] && userdel smrelay 2>/dev/null
	getent group smrelay >/dev/null && groupdel smrelay 2>/dev/null
	if [ -n "$SAVED_GROUP" ]; then
		groupadd --system --gid "$(echo "$SAVED_GROUP" | cut -d: -f3)" smrelay
	fi
	if [ -n "$SAVED_USER" ]; then
		IFS=: read -r _ _ uid gid gecos home shell <<<"$SAVED_USER"
		useradd --system --no-create-home --uid "$uid" --gid "$gid" \
		    --comment "$gecos" --home-dir "$home" --shell "$shell" smrelay
	fi
}

cleanup() {
	[ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null
	[ -n "$SINK" ] && kill "$SINK" 2>/dev/null
	wait 2>/dev/null
	if dpkg-query -W -f='${Status}' smrelay 2>/dev/null | grep -q installed; then
		dpkg --purge smrelay >>"$T/dpkg.log" 2>&1
	fi
	restore_user
	rm -rf "$T"
}
trap cleanup EXIT

# shellcheck source=tests/lib/free_port.sh
. "$srcdir/tests/lib/free_port.sh"

# wait_for SECONDS COMMAND...: until COMMAND succeeds; 1 on timeout.
wait_for() {
	local n=$(($1 * 10))
	shift
	while [ $n -gt 0 ]; do
		"$@" 2>/dev/null && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

listening() {
	python3 -c 'import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1"
}

# ---- build
if [ -n "${DEB_DIR:-}" ]; then
	deb=$(ls "$DEB_DIR"/smrelay_*.deb 2>/dev/null | head -n 1)
	[ -n "$deb" ] || { fail "deb" "no smrelay_*.deb in $DEB_DIR"; exit 1; }
else
	mkdir -p "$T/src"
	# The tree as it is (committed or not), without builds and the VCS.
	if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
		(cd "$root" && git ls-files -z --cached --others --exclude-standard |
		    xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\n" "$f"; done' sh |
		    tar -cf - -T -) | tar -C "$T/src" -xf -
	else
		tar -C "$root" --exclude='./build*' --exclude=./demo \
		    --exclude=./debian/smrelay --exclude=./debian/.debhelper \
		    -cf - . | tar -C "$T/src" -xf -
	fi
	start=$(date +%s)
	if (cd "$T/src" && dpkg-buildpackage -us -uc -b -j"${JOBS:-2}") \
	    >"$T/build.log" 2>&1; then
		pass "dpkg-buildpackage ($(($(date +%s) - start))s)"
	else
		fail "dpkg-buildpackage" "$(tail -n 30 "$T/build.log")"
		exit 1
	fi
	deb=$(ls "$T"/smrelay_*.deb | head -n 1)
fi
echo "# $(basename "$deb"): $(dpkg-deb -c "$deb" | wc -l) entries"

# The package's contents, by path.
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$T/contents"
for f in /usr/sbin/smrelayd /usr/sbin/smrelayctl \
    /usr/share/man/man8/smrelayd.8.gz /usr/share/man/man8/smrelayctl.8.gz \
    /usr/share/man/man5/smrelay.conf.5.gz /etc/smrelay/smrelay.conf \
    /lib/systemd/system/smrelayd.service /usr/share/doc/smrelay/README.md \
    /usr/share/doc/smrelay/OPERATIONS.md /usr/share/doc/smrelay/copyright \
    /usr/share/doc/smrelay/smrelay.conf.sample; do
	if grep -qx "$f" "$T/contents"; then pass "contents $f"; else
		fail "contents $f" "not in the package"; fi
done

# ---- one install, run, purge; $1: fresh or kept
cycle() {
	local c=$1 uid_before= port sink_port mode rc out
	if [ "$c" = kept ] && getent passwd smrelay >/dev/null; then
		uid_before=$(id -u smrelay)
	elif [ "$c" = kept ]; then
		useradd --system --user-group --no-create-home \
		    --home-dir /nonexistent --shell /usr/sbin/nologin \
		    --comment "made by the administrator" smrelay
		uid_before=$(id -u smrelay)
	fi

	if dpkg -i "$deb" >"$T/dpkg.log" 2>&1; then
		pass "$c: dpkg -i"
	else
		fail "$c: dpkg -i" "$(tail -n 10 "$T/dpkg.log")"
		return 1
	fi
	if dpkg-query -W -f='${Conffiles}\n' smrelay | grep -q '^ /etc/smrelay/smrelay.conf '; then
		pass "$c: conffile"
	else
		fail "$c: conffile" "$(dpkg-query -W -f='${Conffiles}' smrelay)"
	fi
	for p in smrelayd smrelayctl smrelay.conf; do
		if command -v man >/dev/null && man -w "$p" >/dev/null 2>&1; then
			pass "$c: man $p"
		elif command -v man >/dev/null; then
			fail "$c: man $p" "man -w finds nothing"
		fi
	done
	if [ "$(/usr/sbin/smrelayd --version)" = "smrelayd $(dpkg-query -W -f='${Version}' smrelay | sed 's/-[^-]*$//')" ]; then
		pass "$c: --version"
	else
		fail "$c: --version" "$(/usr/sbin/smrelayd --version)"
	fi

	# The installed unit: its commands and man pages exist.
	if command -v systemd-analyze >/dev/null 2>&1; then
		if systemd-analyze verify /lib/systemd/system/smrelayd.service \
		    >"$T/verify" 2>&1 && ! grep -q 'smrelayd.service:' "$T/verify"; then
			pass "$c: systemd-analyze verify"
		else
			fail "$c: systemd-analyze verify" "$(head -n 5 "$T/verify")"
		fi
	fi

	# The user and data_dir.
	if getent passwd smrelay >/dev/null; then
		if [ "$c" = kept ] && [ "$(id -u smrelay)" != "$uid_before" ]; then
			fail "$c: user" "uid changed from $uid_before to $(id -u smrelay)"
		else
			pass "$c: user smrelay"
		fi
	else
		fail "$c: user smrelay" "missing after dpkg -i"
	fi
	mode=$(stat -c '%a %U' /var/lib/smrelay 2>/dev/null)
	if [ "$mode" = "700 smrelay" ]; then
		pass "$c: /var/lib/smrelay"
	else
		fail "$c: /var/lib/smrelay" "mode and owner: '$mode'"
	fi

	# smrelayd -n on the installed configuration, as ExecStartPre runs it.
	if out=$(/usr/sbin/smrelayd -c /etc/smrelay/smrelay.conf -n 2>&1) &&
	    [ "$out" = "configuration OK" ]; then
		pass "$c: smrelayd -n"
	else
		fail "$c: smrelayd -n" "$out"
	fi

	# The daemon as the unit starts it, relaying into a sink.
	port=$(free_port)
	sink_port=$(free_port)
	mkdir -p "$T/maildir-$c"
	/usr/sbin/smrelayctl sink --listen "127.0.0.1:$sink_port" \
	    --maildir "$T/maildir-$c" >"$T/sink.log" 2>&1 &
	SINK=$!
	sed -i -e "s/^relay = .*/relay = 127.0.0.1:$sink_port/" \
	    /etc/smrelay/smrelay.conf
	printf 'listen = 127.0.0.1:%s\nuser = smrelay\n' "$port" \
	    >>/etc/smrelay/smrelay.conf
	/usr/sbin/smrelayd -f >"$T/smrelayd-$c.log" 2>&1 &
	DAEMON=$!
	if wait_for 10 listening "$port" && wait_for 10 listening "$sink_port"; then
		pass "$c: daemon listens"
	else
		fail "$c: daemon listens" "$(tail -n 5 "$T/smrelayd-$c.log")"
	fi
	if ps -o user=,comm= --ppid "$DAEMON" 2>/dev/null |
	    grep -q '^smrelay  *smrelayd-net'; then
		pass "$c: network process runs as smrelay"
	else
		fail "$c: network process runs as smrelay" "$(ps -o user=,comm= --ppid "$DAEMON" 2>&1 | head -n 5)"
	fi
	if python3 - "$port" >"$T/smtp.log" 2>&1 <<'EOF'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
s.sendmail("alice@example.com", ["bob@partner.example"],
           "From: alice@example.com\r\nTo: bob@partner.example\r\n"
           "Subject: t_deb\r\n\r\nthrough the installed package\r\n")
s.quit()
EOF
	then
		pass "$c: message accepted"
	else
		fail "$c: message accepted" "$(tail -n 3 "$T/smtp.log")"
	fi
	if wait_for 10 sh -c "grep -l 'through the installed package' '$T/maildir-$c'/new/* >/dev/null"; then
		pass "$c: message in the sink"
	else
		fail "$c: message in the sink" "$(tail -n 5 "$T/smrelayd-$c.log")"
	fi
	kill -TERM "$DAEMON"
	wait "$DAEMON"
	rc=$?
	DAEMON=
	if [ $rc -eq 0 ]; then pass "$c: SIGTERM, exit 0"; else
		fail "$c: SIGTERM, exit 0" "exit $rc"; fi
	kill "$SINK" 2>/dev/null
	wait "$SINK" 2>/dev/null
	SINK=

	# Purge.
	if dpkg --purge smrelay >"$T/dpkg.log" 2>&1; then
		pass "$c: dpkg --purge"
	else
		fail "$c: dpkg --purge" "$(tail -n 10 "$T/dpkg.log")"
	fi
	for f in /usr/sbin/smrelayd /etc/smrelay /var/lib/smrelay \
	    /etc/systemd/system/multi-user.target.wants/smrelayd.service; do
		if [ -e "$f" ] || [ -L "$f" ]; then
			fail "$c: purge removes $f" "still there"
		else
			pass "$c: purge removes $f"
		fi
	done
	if [ "$c" = fresh ]; then
		if getent passwd smrelay >/dev/null || getent group smrelay >/dev/null; then
			fail "$c: purge removes the user" "$(getent passwd smrelay; getent group smrelay)"
		else
			pass "$c: purge removes the user and group"
		fi
	elif [ "$(id -u smrelay 2>/dev/null)" = "$uid_before" ]; then
		pass "$c: purge keeps the administrator's user"
	else
		fail "$c: purge keeps the administrator's user" "gone or changed"
	fi
}

# Begin each cycle without a smrelay user.
no_user() {
	getent passwd smrelay >/dev/null && userdel smrelay
	getent group smrelay >/dev/null && groupdel smrelay
	return 0
}

if [ $busy_user = 1 ]; then
	cycle kept
else
	no_user
	cycle fresh
	no_user
	cycle kept
	no_user
fi

[ $FAILS -eq 0 ]
