#!/bin/bash
# tests/dns/t_dns.sh: daemon/base/dns.c (tests/dns/dns_test) against a real
# NSD serving the zones below: partner.test. unsigned, signed.test. and
# bogus.test. signed (bogus.test. with one RRSIG broken), the DS of both
# as trust anchors.  One dns_test run per case; prints PASS/FAIL per case.
# Exit 77 (SKIP) when nsd or ldnsutils are not installed.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
T=${DNS_TEST:-$PWD/tests/dns/dns_test}
# shellcheck source=tests/dns/nsd.sh
. "$srcdir/tests/dns/nsd.sh"

nsd_have || { echo "SKIP: nsd, ldns-keygen or ldns-signzone not installed"; exit 77; }
[ -x "$T" ] || { echo "FAIL: dns_test not built at $T"; exit 99; }
W=$(mktemp -d "${TMPDIR:-/tmp}/dns.XXXXXX") || exit 99
BH_PID=""
cleanup() {
	nsd_stop
	[ -n "$BH_PID" ] && kill "$BH_PID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fails=0

nsd_init "$W/nsd" || { echo "FAIL: nsd_init"; exit 1; }

# (nsd_zone in the shell itself, not a pipeline: it records the zone)
nsd_zone partner.test < <(
	cat <<'EOF'
@ IN MX 10 a
@ IN MX 20 b1
@ IN MX 20 b2
@ IN MX 20 b3
@ IN MX 30 c
a IN A 192.0.2.1
b1 IN A 192.0.2.21
b2 IN A 192.0.2.22
b3 IN A 192.0.2.23
c IN A 192.0.2.30
mx IN A 192.0.2.9
implicit IN A 192.0.2.3
implicit IN AAAA 2001:db8::3
nullmx IN MX 0 .
txtonly IN TXT "no mail here"
literal IN MX 10 192.0.2.7.
literal IN MX 20 good
good IN A 192.0.2.8
onlyliteral IN MX 10 192.0.2.7.
dual IN A 192.0.2.1
dual IN A 192.0.2.2
dual IN AAAA 2001:db8::1
v4only IN A 192.0.2.4
loop1 IN CNAME loop2
loop2 IN CNAME loop1
alias IN CNAME target
target IN MX 10 a
EOF
	for i in $(seq 1 200); do echo "big IN MX $i h$i"; done
	for i in $(seq 1 100); do echo "many IN A 10.0.0.$i"; done
	for i in $(seq 1 60); do echo "wide IN AAAA 2001:db8::1:$i"; done
)

SMIMEA_OWNER=$(nsd_smimea_owner alice signed.test)
nsd_zone signed.test <<EOF
@ IN MX 10 mx
mx IN A 192.0.2.10
mx IN AAAA 2001:db8::10
_25._tcp.mx IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
_25._tcp.mx IN TLSA 2 0 2 $(printf '%0128d' 7)
_25._tcp.mx IN TLSA 3 1 1 abcd
$SMIMEA_OWNER. IN SMIMEA 3 0 0 30820102
EOF
nsd_sign signed.test || { echo "FAIL: signing signed.test"; exit 1; }

nsd_zone bogus.test <<'EOF'
@ IN MX 10 mx
mx IN A 192.0.2.66
EOF
nsd_sign bogus.test || { echo "FAIL: signing bogus.test"; exit 1; }
nsd_tamper bogus.test mx.bogus.test. A || { echo "FAIL: nsd_tamper"; exit 1; }

nsd_start || { echo "FAIL: nsd did not start"; exit 1; }
echo "nsd on $NSD_ADDR, trust anchors:"
sed 's/^/  /' "$NSD_TA"

# check NAME OUTFILE RC: report a dns_test run.
check() {
	local name=$1 out=$2 rc=$3
	if grep -q 'Sanitizer\|runtime error:' "$out"; then
		rc=1
	fi
	if [ "$rc" -eq 0 ]; then
		echo "PASS $name"
	else
		echo "FAIL $name (exit $rc)"
		fails=$((fails + 1))
	fi
	sed 's/^/    /' "$out"
}

# run NAME CASE [ARG]: one case against NSD.
run() {
	local name=$1 rc
	shift
	"$T" "$NSD_ADDR" "$NSD_TA" "$@" >"$W/$name.out" 2>&1
	rc=$?
	check "$name" "$W/$name.out" $rc
}

run rdata rdata
run mx_sorted mx_sorted
run mx_kinds mx_kinds
run addrs addrs
run dnssec dnssec
run tlsa tlsa "$SMIMEA_OWNER"
run hostile hostile
run cancel cancel

# A resolver that never answers: our own deadline.
BH_PORT=$(nsd_free_port)
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
while True:
    s.recvfrom(4096)' "$BH_PORT" >"$W/bh.out" 2>&1 &
BH_PID=$!
n=0
until grep -q ready "$W/bh.out" 2>/dev/null || [ $n -gt 100 ]; do
	sleep 0.05
	n=$((n + 1))
done
"$T" "127.0.0.1:$BH_PORT" "$NSD_TA" tempfail "timeout after 1500 ms" \
    >"$W/blackhole.out" 2>&1
check tempfail_silent_resolver "$W/blackhole.out" $?
kill "$BH_PID" 2>/dev/null
wait "$BH_PID" 2>/dev/null
BH_PID=""

# Served from the cache while NSD is stopped.
mkfifo "$W/go"
"$T" "$NSD_ADDR" "$NSD_TA" cache <"$W/go" >"$W/cache.out" 2>&1 &
pid=$!
exec 3>"$W/go"
n=0
until grep -q '^PAUSE' "$W/cache.out" || ! kill -0 $pid 2>/dev/null ||
    [ $n -gt 400 ]; do
	sleep 0.05
	n=$((n + 1))
done
nsd_stop
echo go >&3
exec 3>&-
wait $pid
check cache_while_nsd_stopped "$W/cache.out" $?

# NSD stopped (ICMP port unreachable, or no answer): TEMPFAIL in time.
run tempfail_nsd_stopped tempfail ""

echo "t_dns: $fails failure(s)"
[ $fails -eq 0 ]
