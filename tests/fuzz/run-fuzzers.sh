#!/bin/sh
# run-fuzzers.sh SECONDS: run each built libFuzzer harness for SECONDS,
# FUZZ_JOBS (default: the number of CPUs) of them at a time.
# Run from a build directory configured with --enable-fuzzing CC=clang,
# after "make tests/fuzz/fuzz_smtp_parse ..." (this script builds nothing).
# The golden inputs of tests/unit seed the corpora.  Exits 1 on a crash.
set -u
secs=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
unit=$here/../unit
work=${FUZZ_WORKDIR:-tests/fuzz/work}
status=0

# seed NAME PREFIX DIR...: one seed file per test line of the golden .in
# files, with the common escapes decoded and PREFIX put in front.
seed() {
	name=$1
	prefix=$2
	shift 2
	mkdir -p "$work/$name"
	for dir in "$@"; do
		[ -d "$unit/$dir" ] || continue
		cat "$unit/$dir"/*.in | grep -v '^[#!]' | grep -v '^$' |
		    awk -v d="$work/$name" -v p="$dir" -v pre="$prefix" '{
			sub(/^v[12] /, "")
			gsub(/\\r/, "\r"); gsub(/\\n/, "\n")
			gsub(/\\t/, "\t"); gsub(/\\s/, " "); gsub(/\\e/, "")
			f = sprintf("%s/seed-%s-%d", d, p, NR)
			printf "%s%s", pre, $0 > f
			close(f)
		    }'
	done
}

seed fuzz_smtp_parse "" smtp_parse
seed fuzz_smtp_data "00" smtp_data smtp_stuff
seed fuzz_smtp_reply "" smtp_reply
seed fuzz_proxy "" proxy_parse
seed fuzz_xforward "" xforward
# keyproto: one frame of each kind (tests/unit/keyproto has the rest)
kp=$work/fuzz_keyproto
mkdir -p "$kp"
printf '\0\0\0\0\1\4\0\0\0\0\0\1' >"$kp/seed-ping"
{ printf '\0\0\0\106\1\1\0\0\0\0\0\2'; head -c 32 /dev/zero
  printf '\1\3\0\0\0\40'; head -c 32 /dev/zero; } >"$kp/seed-sign"
{ printf '\0\0\1\46\1\2\0\0\0\0\0\3'; head -c 32 /dev/zero
  printf '\2\3\3\0\1\0'; head -c 256 /dev/zero; } >"$kp/seed-decrypt"
{ printf '\0\0\0\201\1\3\0\0\0\0\0\4'; head -c 32 /dev/zero
  printf '\0\0\0\0\0\133'; head -c 91 /dev/zero; } >"$kp/seed-derive"
printf '\0\0\0\2\1\200\0\0\0\0\0\1\0\0' >"$kp/seed-ok"
printf '\0\0\0\6\1\201\0\0\0\0\0\2\0\2\0\2no' >"$kp/seed-err"
cat "$kp/seed-ping" "$kp/seed-sign" "$kp/seed-ok" >"$kp/seed-pipelined"
mkdir -p "$work/fuzz_mime"
for f in "$here"/../mime/*.eml; do
	{ printf '\000\000'; cat "$f"; } >"$work/fuzz_mime/seed-${f##*/}"
done

mkdir -p "$work/fuzz_cms"
cp "$here"/corpus_cms/* "$work/fuzz_cms/"
mkdir -p "$work/fuzz_cms_info"
cp "$here"/corpus_cms/* "$work/fuzz_cms_info/"

mkdir -p "$work/fuzz_p11_uri"
printf '\001token=smrelay;object=alice;id=%%01%%02?module-path=/usr/lib/x.so&pin-value=1234' \
    >"$work/fuzz_p11_uri/seed-1"
printf '\001type=private;serial=ab?pin-source=file:///etc/pin' >"$work/fuzz_p11_uri/seed-2"

ran=0
mkdir -p "$work/fuzz_policy"
printf '*.example.com\nalice@a.example.com\nsign,encrypt' >"$work/fuzz_policy/seed-1"
printf '@example.com\nbob@EXAMPLE.com\npass' >"$work/fuzz_policy/seed-2"

mkdir -p "$work/fuzz_mark"
printf 'X-Smrelay-Processed: fuzz.example; sign,encrypt;\r\n mac=%064d\r\nContent-Type: text/plain\r\n\r\nhello\r\n' 0 >"$work/fuzz_mark/seed-1"
printf 'X-Smrelay-Processed: other.example; sign\r\nX-Smrelay-Processed: FUZZ.example\r\n\r\n' >"$work/fuzz_mark/seed-2"

# dns rdata: first byte 0 MX, 1 TLSA, 2 a name, 3 an address (SMIMEA)
dn=$work/fuzz_dns_rdata
mkdir -p "$dn"
printf '\000\000\012\002mx\007example\003com\000' >"$dn/seed-mx"
printf '\000\000\000\000' >"$dn/seed-nullmx"
{ printf '\001\003\001\001'; head -c 32 /dev/zero; } >"$dn/seed-tlsa"
printf '\002_25._tcp.mx.example.com.' >"$dn/seed-name"
printf '\003alice@example.com' >"$dn/seed-addr"

# dsn: action/RET byte, then sender, rcpt, orcpt, status, diag, remote
# MTA, ENVID and the original, NUL-separated
ds=$work/fuzz_dsn
mkdir -p "$ds"
printf '\000alice@example.com\000bob@example.net\000rfc822;bob+2Bx@example.net\0005.1.1\000550 5.1.1 <bob@example.net>: no such user\nhere\000mx.example.net\000id+3D1\000From: alice@example.com\r\nSubject: hi\r\n\r\nbody\r\n' >"$ds/seed-failed"
printf '\011a@x.example\000b@y.example\000\0004.4.7\000\000\000\000Subject: x\n\n.\n' >"$ds/seed-delayed"

# one harness: its log in $work/NAME.log, its verdict in $work/NAME.rc
run_one() {
	name=$1 bin=$2
	# fuzz_cms: OpenSSL 3.0's CMS_verify leaks on some malformed input;
	# suppressed by that name (lsan-openssl.supp), which takes the slow
	# unwinder to see through libcrypto
	fenv=
	[ "$name" = fuzz_cms ] && fenv="ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0 LSAN_OPTIONS=suppressions=$here/lsan-openssl.supp"
	env $fenv "$bin" -max_total_time="$secs" -max_len=4096 \
	    -artifact_prefix="$work/$name-" "$work/$name" \
	    >"$work/$name.log" 2>&1
	echo $? >"$work/$name.rc"
}

fjobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
names=
running=0
for bin in tests/fuzz/fuzz_smtp_parse tests/fuzz/fuzz_smtp_data \
    tests/fuzz/fuzz_smtp_reply tests/fuzz/fuzz_proxy tests/fuzz/fuzz_keyproto \
    tests/fuzz/fuzz_mime \
    tests/fuzz/fuzz_cms tests/fuzz/fuzz_cms_info tests/policy/fuzz_policy tests/fuzz/fuzz_mark \
    tests/fuzz/fuzz_dns_rdata tests/fuzz/fuzz_xforward tests/fuzz/fuzz_dsn \
    tests/keyd/fuzz_p11_uri; do
	name=${bin##*/}
	if [ ! -x "$bin" ]; then
		echo "skip $name: $bin not built"
		continue
	fi
	ran=$((ran + 1))
	echo "run $name for ${secs}s"
	rm -f "$work/$name.rc"
	run_one "$name" "$bin" &
	names="$names $name"
	running=$((running + 1))
	if [ "$running" -ge "$fjobs" ]; then
		wait
		running=0
	fi
done
wait
for name in $names; do
	if [ "$(cat "$work/$name.rc" 2>/dev/null)" != 0 ]; then
		echo "FAIL $name (see $work/$name.log)"
		tail -30 "$work/$name.log"
		status=1
	else
		echo "ok $name: $(grep -c . "$work/$name.log") log lines," \
		    "$(ls "$work/$name" | wc -l) corpus files"
	fi
done
[ "$ran" -gt 0 ] || { echo "no fuzzer built"; exit 1; }
exit $status
