#!/bin/bash
# bench/smime.sh: throughput and memory of the S/MIME engine (proto/cms.c),
# in-process on one core, against the ceiling of RSA signing and against a
# process per message, on this machine, in one go (see docs/BENCHMARKS.md).
#
#   1. ceiling     openssl speed -seconds 3 rsa2048: sign/s on one core
#   2. in-process  bench/smime_bench: sign, encrypt (AES-256-CBC),
#                  sign+encrypt, decrypt+verify of a 4 KB and a 1 MB entity,
#                  output in BIO_s_mem, and again with presized outputs
#   3. per process openssl cms -sign / -encrypt / -sign | -encrypt, one
#                  process per message, PROC_N messages of each size
#   3b. revocation decrypt+verify 4 KB with every link checked against
#                  its CRL (cached), against the same without revocation
#   3c. daemon     decrypt+verify 4 KB through pipeline_transform_body() and the
#                  certificate cache over a store: revocation off, by
#                  stored OCSP answers, by stored CRLs (alternating runs)
#   3d. key process sign and decrypt+verify of 4 KB on T threads at once
#                  (T = 1 and the number of CPUs), RSA-2048 and EC P-256
#                  keys, in-process against handles on a forked key
#                  process (keyd_client_pkey, pipelined on one socketpair)
#   3e. TLS        full TLS 1.3 and 1.2 handshakes on one thread
#                  (bench/tls_bench), the server key in-process against a
#                  handle: handshakes/s and the server's time per handshake
#                  (3d at one thread and 3e also on one CPU: KEYD_PIN)
#   4. memory      peak RSS (VmHWM) of one operation on a PEAK_SIZE (50 MB)
#                  entity streamed from a file to /dev/null
#
# Rates are per CPU-second (user + system of the process(es) doing the work,
# as openssl speed counts) and per wall-second; on a loaded machine the
# former is the figure to compare.  Environment: SECS (4, seconds per
# in-process run), PROC_N (100), PEAK_SIZE (52428800), PEAK_ONLY (1: only
# step 4, about ten seconds), DECVER_ONLY (1: only inbound decrypt+verify
# of 4 KB and 1 MB, with and without the engine's memo, and 4 KB against
# the RSA private operation alternating; DECVER_ROUNDS rounds (3), about
# 14 x SECS seconds each), REV_ONLY (1: only the revocation steps 3b and
# 3c with their baseline, about 13 x SECS seconds), REV_ROUNDS (3, rounds of
# step 3c), KEYD_ONLY (1: only the key process steps 3d and 3e, about 32 x
# KEYD_ROUNDS x SECS seconds), KEYD_ROUNDS (3, alternating rounds of 3d and
# 3e), KEYD_THREADS ("1 NCPU"), KEYD_PIN (1: also the key process runs with
# everything on CPU 0, at one thread and in 3e), SMIME_BENCH (default: build
# in build-bench/ with the default -O2), SMRELAYCTL and TLS_BENCH (default:
# next to it).  Needs openssl and python3 (tests/smime/pki.sh), taskset for
# KEYD_PIN.  The default run takes about ten minutes.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
SECS=${SECS:-4}
PROC_N=${PROC_N:-100}
PEAK_SIZE=${PEAK_SIZE:-52428800}
PEAK_ONLY=${PEAK_ONLY:-0}
REV_ONLY=${REV_ONLY:-0}
REV_ROUNDS=${REV_ROUNDS:-3}
KEYD_ONLY=${KEYD_ONLY:-0}
KEYD_ROUNDS=${KEYD_ROUNDS:-3}
KEYD_THREADS=${KEYD_THREADS:-"1 $(nproc)"}
KEYD_PIN=${KEYD_PIN:-1}
work=$(mktemp -d /tmp/smrelay-sbench.XXXXXX)
load=$(uptime | sed 's/.*load average: //')
trap 'rm -rf "$work/peak"; echo "work directory: $work"' EXIT
trap 'exit 130' INT TERM

die() { echo "smime.sh: $*" >&2; exit 1; }
# kv LINE KEY: the value of KEY=VALUE in a line of smime_bench output.
kv() { echo " $1" | sed -n "s/.* $2=\([^ ]*\).*/\1/p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", n / s; else print "n/a" }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ------------------------------------------------------------- preparation
command -v openssl >/dev/null 2>&1 || die "openssl not installed"
if [ -z "${SMIME_BENCH:-}" ]; then
	SMIME_BENCH=$root/build-bench/bench/smime_bench
	echo "building bench/smime_bench in build-bench/ ..."
	[ -x "$root/configure" ] || (cd "$root" && ./autogen.sh) >/dev/null 2>&1 || die "autogen failed"
	mkdir -p "$root/build-bench"
	(cd "$root/build-bench" && { [ -f Makefile ] || ../configure --quiet; } &&
		make -j"$(nproc)" bench/smime_bench bench/tls_bench smrelayd smrelayctl >make.out 2>&1) ||
		die "build failed (see build-bench/make.out)"
fi
[ -x "$SMIME_BENCH" ] || die "$SMIME_BENCH not found"
SMRELAYCTL=${SMRELAYCTL:-$(dirname "$SMIME_BENCH")/../smrelayctl}
TLS_BENCH=${TLS_BENCH:-$(dirname "$SMIME_BENCH")/tls_bench}

echo "== test PKI (tests/smime/pki.sh)"
sh "$root/tests/smime/pki.sh" "$work/pki" >"$work/pki.out" 2>&1 || die "pki.sh failed: $(tail -n 3 "$work/pki.out")"
P=$work/pki
A=(--cert "$P/alice.pem" --key "$P/alice.key" --chain "$P/chain.pem"
	--to "$P/bob.pem" --to-key "$P/bob.key" --ca "$P/trust.pem" --from alice@example.com)
sizes=(4096 1048576)
for s in "${sizes[@]}"; do
	"$SMIME_BENCH" --entity "$work/ent.$s" --size "$s" || die "entity $s"
done
label() { case $1 in 4096) echo "4 KB" ;; 1048576) echo "1 MB" ;; *) echo "$1 B" ;; esac; }

declare -A r
# ------------------------------------------------------------- DECVER_ONLY
# Inbound speed alone, about 14 x SECS seconds: openssl speed, then
# DECVER_ROUNDS rounds of decrypt+verify of 4 KB and 1 MB with the
# engine's memo (as the daemon runs it) and without (--no-memo: every
# certificate parsed, every chain built), and 4 KB against the RSA
# private operation in alternating half-second slices (--op ratio: the
# machine's load moves both alike); medians.
if [ "${DECVER_ONLY:-0}" = 1 ]; then
	echo "== openssl speed -seconds 3 rsa2048"
	openssl speed -seconds 3 rsa2048 >"$work/speed.out" 2>&1 || die "openssl speed failed"
	rsa_sign=$(awk '/^rsa 2048 bits/ { print $6 }' "$work/speed.out")
	declare -A dv
	for ((i = 0; i < ${DECVER_ROUNDS:-3}; i++)); do
		for s in "${sizes[@]}"; do
			for m in memo no-memo; do
				f=()
				[ "$m" = no-memo ] && f=(--no-memo)
				echo "== round $((i + 1)): decrypt+verify $(label "$s"), $m"
				line=$("$SMIME_BENCH" "${A[@]}" --size "$s" --secs "$SECS" --op decver "${f[@]}" 2>"$work/dv.err") ||
					die "smime_bench failed: $(tail -n 3 "$work/dv.err")"
				dv[$s:$m:ops]="${dv[$s:$m:ops]:-} $(kv "$line" ops_cpu)"
				dv[$s:$m:mbs]="${dv[$s:$m:mbs]:-} $(kv "$line" mbs_cpu)"
			done
		done
		echo "== round $((i + 1)): decrypt+verify 4 KB against the RSA private operation, alternating"
		line=$("$SMIME_BENCH" "${A[@]}" --size 4096 --secs "$SECS" --op ratio 2>"$work/dv.err") ||
			die "smime_bench --op ratio failed: $(tail -n 3 "$work/dv.err")"
		dv[ratio]="${dv[ratio]:-} $(kv "$line" ratio)"
		dv[rsa]="${dv[rsa]:-} $(kv "$line" rsa_ops_cpu)"
	done
	med() { echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
	{
		echo
		echo "smrelay inbound decrypt+verify, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPU(s)," \
			"load average at start: $load"
		echo "$(openssl version); smrelay$(cd "$root" && git describe --always --dirty 2>/dev/null | sed 's/^/ at /')"
		echo "openssl speed -seconds 3 rsa2048: $rsa_sign sign/s; in-process RSA private operation" \
			"(smime_bench --op rsa, median): $(med ${dv[rsa]})/s"
		echo
		printf '| %-30s | %4s | %-26s | %-26s |\n' "decrypt+verify, per CPU-second" size "with memo: median (runs)" "--no-memo: median (runs)"
		printf '|%s|%s|%s|%s|\n' "--------------------------------" "------" "----------------------------" "----------------------------"
		for s in "${sizes[@]}"; do
			u=ops
			[ "$s" = 1048576 ] && u=mbs
			printf '| %-30s | %4s | %-26s | %-26s |\n' "$( [ $u = ops ] && echo "messages/s" || echo "MB/s")" "$(label "$s")" \
				"$(med ${dv[$s:memo:$u]}) ($(echo ${dv[$s:memo:$u]}))" "$(med ${dv[$s:no-memo:$u]}) ($(echo ${dv[$s:no-memo:$u]}))"
		done
		echo
		printf '| %-52s | %10s | %6s | %4s |\n' target measured ratio met
		printf '|%s|%s|%s|%s|\n' "------------------------------------------------------" "------------" "--------" "------"
		q=$(med ${dv[4096:memo:ops]})
		printf '| %-52s | %10s | %6s | %4s |\n' "4 KB >= 0.85 x openssl speed rsa2048 sign/s" "$q/s" \
			"$(ratio "$q" "$rsa_sign")" "$(awk -v a="$q" -v b="$rsa_sign" 'BEGIN { print (a >= 0.85 * b) ? "yes" : "NO" }')"
		q=$(med ${dv[ratio]})
		printf '| %-52s | %10s | %6s | %4s |\n' "  the same, alternating with the RSA operation" "($(echo ${dv[ratio]}))" \
			"$q" "$(awk -v a="$q" 'BEGIN { print (a >= 0.85) ? "yes" : "NO" }')"
		q=$(med ${dv[1048576:memo:mbs]})
		printf '| %-52s | %5s MB/s | %6s | %4s |\n' "1 MB >= 400 MB/s" "$q" "$(ratio "$q" 400)" \
			"$(awk -v a="$q" 'BEGIN { print (a >= 400) ? "yes" : "NO" }')"
	} | tee "$work/results.txt"
	exit 0
fi
if [ "$PEAK_ONLY" != 1 ] && [ "$REV_ONLY" != 1 ] && [ "$KEYD_ONLY" != 1 ]; then
# ------------------------------------------------------------- 1. ceiling
echo "== 1. openssl speed -seconds 3 rsa2048"
openssl speed -seconds 3 rsa2048 >"$work/speed.out" 2>&1 || die "openssl speed failed"
rsa_sign=$(awk '/^rsa 2048 bits/ { print $6 }' "$work/speed.out")
[ -n "$rsa_sign" ] || die "no rsa2048 sign/s in $work/speed.out"

# ------------------------------------------------------------- 2. in-process
for out in mem presized; do
	for s in "${sizes[@]}"; do
		echo "== 2. in-process, $(label "$s"), output $out, ${SECS} s per operation"
		"$SMIME_BENCH" "${A[@]}" --size "$s" --secs "$SECS" --out "$out" --op all \
			>"$work/inproc.$out.$s" 2>&1 || die "smime_bench failed: $(tail -n 3 "$work/inproc.$out.$s")"
		while read -r line; do
			op=$(kv "$line" op)
			r[$op:$s:$out:ops]=$(kv "$line" ops_cpu)
			r[$op:$s:$out:opsw]=$(kv "$line" ops_wall)
			r[$op:$s:$out:mbs]=$(kv "$line" mbs_cpu)
		done <"$work/inproc.$out.$s"
	done
done

# ------------------------------------------------------------- 3. per process
# proc_loop OP FILE: PROC_N messages, one openssl process (two for signenc)
# each; sets r[OP:SIZE:proc:*].
proc_loop() {
	local op=$1 f=$2 s=$3 i t
	TIMEFORMAT='%R %U %S'
	t=$( { time {
		for ((i = 0; i < PROC_N; i++)); do
			case $op in
			sign)
				openssl cms -sign -binary -in "$f" -signer "$P/alice.pem" \
					-inkey "$P/alice.key" -certfile "$P/chain.pem" -out /dev/null ;;
			encrypt)
				openssl cms -encrypt -aes256 -binary -in "$f" -out /dev/null "$P/bob.pem" ;;
			signenc)
				openssl cms -sign -binary -in "$f" -signer "$P/alice.pem" \
					-inkey "$P/alice.key" -certfile "$P/chain.pem" |
					openssl cms -encrypt -aes256 -binary -out /dev/null "$P/bob.pem" ;;
			esac || return 1
		done
	} 2>"$work/proc.err"; } 2>&1 ) || die "openssl cms -$op failed: $(tail -n 2 "$work/proc.err")"
	r[$op:$s:proc:opsw]=$(rate "$PROC_N" "$(echo "$t" | awk '{ print $1 }')")
	r[$op:$s:proc:ops]=$(rate "$PROC_N" "$(echo "$t" | awk '{ print $2 + $3 }')")
}
for s in "${sizes[@]}"; do
	for op in sign encrypt signenc; do
		echo "== 3. openssl cms, process per message: $op $(label "$s") x $PROC_N"
		proc_loop "$op" "$work/ent.$s" "$s"
	done
done

fi
if [ "$PEAK_ONLY" != 1 ] && [ "$KEYD_ONLY" != 1 ]; then
if [ "$REV_ONLY" = 1 ]; then
	echo "== 2. in-process decrypt+verify 4 KB, no revocation (the baseline of 3b)"
	line=$("$SMIME_BENCH" "${A[@]}" --size 4096 --secs "$SECS" --out mem --op decver 2>"$work/rev.err") ||
		die "smime_bench failed: $(tail -n 3 "$work/rev.err")"
	r[decver:4096:mem:ops]=$(kv "$line" ops_cpu)
fi
# ------------------------------------------------------------- 3b. revocation
# decrypt+verify of 4 KB with every link of the chain checked against its
# CRL (pki.sh's crl.pem: the intermediate's and the root's, revocation =
# hard), against the same run without revocation (r[decver:4096:mem:ops]).
echo "== 3b. in-process decrypt+verify 4 KB, revocation on (cached CRLs)"
line=$("$SMIME_BENCH" "${A[@]}" --size 4096 --secs "$SECS" --out mem --op decver \
	--crl "$P/crl.pem" 2>"$work/rev.err") || die "smime_bench --crl failed: $(tail -n 3 "$work/rev.err")"
rev_ops=$(kv "$line" ops_cpu)

# ------------------------------------------------------------- 3c. daemon path
# decrypt+verify of 4 KB through pipeline_transform_body() and the
# certificate cache over a store that smrelayctl filled (the root as
# anchor, the intermediate, bob's key), as the daemon's workers run it
# (a decrypt+verify rule, the message in a msgbuf); REV_ROUNDS
# rounds, the four runs alternating within each:
#   off        revocation = off
#   ocsp       soft, no CRL in the store: leaf and intermediate decided by
#              the stored OCSP answers (one store query each per message);
#              the root has neither, so the verdict says "revocation unknown"
#   crl        hard, both CRLs in the store
#   ocsp+crl   hard, the root's CRL only: the leaf by its OCSP answer, the
#              intermediate and the root by the root's CRL
echo "== 3c. decrypt+verify 4 KB through the daemon's pipeline, revocation off/OCSP/CRL"
[ -x "$SMRELAYCTL" ] || die "$SMRELAYCTL not found (step 3c)"
# mkstore NAME [CRL...]: a store in $work/st.NAME
mkstore() {
	local n=$1 c
	shift
	printf 'listen = 127.0.0.1:2599\nrelay = 127.0.0.1:2525\ndata_dir = %s/st.%s\nhostname = bench.example\n' \
		"$work" "$n" >"$work/st.$n.conf"
	for c in "trust import $P/trust.pem" "cert import $P/chain.pem" "key import $P/bob.p12"; do
		# shellcheck disable=SC2086
		"$SMRELAYCTL" -c "$work/st.$n.conf" $c >/dev/null 2>>"$work/st.err" || die "smrelayctl $c: $(tail -n 1 "$work/st.err")"
	done
	for c in "$@"; do
		"$SMRELAYCTL" -c "$work/st.$n.conf" crl import "$c" >/dev/null 2>>"$work/st.err" || die "crl import $c"
	done
}
# smrelayctl crl import takes the first CRL of a file: one file per CRL
awk -v d="$work" '/BEGIN X509 CRL/ { n++ } n { print > (d "/crl." n ".pem") }' "$P/crl.pem"
rootcrl=$(for f in "$work"/crl.[0-9]*.pem; do
	openssl crl -in "$f" -noout -issuer | grep -q "CN *= *smrelay Test Root" && echo "$f"; done)
[ -n "$rootcrl" ] || die "no root CRL in $P/crl.pem"
mkstore plain
mkstore crl "$work"/crl.[0-9]*.pem
mkstore rootcrl "$rootcrl"
declare -A dp
dp_run() {
	local name=$1 st=$2 expect=$3 line
	shift 3
	line=$("$SMIME_BENCH" "${A[@]}" --size 4096 --secs "$SECS" --out mem --op decver \
		--store "$work/st.$st" --expect "$expect" "$@" 2>"$work/dp.err") ||
		die "smime_bench --store ($name) failed: $(tail -n 3 "$work/dp.err")"
	dp[$name]="${dp[$name]:-} $(kv "$line" ops_cpu)"
}
for ((i = 0; i < REV_ROUNDS; i++)); do
	dp_run off plain "smime=pass" --revocation off
	dp_run ocsp plain "revocation: OCSP" --revocation hard --ocsp
	dp_run crl crl "revocation: imported CRL" --revocation hard
	dp_run ocspcrl rootcrl "revocation: OCSP" --revocation hard --ocsp
done
fi
median() { echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ------------------------------------------------------------- 3d. key process
# Sign and decrypt+verify of 4 KB on T threads at once (smime_bench
# --threads T), with the keys in the process (keys=inproc) or as handles
# on a key process that smime_bench forks (--keyd: daemon/keyd's server
# on one event loop, hardened, the keys in the secure heap; the threads'
# requests pipelined on the one socketpair).  RSA: alice, bob; EC: alice-ec,
# bob-ec (ECDH key agreement).  KEYD_ROUNDS rounds, in-process and keyd
# alternating (which goes first swaps each round); medians.
declare -A kd tl kd_ceil
# ident KEY: the identity options for KEY (rsa, ec) in KI
ident() {
	local s=
	[ "$1" = ec ] && s=-ec
	KI=(--cert "$P/alice$s.pem" --key "$P/alice$s.key" --chain "$P/chain.pem"
		--to "$P/bob$s.pem" --to-key "$P/bob$s.key" --ca "$P/trust.pem" --from alice@example.com)
}
# modes ROUND [PIN]: in-process and keyd (and with PIN=1 pin: keyd with the
# bench and its key process on CPU 0, taskset), rotated each round
modes() {
	local m=(inproc keyd) i
	[ "${2:-0}" = 1 ] && [ "$KEYD_PIN" = 1 ] && m+=(pin)
	for ((i = 0; i < ${#m[@]}; i++)); do
		echo "${m[($1 + i) % ${#m[@]}]}"
	done
}
# mode_args MODE: the options (KF) and the command prefix (PRE) of a mode
mode_args() {
	KF=()
	PRE=()
	case $1 in
	keyd) KF=(--keyd) ;;
	pin) KF=(--keyd); PRE=(taskset -c 0) ;;
	esac
}
# us_per SECONDS N: microseconds per item
us_per() { awk -v s="$1" -v n="$2" 'BEGIN { printf "%.1f", (n > 0 ? 1e6 * s / n : 0) }'; }
# kd_run ROUND KEY OP T MODE: one run of step 3d
kd_run() {
	local k=$2 op=$3 t=$4 m=$5 line
	mode_args "$m"
	ident "$k"
	echo "== 3d. round $(($1 + 1))/$KEYD_ROUNDS: $k $op 4 KB, $t thread(s), keys $m"
	line=$("${PRE[@]}" "$SMIME_BENCH" "${KI[@]}" --size 4096 --secs "$SECS" --op "$op" --threads "$t" \
		"${KF[@]}" 2>"$work/kd.err") || die "smime_bench --threads $t ${KF[*]} failed: $(tail -n 3 "$work/kd.err")"
	echo "$line" >>"$work/keyd.out"
	kd[$k:$op:$t:$m:cpu]="${kd[$k:$op:$t:$m:cpu]:-} $(kv "$line" ops_cpu)"
	kd[$k:$op:$t:$m:wall]="${kd[$k:$op:$t:$m:wall]:-} $(kv "$line" ops_wall)"
	kd[$k:$op:$t:$m:busy]="${kd[$k:$op:$t:$m:busy]:-} $(ratio "$(kv "$line" keyd_cpu_s)" "$(kv "$line" wall_s)")"
	kd[$k:$op:$t:$m:us]="${kd[$k:$op:$t:$m:us]:-} $(us_per "$(kv "$line" cpu_s)" "$(kv "$line" iters)")"
	kd[$k:$op:$t:$m:kus]="${kd[$k:$op:$t:$m:kus]:-} $(us_per "$(kv "$line" keyd_cpu_s)" "$(kv "$line" iters)")"
}
# ------------------------------------------------------------- 3e. TLS
# Full TLS handshakes on one thread (bench/tls_bench: the daemon's server
# context, no resumption; client and server over memory BIOs), the server
# key in-process or a handle on a forked key process; the server's chain
# is the leaf and chain.pem.
# tl_run ROUND KEY VERSION MODE: one run of step 3e
tl_run() {
	local k=$2 v=$3 m=$4 line f s=
	mode_args "$m"
	[ "$k" = ec ] && s=-ec
	echo "== 3e. round $(($1 + 1))/$KEYD_ROUNDS: TLS $v handshakes, $k server key, $m"
	line=$("${PRE[@]}" "$TLS_BENCH" --cert "$work/tls-$k.pem" --key "$P/alice$s.key" --version "$v" \
		--secs "$SECS" "${KF[@]}" 2>"$work/tl.err") || die "tls_bench ${KF[*]} failed: $(tail -n 3 "$work/tl.err")"
	echo "$line" >>"$work/tls.out"
	for f in hs_wall hs_cpu srv_wall_med_us srv_wall_p99_us srv_wait_med_us srv_wait_p99_us; do
		tl[$k:$v:$m:$f]="${tl[$k:$v:$m:$f]:-} $(kv "$line" "$f")"
	done
}
if [ "$PEAK_ONLY" != 1 ] && [ "$REV_ONLY" != 1 ]; then
	[ -x "$TLS_BENCH" ] || die "$TLS_BENCH not found (step 3e)"
	[ "$KEYD_PIN" = 1 ] && ! command -v taskset >/dev/null 2>&1 && { echo "no taskset: KEYD_PIN=0"; KEYD_PIN=0; }
	echo "== 3d. openssl speed -seconds 2 rsa2048 ecdsap256 (one core: what one key process can sign)"
	openssl speed -seconds 2 rsa2048 ecdsap256 >"$work/speed.kd.out" 2>&1 || die "openssl speed failed"
	kd_ceil[rsa]=$(awk '/^rsa 2048 bits/ { print $6 }' "$work/speed.kd.out")
	kd_ceil[ec]=$(awk '/ecdsa \(nistp256\)/ { print $7 }' "$work/speed.kd.out")
	load_kd=$(uptime | sed 's/.*load average: //')
	for ((i = 0; i < KEYD_ROUNDS; i++)); do
		for k in rsa ec; do
			for t in $KEYD_THREADS; do
				for op in sign decver; do
					for m in $(modes "$i" "$((t == 1))"); do
						kd_run "$i" "$k" "$op" "$t" "$m"
					done
				done
			done
		done
	done
	load_tl=$(uptime | sed 's/.*load average: //')
	cat "$P/alice.pem" "$P/chain.pem" >"$work/tls-rsa.pem"
	cat "$P/alice-ec.pem" "$P/chain.pem" >"$work/tls-ec.pem"
	for ((i = 0; i < KEYD_ROUNDS; i++)); do
		for k in rsa ec; do
			for v in 1.3 1.2; do
				for m in $(modes "$i" 1); do
					tl_run "$i" "$k" "$v" "$m"
				done
			done
		done
	done
	load_end=$(uptime | sed 's/.*load average: //')
fi

# ------------------------------------------------------------- 4. memory
declare -A pk
peakops=(sign encrypt signenc decver)
{ [ "$REV_ONLY" = 1 ] || [ "$KEYD_ONLY" = 1 ]; } && peakops=()
for op in "${peakops[@]}"; do
	echo "== 4. peak RSS: $op, $PEAK_SIZE-byte entity, file -> /dev/null"
	rm -rf "$work/peak"
	mkdir -p "$work/peak"
	line=$("$SMIME_BENCH" "${A[@]}" --peak "$PEAK_SIZE" --op "$op" --dir "$work/peak" 2>"$work/peak.err") ||
		die "peak $op failed: $(tail -n 3 "$work/peak.err")"
	echo "$line" >>"$work/peak.out"
	pk[$op:hwm]=$(kv "$line" hwm_kb)
	pk[$op:before]=$(kv "$line" rss_before_kb)
	pk[$op:mid]=$(kv "$line" hwm_mid_kb)
	pk[$op:secs]=$(kv "$line" wall_s)
done
rm -rf "$work/peak"

# ------------------------------------------------------------- report
name() {
	case $1 in
	sign) echo "sign (multipart/signed)" ;;
	encrypt) echo "encrypt (AES-256-CBC)" ;;
	signenc) echo "sign+encrypt" ;;
	decver) echo "decrypt+verify" ;;
	esac
}
dp_name() {
	case $1 in
	off) echo "off" ;;
	ocsp) echo "OCSP, no CRL (hard)" ;;
	crl) echo "CRLs (hard)" ;;
	ocspcrl) echo "leaf OCSP, root's CRL (hard)" ;;
	esac
}
# kd_name KEY OP: "RSA sign", "EC dec+verify"
kd_name() { echo "$(echo "$1" | tr a-z A-Z) $(case $2 in sign) echo sign ;; *) echo "dec+verify" ;; esac)"; }
# us2 A B: "A / B" for two microsecond figures
us2() { printf '%s / %s' "$(printf %.0f "$1")" "$(printf %.0f "$2")"; }
# sub A B: A - B
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a - b }'; }
# The tables of steps 3d and 3e.
keyd_report() {
	local k op t v m f ratc ratw
	local -A c w q
	echo
	echo "key process (3d): 4 KB, T threads at once, keys in-process against handles on a"
	echo "forked key process (one socketpair, requests pipelined); medians of $KEYD_ROUNDS"
	echo "alternating rounds of ${SECS} s; ops per CPU-second of smime_bench + key process,"
	echo "per wall-second in brackets; keyd busy: the key process's CPU / wall"
	echo "one core, openssl speed -seconds 2: rsa2048 ${kd_ceil[rsa]} sign/s, ecdsap256 ${kd_ceil[ec]} sign/s"
	echo "load average at the start of 3d: $load_kd; of 3e: $load_tl; at its end: $load_end"
	printf '| %-14s | %2s | %19s | %19s | %6s | %6s | %6s | %9s | %10s |\n' "key, operation" T \
		"in-process (wall)" "keyd (wall)" "busy" "r CPU" "r wall" ">=0.8 CPU" ">=0.8 wall"
	printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "----------------" "----" "---------------------" \
		"---------------------" "--------" "--------" "--------" "-----------" "------------"
	for k in rsa ec; do
		for op in sign decver; do
			for t in $KEYD_THREADS; do
				for m in inproc keyd; do
					c[$m]=$(median ${kd[$k:$op:$t:$m:cpu]})
					w[$m]=$(median ${kd[$k:$op:$t:$m:wall]})
				done
				ratc=$(ratio "${c[keyd]}" "${c[inproc]}")
				ratw=$(ratio "${w[keyd]}" "${w[inproc]}")
				printf '| %-14s | %2s | %8.1f (%8.1f) | %8.1f (%8.1f) | %6s | %6s | %6s | %9s | %10s |\n' \
					"$(kd_name "$k" "$op")" \
					"$t" "${c[inproc]}" "${w[inproc]}" "${c[keyd]}" "${w[keyd]}" \
					"$(median ${kd[$k:$op:$t:keyd:busy]})" "$ratc" "$ratw" \
					"$(met "$ratc" 0.8)" "$(met "$ratw" 0.8)"
			done
		done
	done
	[ "$KEYD_PIN" = 1 ] && kd_pin_report
	echo
	echo "CPU per operation (3d, medians), microseconds: in-process; with the key process,"
	echo "this process's part + the key process's part = total; extra = total - in-process"
	printf '| %-14s | %2s | %10s | %10s | %10s | %10s | %10s |\n' "key, operation" T \
		"in-process" "this part" "key proc" "total" "extra"
	printf '|%s|%s|%s|%s|%s|%s|%s|\n' "----------------" "----" "------------" "------------" \
		"------------" "------------" "------------"
	for k in rsa ec; do
		for op in sign decver; do
			for t in $KEYD_THREADS; do
				c[i]=$(median ${kd[$k:$op:$t:inproc:us]})
				c[n]=$(median ${kd[$k:$op:$t:keyd:us]})
				c[k]=$(median ${kd[$k:$op:$t:keyd:kus]})
				printf '| %-14s | %2s | %10.1f | %10.1f | %10.1f | %10.1f | %10.1f |\n' \
					"$(kd_name "$k" "$op")" "$t" "${c[i]}" "${c[n]}" "${c[k]}" \
					"$(awk -v a="${c[n]}" -v b="${c[k]}" 'BEGIN { print a + b }')" \
					"$(awk -v a="${c[n]}" -v b="${c[k]}" -v c="${c[i]}" 'BEGIN { print a + b - c }')"
			done
		done
	done
	echo
	echo "TLS (3e, bench/tls_bench): full handshakes on one thread, client and server over"
	echo "memory BIOs, the daemon's server context; medians of $KEYD_ROUNDS runs of ${SECS} s each."
	echo "Server: wall time in its SSL_do_handshake calls per handshake (what the event loop"
	echo "spends), median / p99 in microseconds; wait: that time minus the thread's CPU time"
	echo "(blocked on the key process, or preempted)"
	printf '| %-12s | %19s | %19s | %6s | %6s | %11s | %11s | %11s | %11s | %11s |\n' "key, TLS" \
		"in-process (wall)" "keyd (wall)" "r CPU" "r wall" "server" "server keyd" \
		"added" "wait" "wait keyd"
	printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "--------------" "---------------------" \
		"---------------------" "--------" "--------" "-------------" "-------------" \
		"-------------" "-------------" "-------------"
	for k in rsa ec; do
		for v in 1.3 1.2; do
			q=()
			for m in inproc keyd; do
				for f in hs_wall hs_cpu srv_wall_med_us srv_wall_p99_us srv_wait_med_us srv_wait_p99_us; do
					q[$m:$f]=$(median ${tl[$k:$v:$m:$f]})
				done
			done
			printf '| %-12s | %8.1f (%8.1f) | %8.1f (%8.1f) | %6s | %6s | %11s | %11s | %11s | %11s | %11s |\n' \
				"$(echo "$k" | tr a-z A-Z) TLS $v" "${q[inproc:hs_cpu]}" "${q[inproc:hs_wall]}" \
				"${q[keyd:hs_cpu]}" "${q[keyd:hs_wall]}" \
				"$(ratio "${q[keyd:hs_cpu]}" "${q[inproc:hs_cpu]}")" \
				"$(ratio "${q[keyd:hs_wall]}" "${q[inproc:hs_wall]}")" \
				"$(us2 "${q[inproc:srv_wall_med_us]}" "${q[inproc:srv_wall_p99_us]}")" \
				"$(us2 "${q[keyd:srv_wall_med_us]}" "${q[keyd:srv_wall_p99_us]}")" \
				"$(sub "${q[keyd:srv_wall_med_us]}" "${q[inproc:srv_wall_med_us]}") / $(sub "${q[keyd:srv_wall_p99_us]}" "${q[inproc:srv_wall_p99_us]}")" \
				"$(us2 "${q[inproc:srv_wait_med_us]}" "${q[inproc:srv_wait_p99_us]}")" \
				"$(us2 "${q[keyd:srv_wait_med_us]}" "${q[keyd:srv_wait_p99_us]}")"
		done
	done
	[ "$KEYD_PIN" = 1 ] && tl_pin_report
}
# The one-thread runs with everything on CPU 0 (3d), against in-process.
kd_pin_report() {
	local k op c w ci wi
	echo
	echo "the same at T = 1 with the bench and its key process on one CPU (taskset -c 0:"
	echo "no wake-up of the other CPU per request)"
	printf '| %-14s | %19s | %19s | %6s | %6s | %9s | %10s |\n' "key, operation" \
		"in-process (wall)" "keyd 1 CPU (wall)" "r CPU" "r wall" ">=0.8 CPU" ">=0.8 wall"
	printf '|%s|%s|%s|%s|%s|%s|%s|\n' "----------------" "---------------------" \
		"---------------------" "--------" "--------" "-----------" "------------"
	for k in rsa ec; do
		for op in sign decver; do
			ci=$(median ${kd[$k:$op:1:inproc:cpu]})
			wi=$(median ${kd[$k:$op:1:inproc:wall]})
			c=$(median ${kd[$k:$op:1:pin:cpu]})
			w=$(median ${kd[$k:$op:1:pin:wall]})
			printf '| %-14s | %8.1f (%8.1f) | %8.1f (%8.1f) | %6s | %6s | %9s | %10s |\n' \
				"$(kd_name "$k" "$op")" "$ci" "$wi" "$c" "$w" "$(ratio "$c" "$ci")" \
				"$(ratio "$w" "$wi")" "$(met "$(ratio "$c" "$ci")" 0.8)" "$(met "$(ratio "$w" "$wi")" 0.8)"
		done
	done
}
# 3e with everything on CPU 0, against in-process.
tl_pin_report() {
	local k v f
	local -A q
	echo
	echo "the same with the bench and its key process on one CPU (taskset -c 0)"
	printf '| %-12s | %19s | %6s | %6s | %11s | %11s | %11s |\n' "key, TLS" \
		"keyd 1 CPU (wall)" "r CPU" "r wall" "server" "added" "wait"
	printf '|%s|%s|%s|%s|%s|%s|%s|\n' "--------------" "---------------------" "--------" \
		"--------" "-------------" "-------------" "-------------"
	for k in rsa ec; do
		for v in 1.3 1.2; do
			for f in hs_wall hs_cpu srv_wall_med_us srv_wall_p99_us srv_wait_med_us srv_wait_p99_us; do
				q[i:$f]=$(median ${tl[$k:$v:inproc:$f]})
				q[p:$f]=$(median ${tl[$k:$v:pin:$f]})
			done
			printf '| %-12s | %8.1f (%8.1f) | %6s | %6s | %11s | %11s | %11s |\n' \
				"$(echo "$k" | tr a-z A-Z) TLS $v" "${q[p:hs_cpu]}" "${q[p:hs_wall]}" \
				"$(ratio "${q[p:hs_cpu]}" "${q[i:hs_cpu]}")" "$(ratio "${q[p:hs_wall]}" "${q[i:hs_wall]}")" \
				"$(us2 "${q[p:srv_wall_med_us]}" "${q[p:srv_wall_p99_us]}")" \
				"$(sub "${q[p:srv_wall_med_us]}" "${q[i:srv_wall_med_us]}") / $(sub "${q[p:srv_wall_p99_us]}" "${q[i:srv_wall_p99_us]}")" \
				"$(us2 "${q[p:srv_wait_med_us]}" "${q[p:srv_wait_p99_us]}")"
		done
	done
}
met() { awk -v a="$1" -v b="$2" -v lt="${3:-0}" 'BEGIN { if (lt) print (a < b ? "yes" : "NO"); else print (a >= b ? "yes" : "NO") }'; }
{
	echo
	echo "smrelay S/MIME engine benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPU(s), $(uname -r)"
	echo "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	echo "$(openssl version); smrelay$(cd "$root" && git describe --always --dirty 2>/dev/null | sed 's/^/ at /')"
	echo "load average at start: $load"
	if [ "$PEAK_ONLY" != 1 ] && [ "$REV_ONLY" != 1 ] && [ "$KEYD_ONLY" != 1 ]; then
	echo "openssl speed -seconds 3 rsa2048: $rsa_sign sign/s (one core, user CPU)"
	echo
	echo "in-process, one core (bench/smime_bench, ${SECS} s each; rates per CPU-second,"
	echo "wall-clock ops/s in brackets; 'presized': output buffers allocated once)"
	printf '| %-24s | %4s | %19s | %9s | %10s | %9s |\n' operation size "ops/s (wall)" "MB/s" "presized" "MB/s"
	printf '|%s|%s|%s|%s|%s|%s|\n' "--------------------------" "------" "---------------------" "-----------" "------------" "-----------"
	for s in "${sizes[@]}"; do
		for op in sign encrypt signenc decver; do
			printf '| %-24s | %4s | %8s (%8s) | %9s | %10s | %9s |\n' "$(name "$op")" "$(label "$s")" \
				"${r[$op:$s:mem:ops]}" "${r[$op:$s:mem:opsw]}" "${r[$op:$s:mem:mbs]}" \
				"${r[$op:$s:presized:ops]}" "${r[$op:$s:presized:mbs]}"
		done
	done
	echo
	echo "process per message: openssl cms, $PROC_N messages (sign+encrypt: two processes piped)"
	printf '| %-24s | %4s | %19s | %18s |\n' operation size "ops/s (wall)" "in-process speedup"
	printf '|%s|%s|%s|%s|\n' "--------------------------" "------" "---------------------" "--------------------"
	for s in "${sizes[@]}"; do
		for op in sign encrypt signenc; do
			printf '| %-24s | %4s | %8s (%8s) | %18s |\n' "$(name "$op")" "$(label "$s")" \
				"${r[$op:$s:proc:ops]}" "${r[$op:$s:proc:opsw]}" \
				"$(ratio "${r[$op:$s:mem:ops]}" "${r[$op:$s:proc:ops]}")x"
		done
	done
	fi
	if [ "$PEAK_ONLY" != 1 ] && [ "$KEYD_ONLY" != 1 ]; then
	echo
	echo "revocation, decrypt+verify 4 KB, ops per CPU-second"
	echo "  engine only (3b, cms_verify, CRLs from a file): $rev_ops with CRLs," \
		"${r[decver:4096:mem:ops]} without: $(ratio "$rev_ops" "${r[decver:4096:mem:ops]}")"
	echo "  daemon path (3c, pipeline_transform_body + certificate cache + store), $REV_ROUNDS rounds" \
		"of ${SECS} s, runs alternating:"
	printf '| %-34s | %8s | %-34s | %6s |\n' revocation median runs "vs off"
	printf '|%s|%s|%s|%s|\n' "------------------------------------" "----------" "------------------------------------" "--------"
	for k in off ocsp crl ocspcrl; do
		printf '| %-34s | %8s | %-34s | %6s |\n' "$(dp_name "$k")" "$(median ${dp[$k]})" \
			"$(echo ${dp[$k]})" "$(ratio "$(median ${dp[$k]})" "$(median ${dp[off]})")"
	done
	fi
	[ "$PEAK_ONLY" != 1 ] && [ "$REV_ONLY" != 1 ] && keyd_report
	if [ "$REV_ONLY" != 1 ] && [ "$KEYD_ONLY" != 1 ]; then
	echo
	echo "peak RSS (VmHWM), one $(mb $((PEAK_SIZE / 1024))) MB entity streamed from a file to /dev/null"
	printf '| %-24s | %8s | %10s | %17s | %9s |\n' operation seconds "RSS before" "peak after step 1" "peak"
	printf '|%s|%s|%s|%s|%s|\n' "--------------------------" "----------" "------------" "-------------------" "-----------"
	for op in sign encrypt signenc decver; do
		mid=-
		[ "${pk[$op:mid]}" != 0 ] && mid="$(mb "${pk[$op:mid]}") MB"
		printf '| %-24s | %8s | %7s MB | %17s | %6s MB |\n' "$(name "$op")" "${pk[$op:secs]}" \
			"$(mb "${pk[$op:before]}")" "$mid" "$(mb "${pk[$op:hwm]}")"
	done
	fi
	if [ "$KEYD_ONLY" != 1 ]; then
	echo
	echo "targets (per core = per CPU-second of the one-threaded process)"
	printf '| %-44s | %14s | %6s | %4s |\n' target measured ratio met
	printf '|%s|%s|%s|%s|\n' "----------------------------------------------" "----------------" "--------" "------"
	[ "$PEAK_ONLY" != 1 ] && [ "$REV_ONLY" != 1 ] && {
	printf '| %-44s | %14s | %6s | %4s |\n' "4 KB sign >= 0.85 x rsa2048 sign/s ($rsa_sign)" \
		"${r[sign:4096:mem:ops]}/s" \
		"$(awk -v a="${r[sign:4096:mem:ops]}" -v b="$rsa_sign" 'BEGIN { printf "%.3f", a / b }')" \
		"$(met "${r[sign:4096:mem:ops]}" "$(awk -v b="$rsa_sign" 'BEGIN { print 0.85 * b }')")"
	printf '| %-44s | %14s | %6s | %4s |\n' "4 KB decrypt+verify >= 0.85 x rsa2048 sign/s" \
		"${r[decver:4096:mem:ops]}/s" \
		"$(awk -v a="${r[decver:4096:mem:ops]}" -v b="$rsa_sign" 'BEGIN { printf "%.3f", a / b }')" \
		"$(met "${r[decver:4096:mem:ops]}" "$(awk -v b="$rsa_sign" 'BEGIN { print 0.85 * b }')")"
	printf '| %-44s | %9s MB/s | %6s | %4s |\n' "1 MB decrypt+verify >= 400 MB/s" \
		"${r[decver:1048576:mem:mbs]}" "$(ratio "${r[decver:1048576:mem:mbs]}" 400)" \
		"$(met "${r[decver:1048576:mem:mbs]}" 400)"
	printf '| %-44s | %9s MB/s | %6s | %4s |\n' "1 MB sign+encrypt >= 150 MB/s" \
		"${r[signenc:1048576:mem:mbs]}" "$(ratio "${r[signenc:1048576:mem:mbs]}" 150)" \
		"$(met "${r[signenc:1048576:mem:mbs]}" 150)"
	printf '| %-44s | %9s MB/s | %6s | %4s |\n' "  the same, presized outputs" \
		"${r[signenc:1048576:presized:mbs]}" "$(ratio "${r[signenc:1048576:presized:mbs]}" 150)" \
		"$(met "${r[signenc:1048576:presized:mbs]}" 150)"
	}
	[ "$PEAK_ONLY" != 1 ] && {
	printf '| %-44s | %14s | %6s | %4s |\n' "4 KB decrypt+verify, CRLs >= 0.9 x without" \
		"$rev_ops/s" "$(ratio "$rev_ops" "${r[decver:4096:mem:ops]}")" \
		"$(met "$rev_ops" "$(awk -v b="${r[decver:4096:mem:ops]}" 'BEGIN { print 0.9 * b }')")"
	for k in ocsp crl ocspcrl; do
		printf '| %-44s | %14s | %6s | %4s |\n' "  daemon, $k >= 0.9 x off (medians)" \
			"$(median ${dp[$k]})/s" "$(ratio "$(median ${dp[$k]})" "$(median ${dp[off]})")" \
			"$(met "$(median ${dp[$k]})" "$(awk -v b="$(median ${dp[off]})" 'BEGIN { print 0.9 * b }')")"
	done
	}
	for op in "${peakops[@]}"; do
		printf '| %-44s | %11s MB | %6s | %4s |\n' "peak RSS < 150 MB, $(name "$op")" \
			"$(mb "${pk[$op:hwm]}")" "$(ratio "$(mb "${pk[$op:hwm]}")" 150)" \
			"$(met "$(mb "${pk[$op:hwm]}")" 150 1)"
	done
	fi
} | tee "$work/results.txt"
