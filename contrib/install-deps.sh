#!/bin/bash
# contrib/install-deps.sh: install what smrelay needs to build, test, demo and
# benchmark on Debian 12 (bookworm).  Run as root.
#
# libp11 is the key process's PKCS#11 wrapper (keys on tokens, pkcs11:
# URIs); libp11-kit-dev tells configure where p11-kit's proxy module is,
# p11-kit-modules installs it (the default module), and softhsm2 (a token
# in files) with opensc's pkcs11-tool make the throwaway token of
# tests/keyd/t_p11.sh.
#
# dns-root-data is the DNSSEC root trust anchor, /usr/share/dns/root.key
# (dns_trust_anchor's default), needed when smrelayd asks DNS.
#
# libunbound is the DNS resolver and DNSSEC validator of daemon/base/dns.c
# (MX, TLSA, SMIMEA); NSD (an authoritative server) with ldnsutils
# (ldns-keygen, ldns-signzone) serves the signed and unsigned test zones of
# tests/dns/, polled with dig (dnsutils).
#
# Postfix is installed for its smtp-sink/smtp-source test tools and as the
# benchmark peer; it is preseeded to "No configuration" so the install is
# non-interactive, and stopped afterwards so it does not sit on port 25.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: run as root" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
	build-essential autoconf automake libtool pkg-config
	libevent-dev libssl-dev libsqlite3-dev libseccomp-dev libunbound-dev
	nsd ldnsutils dnsutils
	libp11-dev libp11-kit-dev p11-kit-modules softhsm2 opensc
	openssl ca-certificates gpgsm gpg-agent libnss3-tools
	swaks libnet-ssleay-perl libio-socket-ssl-perl
	postfix
	python3 python3-cryptography python3-cryptography-vectors
	clang libclang-rt-14-dev
	procps iproute2 gdb sqlite3
	dns-root-data
)

echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections

apt-get update
apt-get install -y --no-install-recommends "${PACKAGES[@]}"

# "No configuration" leaves no main.cf, which postconf -e (used by the
# benchmark's peer script) needs: start from Debian's stock one, loopback only.
if [ ! -f /etc/postfix/main.cf ] && [ -f /usr/share/postfix/main.cf.debian ]; then
	cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
	postconf -e "inet_interfaces = loopback-only" "myhostname = localhost.localdomain" \
		"mydestination =" "maillog_file = /var/log/postfix.log"
fi

# Leave no system NSD on port 53 (tests/dns/nsd.sh runs its own).
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemctl disable --now nsd >/dev/null 2>&1 || true
fi

# Leave no Postfix listening on port 25 (the benchmark configures and starts
# its own instance on loopback ports with shared/peers/postfix-relay.sh).
if command -v postfix >/dev/null 2>&1; then
	postfix stop >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemctl disable --now postfix >/dev/null 2>&1 || true
fi

# The unprivileged user smrelayd's network process runs as (`user`, default
# smrelay), as a package would create it.
if [ "$(id -u)" = 0 ] && ! getent passwd smrelay >/dev/null; then
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin smrelay
fi

for p in smtp-sink smtp-source swaks python3 openssl clang autoreconf pkg-config \
    softhsm2-util pkcs11-tool gcore sqlite3 setpriv nsd ldns-signzone dig; do
	if ! command -v "$p" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$p" ]; then
		echo "install-deps.sh: $p missing after install" >&2
		exit 1
	fi
done
echo "install-deps.sh: done"
