#!/bin/bash
# bench/revocation.sh: cold-cache revocation fetch latency, on this machine,
# against local servers (see docs/BENCHMARKS.md, "Verify with revocation
# on").  From "no CRL / OCSP answer cached" to "answer stored": the wall
# time of `smrelayctl crl fetch` on a fresh copy of a store, N times each:
#
#   none   a store with only the trust anchor: nothing to fetch (the cost
#          of the smrelayctl run itself: config, store, event loop)
#   crl    the anchor, an intermediate and a leaf naming one HTTP CRL
#          distribution point, served by python3 -m http.server
#   ocsp   the anchor, an intermediate and a leaf naming one OCSP
#          responder (AIA), answered by openssl ocsp -index ... -port
#
# The CA hierarchy is tests/revocation/pki.sh's (made with openssl ca, as
# for tests/revocation/t_crlfetch.sh); the intermediates name no CRL or
# responder of their own, so that each store has exactly one thing to
# fetch.  Every run must print "stored" (crl) or "OCSP good" (ocsp).
# Environment: N (20), SMRELAYCTL (default: build in build-bench/).  Needs
# openssl and python3.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
N=${N:-20}
work=$(mktemp -d /tmp/smrelay-rbench.XXXXXX)
chmod 755 "$work"   # smrelayd's network process (user smrelay) reaches data_dir
load=$(loadavg)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; echo "work directory: $work"' EXIT
trap 'exit 130' INT TERM

die() { echo "revocation.sh: $*" >&2; exit 1; }
. "$root/tests/lib/free_port.sh"

command -v openssl >/dev/null 2>&1 || die "openssl not installed"
command -v python3 >/dev/null 2>&1 || die "python3 not installed"
if [ -z "${SMRELAYCTL:-}" ]; then
	bench_binaries
fi
[ -x "$SMRELAYCTL" ] || die "$SMRELAYCTL not found"
cd "$work" || exit 1

# ------------------------------------------------------------- the PKI
HPORT=$(free_port)
OPORT=$(free_port)
H=http://127.0.0.1:$HPORT
O=openssl
. "$root/tests/revocation/pki.sh"
{
	ca_setup "" "/O=smrelay bench/CN=Bench" &&
		leafext crlleaf "$H/int.crl" &&
		ocspext ocspleaf "http://127.0.0.1:$OPORT/" &&
		leaf crlleaf crlleaf crl@bench.example &&
		ocspleaf ocspleaf ocspleaf ocsp@bench.example &&
		ca_crls
} >pki.log 2>&1 || die "test PKI (see $work/pki.log)"

# ------------------------------------------------------------- the servers
python3 -m http.server --bind 127.0.0.1 --directory www "$HPORT" >http.log 2>&1 &
pids+=($!)
$O ocsp -index ocspca.db -port "$OPORT" -rsigner responder.pem -rkey leaf.key \
	-CA ocspca.pem -ndays 1 >ocsp.log 2>&1 &
pids+=($!)
# (openssl ocsp is not probed by connecting: it would wait on the probe)
for ((i = 0; i < 100; i++)); do grep -q "waiting for OCSP client" ocsp.log 2>/dev/null && break; sleep 0.1; done
grep -q "waiting for OCSP client" ocsp.log || die "openssl ocsp did not start: $(tail -n 2 ocsp.log)"
wait_port "$HPORT" 10 || die "http.server did not start: $(tail -n 2 http.log)"

# ------------------------------------------------------------- the stores
# mkstore NAME FILE...: the template store NAME (the root as anchor, then
# each FILE imported as a certificate)
mkstore() {
	local n=$1 f
	shift
	printf 'listen = 127.0.0.1:2599\nrelay = 127.0.0.1:2525\ndata_dir = %s/run.%s\nhostname = bench.example\n' \
		"$work" "$n" >"$n.conf"
	printf 'listen = 127.0.0.1:2599\nrelay = 127.0.0.1:2525\ndata_dir = %s/tpl.%s\nhostname = bench.example\n' \
		"$work" "$n" >"tpl.$n.conf"
	"$SMRELAYCTL" -c "tpl.$n.conf" trust import ca.pem >/dev/null 2>>store.err || die "trust import: $(tail -n 1 store.err)"
	for f in "$@"; do
		"$SMRELAYCTL" -c "tpl.$n.conf" cert import "$f" >/dev/null 2>>store.err ||
			die "cert import $f: $(tail -n 1 store.err)"
	done
}
mkstore none
mkstore crl int.pem crlleaf.pem
mkstore ocsp ocspca.pem ocspleaf.pem

# ------------------------------------------------------------- the runs
# one NAME PATTERN: crl fetch on a fresh copy of store NAME, its output
# must match PATTERN (none: empty); prints the wall milliseconds.
one() {
	local n=$1 t0 t1
	rm -rf "run.$n"
	cp -r "tpl.$n" "run.$n"
	t0=$(now)
	"$SMRELAYCTL" -c "$n.conf" crl fetch >"fetch.$n.out" 2>"fetch.$n.err" || die "crl fetch ($n): $(tail -n 2 "fetch.$n.err")"
	t1=$(now)
	if [ -n "$2" ]; then
		grep -q "$2" "fetch.$n.out" || die "crl fetch ($n): no \"$2\": $(tr '\n' '|' <"fetch.$n.out")"
	else
		[ -s "fetch.$n.out" ] && die "crl fetch (none) fetched: $(cat "fetch.$n.out")"
	fi
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'
}
declare -A ms
echo "== $N rounds of crl fetch on fresh stores: none, one CRL, one OCSP answer (alternating)"
for ((i = 0; i < N; i++)); do
	v=$(one none "") || exit 1
	ms[none]="${ms[none]:-} $v"
	v=$(one crl "^$H/int.crl	CRL [0-9]* of .*Bench Issuing CA.* stored") || exit 1
	ms[crl]="${ms[crl]:-} $v"
	v=$(one ocsp "^http://127.0.0.1:$OPORT/	OCSP good for ocspleaf$") || exit 1
	ms[ocsp]="${ms[ocsp]:-} $v"
done

# ------------------------------------------------------------- report
stat() { echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END {
	printf "%8.1f %8.1f %8.1f", v[1], (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[NR] }'; }
label() {
	case $1 in
	none) echo "nothing to fetch (anchor only)" ;;
	crl) echo "one CRL (http.server)" ;;
	ocsp) echo "one OCSP answer (openssl ocsp)" ;;
	esac
}
{
	echo
	echo "smrelay cold revocation fetch, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPU(s), $(uname -r)"
	sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1
	echo "$(openssl version); smrelay$(cd "$root" && git describe --always --dirty 2>/dev/null | sed 's/^/ at /')"
	echo "load average at start: $load"
	echo "smrelayctl crl fetch on a fresh copy of the store, wall milliseconds, $N runs each"
	printf '| %-32s | %8s | %8s | %8s | %14s |\n' store min median max "median - none"
	printf '|%s|%s|%s|%s|%s|\n' "----------------------------------" "----------" "----------" "----------" "----------------"
	base=$(stat ${ms[none]} | awk '{ print $2 }')
	for k in none crl ocsp; do
		read -r lo med hi <<<"$(stat ${ms[$k]})"
		printf '| %-32s | %8s | %8s | %8s | %14s |\n' "$(label "$k")" "$lo" "$med" "$hi" \
			"$(awk -v a="$med" -v b="$base" 'BEGIN { printf "%.1f", a - b }')"
	done
} | tee "$work/results.txt"
