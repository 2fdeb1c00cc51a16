#!/bin/bash
# tests/run-all.sh: the one test command.
#
#   1. build-ci/   ../configure --enable-werror      make -j2 check
#   2. build-san/  ../configure --enable-sanitizers  make check   (ASan+UBSan)
#   3. build-fuzz/ ../configure --enable-fuzzing CC=clang, each libFuzzer
#      harness for FUZZ_SECONDS (default 40), JOBS of them at a time, via
#      tests/fuzz/run-fuzzers.sh, when that script exists and clang is
#      installed.
#   4. build-ci/   make distcheck-quick: the release tarball builds,
#      installs, uninstalls and passes check-quick (about a minute); then
#      the README's demo (contrib/demo.sh) from that tarball
#      (tests/pkg/t_tarball_demo.sh).
#   5. tests/pkg/t_deb.sh: the Debian package built, installed, run, purged
#      (root only; a few minutes).
#
# Prints the automake totals of each run, then one line
# "N passed, N failed[, N skipped]" summed over the runs, and exits non-zero
# if anything failed (a build failure counts as one failure).  The .log files
# of failed tests are printed.
#
# Environment: JOBS (make -j, default 2), FUZZ_SECONDS, SKIP_SAN=1,
# SKIP_FUZZ=1, SKIP_DISTCHECK=1, SKIP_DEB=1, DETECT_LEAKS=0|1 (LeakSanitizer; default: 1 when it works
# here).
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
jobs=${JOBS:-2}
fuzz_secs=${FUZZ_SECONDS:-40}
total_pass=0
total_fail=0
total_skip=0
summary=()

say() { printf '\n=== %s\n' "$*"; }

# Regenerate the build system in a fresh clone.
if [ ! -x configure ] || [ ! -f Makefile.in ]; then
	say "autogen"
	./autogen.sh || { echo "autogen.sh failed"; echo "0 passed, 1 failed"; exit 1; }
fi

# LeakSanitizer needs ptrace-like access some sandboxes forbid: use it only
# if a tiny leaking program is caught.
leaks_work() {
	local d rc
	d=$(mktemp -d)
	printf '#include <stdlib.h>\nint main(void){void *volatile p = malloc(7); p = 0; (void)p; return 0;}\n' >"$d/l.c"
	if ! ${CC:-cc} -fsanitize=address -o "$d/l" "$d/l.c" 2>/dev/null; then
		rm -rf "$d"
		return 1
	fi
	ASAN_OPTIONS=detect_leaks=1 "$d/l" >"$d/out" 2>&1
	rc=$?
	grep -q 'detected memory leaks' "$d/out" && [ $rc -ne 0 ]
	rc=$?
	rm -rf "$d"
	return $rc
}

# Print the logs of failed tests under build dir $1.
show_failed_logs() {
	local trs log
	while IFS= read -r trs; do
		log=${trs%.trs}.log
		echo "----- $log"
		cat "$log"
	done < <(find "$1" -name '*.trs' -exec grep -l -E ':test-result: (FAIL|ERROR|XPASS)' {} + 2>/dev/null)
}

# Totals from a test-suite.log: "pass fail skip".
totals() {
	awk '
		/^# PASS:/  { p = $3 }
		/^# FAIL:/  { f += $3 }
		/^# ERROR:/ { f += $3 }
		/^# XPASS:/ { f += $3 }
		/^# SKIP:/  { s += $3 }
		/^# XFAIL:/ { s += $3 }
		/^# TOTAL:/ { seen = 1 }
		END { if (!seen) exit 1; printf "%d %d %d\n", p, f, s }' "$1"
}

# run_build NAME CHECK-TARGET CONFIGURE-ARGS...: configure, build, make check.
run_build() {
	local name=$1 target=$2 dir=$root/build-$1 p f s
	shift 2
	say "$name: configure $*"
	mkdir -p "$dir"
	if ! (cd "$dir" && ../configure "$@" >configure.out 2>&1); then
		tail -n 40 "$dir/configure.out"
		summary+=("$name: configure FAILED")
		total_fail=$((total_fail + 1))
		return 1
	fi
	say "$name: build"
	if ! (cd "$dir" && make -j"$jobs" >build.out 2>&1); then
		grep -E 'error|warning' "$dir/build.out" | head -n 40
		tail -n 20 "$dir/build.out"
		summary+=("$name: build FAILED")
		total_fail=$((total_fail + 1))
		return 1
	fi
	say "$name: $target"
	rm -f "$dir/test-suite.log"
	(cd "$dir" && make $target >check.out 2>&1)
	grep -E '^(PASS|FAIL|ERROR|XPASS|XFAIL|SKIP):' "$dir/check.out"
	if ! read -r p f s < <(totals "$dir/test-suite.log" 2>/dev/null); then
		tail -n 40 "$dir/check.out"
		summary+=("$name: make check did not produce test-suite.log")
		total_fail=$((total_fail + 1))
		return 1
	fi
	sed -n '/^# TOTAL:/,/^# ERROR:/p' "$dir/test-suite.log"
	summary+=("$name: $p passed, $f failed, $s skipped")
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	total_skip=$((total_skip + s))
	if [ "$f" -gt 0 ]; then
		say "$name: logs of failed tests"
		show_failed_logs "$dir"
	fi
	return 0
}

# 1. Warnings are errors.
run_build ci "-j$jobs check" --enable-werror

# 2. AddressSanitizer + UndefinedBehaviorSanitizer.
if [ "${SKIP_SAN:-0}" != 1 ]; then
	if [ -z "${DETECT_LEAKS:-}" ]; then
		if leaks_work; then DETECT_LEAKS=1; else DETECT_LEAKS=0; fi
	fi
	export ASAN_OPTIONS="detect_leaks=$DETECT_LEAKS:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
	export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
	export LSAN_OPTIONS="print_suppressions=0"
	echo "ASAN_OPTIONS=$ASAN_OPTIONS"
	run_build san "-j$jobs check" --enable-sanitizers
	unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
fi

# 3. Fuzzers, briefly.
if [ "${SKIP_FUZZ:-0}" != 1 ] && [ -f tests/fuzz/run-fuzzers.sh ]; then
	if ! command -v clang >/dev/null 2>&1; then
		say "fuzz: clang not installed, skipped"
		summary+=("fuzz: skipped (no clang)")
		total_skip=$((total_skip + 1))
	else
		dir=$root/build-fuzz
		mkdir -p "$dir"
		say "fuzz: configure --enable-fuzzing CC=clang"
		targets=()
		for f in tests/fuzz/fuzz_*.c tests/*/fuzz_*.c; do
			[ -e "$f" ] && targets+=("${f%.c}")
		done
		mapfile -t targets < <(printf '%s\n' "${targets[@]}" | sort -u)
		if (cd "$dir" && ../configure --enable-fuzzing CC=clang >configure.out 2>&1 &&
			make -j"$jobs" "${targets[@]}" >build.out 2>&1); then
			say "fuzz: ${fuzz_secs}s per harness"
			if (cd "$dir" && FUZZ_JOBS=$jobs sh "$root/tests/fuzz/run-fuzzers.sh" "$fuzz_secs"); then
				summary+=("fuzz: ${#targets[@]} harness(es) ran ${fuzz_secs}s each, no crash")
				total_pass=$((total_pass + 1))
			else
				summary+=("fuzz: FAILED")
				total_fail=$((total_fail + 1))
			fi
		else
			tail -n 30 "$dir/configure.out" "$dir/build.out" 2>/dev/null
			summary+=("fuzz: build FAILED")
			total_fail=$((total_fail + 1))
		fi
	fi
fi

# run_step NAME LOG COMMAND...: one step whose exit status is its result
# (77: skipped), timed; the end of LOG when it fails.
run_step() {
	local name=$1 log=$2 start rc
	shift 2
	say "$name"
	start=$(date +%s)
	"$@" >"$log" 2>&1
	rc=$?
	grep -E '^(PASS|FAIL|SKIP)' "$log" | grep -v '^PASS' | head -n 40
	case $rc in
	0)
		summary+=("$name: passed in $(($(date +%s) - start))s")
		total_pass=$((total_pass + 1)) ;;
	77)
		summary+=("$name: skipped ($(grep -m1 '^SKIP' "$log"))")
		total_skip=$((total_skip + 1)) ;;
	*)
		tail -n 40 "$log"
		summary+=("$name: FAILED after $(($(date +%s) - start))s (see $log)")
		total_fail=$((total_fail + 1)) ;;
	esac
}

# 4. The release tarball: builds, installs, uninstalls, check-quick.
if [ "${SKIP_DISTCHECK:-0}" != 1 ] && [ -f "$root/build-ci/Makefile" ]; then
	run_step distcheck "$root/build-ci/distcheck.out" \
		make -C "$root/build-ci" -j"$jobs" distcheck-quick
	# 4b. The README's demo from that tarball.
	tarball=$(ls "$root"/build-ci/smrelay-*.tar.gz 2>/dev/null | head -n 1)
	run_step tarball-demo "$root/build-ci/tarball-demo.out" \
		bash "$root/tests/pkg/t_tarball_demo.sh" "${tarball:-$root/build-ci/smrelay.tar.gz}"
fi

# 5. The Debian package.
mkdir -p "$root/build-ci"
if [ "${SKIP_DEB:-0}" != 1 ]; then
	run_step deb "$root/build-ci/deb.out" env JOBS="$jobs" \
		bash "$root/tests/pkg/t_deb.sh"
fi

say "summary"
printf '%s\n' "${summary[@]}"
if [ $total_skip -gt 0 ]; then
	echo "$total_pass passed, $total_fail failed, $total_skip skipped"
else
	echo "$total_pass passed, $total_fail failed"
fi
[ $total_fail -eq 0 ]
