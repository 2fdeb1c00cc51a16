#!/bin/bash
# contrib/install-deps.sh: install what smrelay needs on Debian 12
# (bookworm), as root, and say what it changes.
#
#   bash contrib/install-deps.sh [--build] [--runtime] [--test]
#
#   --build    compile it: the compiler, autotools and the -dev packages
#              (debian/control's Build-Depends are these)
#   --runtime  run it: the shared libraries, the DNSSEC root key, the CA
#              store, p11-kit's modules; and the smrelay system user
#   --test     test, demo, package and benchmark it (tests/run-all.sh,
#              contrib/demo.sh, tests/pkg/t_deb.sh, bench/): the peers and
#              tools below; and the smrelay system user
# Without an option: all three.
#
# libp11 is the key process's PKCS#11 wrapper (keys on tokens, pkcs11:
# URIs); libp11-kit-dev tells configure where p11-kit's proxy module is,
# p11-kit-modules installs it (the default module), and softhsm2 (a token
# in files) with opensc's pkcs11-tool make the throwaway token of
# tests/keyd/t_p11.sh.
#
# libjansson is smrelayctl's JSON emitter (--json).
#
# libidn2 turns internationalized domains into their A-labels
# (bob@müller.example is bob@xn--mller-kva.example to policy and
# certificate lookups).
#
# dns-root-data is the DNSSEC root trust anchor, /usr/share/dns/root.key
# (dns_trust_anchor's default), needed when smrelayd asks DNS.
#
# libunbound is the DNS resolver and DNSSEC validator of daemon/base/dns.c
# (MX, TLSA, SMIMEA); NSD (an authoritative server) with ldnsutils
# (ldns-keygen, ldns-signzone) serves the signed and unsigned test zones of
# tests/dns/ on a loopback port of its own, polled with dig (dnsutils).
#
# Postfix is installed for its smtp-sink/smtp-source test tools, as the
# benchmark's peer, and for the recipe tests (tests/recipes/), which run
# private instances of their own (own config, queue and data directories,
# free loopback ports) and never the system's.  HAProxy is there for the
# recipe test of HAProxy in front (tests/recipes/t_haproxy.sh), which runs
# its own too.  No test needs port 25 or 53: an MTA or a DNS server
# already installed here is left exactly as it is (running or not).  Only a
# Postfix or an NSD that this script installs now is stopped and disabled
# at boot, and it says so.  Mind that bench/relay.sh and bench/queue.sh
# (through shared/peers/postfix-relay.sh) reconfigure and restart the
# system's Postfix: run them on a test machine only.
#
# libjansson writes the JSON of `smrelayctl sink --http` (its web inbox);
# Chromium, its chromedriver and python3-selenium drive that inbox in a
# real headless browser in tests/sink/t_inbox.sh.
#
# dpkg-dev, debhelper, mandoc and man-db build the Debian package, lint the
# man pages and look them up (tests/pkg/).
set -euo pipefail

BUILD_PACKAGES=(
	build-essential autoconf automake libtool pkg-config
	libevent-dev libssl-dev libsqlite3-dev libseccomp-dev libunbound-dev
	libp11-dev libp11-kit-dev libjansson-dev libpq-dev libidn2-dev
)
RUNTIME_PACKAGES=(
	libevent-2.1-7 libevent-openssl-2.1-7 libssl3 libsqlite3-0 libseccomp2
	libunbound8 libp11-3 p11-kit-modules libjansson4 libpq5 libidn2-0
	ca-certificates dns-root-data adduser
)
TEST_PACKAGES=(
	nsd ldnsutils dnsutils
	softhsm2 opensc
	openssl gpgsm gpg-agent libnss3-tools
	swaks libnet-ssleay-perl libio-socket-ssl-perl
	postfix haproxy postgresql postgresql-client
	python3 python3-cryptography python3-cryptography-vectors
	clang libclang-rt-14-dev
	procps iproute2 gdb sqlite3
	prometheus
	dpkg-dev debhelper mandoc man-db git
	chromium chromium-driver python3-selenium
)
# The programs each set must leave behind.
BUILD_PROGRAMS=(cc make autoreconf pkg-config)
RUNTIME_PROGRAMS=(adduser)
TEST_PROGRAMS=(smtp-sink smtp-source swaks python3 openssl clang
	softhsm2-util pkcs11-tool gcore sqlite3 setpriv nsd ldns-signzone dig
	dpkg-buildpackage dh mandoc man promtool prometheus haproxy chromium chromedriver psql)

say() { echo "install-deps.sh: $*"; }

usage() {
	echo "usage: install-deps.sh [--build] [--runtime] [--test]" >&2
	exit 2
}

want_build=0 want_runtime=0 want_test=0
for a in "$@"; do
	case $a in
	--build) want_build=1 ;;
	--runtime) want_runtime=1 ;;
	--test) want_test=1 ;;
	-h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) usage ;;
	esac
done
if [ $# -eq 0 ]; then
	want_build=1 want_runtime=1 want_test=1
fi

if [ "$(id -u)" -ne 0 ]; then
	say "run as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}

packages=() programs=()
[ $want_build = 1 ] && packages+=("${BUILD_PACKAGES[@]}") && programs+=("${BUILD_PROGRAMS[@]}")
[ $want_runtime = 1 ] && packages+=("${RUNTIME_PACKAGES[@]}") && programs+=("${RUNTIME_PROGRAMS[@]}")
[ $want_test = 1 ] && packages+=("${TEST_PACKAGES[@]}") && programs+=("${TEST_PROGRAMS[@]}")

# What is missing, and whether Postfix and NSD were here before.
missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done
had_postfix=0 had_nsd=0 had_haproxy=0
installed postfix && had_postfix=1
installed nsd && had_nsd=1
installed haproxy && had_haproxy=1

if [ ${#missing[@]} -eq 0 ]; then
	say "every package is installed already"
else
	say "installing ${#missing[@]} package(s) (and what they depend on): ${missing[*]}"
	if [ $had_postfix = 0 ] && printf '%s\n' "${missing[@]}" | grep -qx postfix; then
		# Non-interactive, and no mail system configured by the install.
		echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
		echo "postfix postfix/mailname string localhost" | debconf-set-selections
	fi
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
fi

# A Postfix installed now: give it the loopback-only main.cf the benchmark's
# postconf -e needs ("No configuration" leaves none), and keep it from
# running.  One that was here before is not touched.
if [ $want_test = 1 ]; then
	if [ $had_postfix = 1 ]; then
		say "postfix was installed before: left as it is (the tests need no MTA; bench/relay.sh and bench/queue.sh reconfigure and restart it)"
	elif installed postfix; then
		if [ ! -f /etc/postfix/main.cf ] && [ -f /usr/share/postfix/main.cf.debian ]; then
			cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
			postconf -e "inet_interfaces = loopback-only" "myhostname = localhost.localdomain" \
				"mydestination =" "maillog_file = /var/log/postfix.log"
			say "postfix: wrote /etc/postfix/main.cf (loopback only, no local delivery)"
		fi
		postfix stop >/dev/null 2>&1 || true
		if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
			systemctl disable --now postfix >/dev/null 2>&1 || true
		fi
		say "postfix: installed now for smtp-sink/smtp-source and the benchmark; stopped and disabled at boot"
	fi
	if [ $had_haproxy = 1 ]; then
		say "haproxy was installed before: left as it is (tests/recipes runs its own)"
	elif installed haproxy && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		systemctl disable --now haproxy >/dev/null 2>&1 || true
		say "haproxy: installed now for tests/recipes (which runs its own); the system's stopped and disabled at boot"
	fi
	if [ $had_nsd = 1 ]; then
		say "nsd was installed before: left as it is (tests/dns runs its own on a loopback port)"
	elif installed nsd && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		systemctl disable --now nsd >/dev/null 2>&1 || true
		say "nsd: installed now for tests/dns (which runs its own); the system's stopped and disabled at boot"
	fi
fi

# The unprivileged user smrelayd's network process runs as (`user`,
# default smrelay), for smrelayd started as root from a build or a
# make install.  The Debian package creates its own when none exists, and
# leaves this one alone at purge.
if [ $want_runtime = 1 ] || [ $want_test = 1 ]; then
	if getent passwd smrelay >/dev/null; then
		say "user smrelay exists already"
	else
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin smrelay
		say "created the system user and group smrelay (no home, no shell)"
	fi
fi

for p in "${programs[@]}"; do
	if ! command -v "$p" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$p" ]; then
		say "$p missing after install" >&2
		exit 1
	fi
done
say "done"
