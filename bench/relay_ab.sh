#!/bin/bash
# bench/relay_ab.sh: two revisions of smrelayd through the same relay
# benchmark, alternating, so that a change's cost is measured against what
# came before on the same machine at the same time.
#
#   bash bench/relay_ab.sh REV_A [REV_B]      (REV_B: the working tree)
#
# Each revision is checked out into a throwaway worktree (git worktree add
# --detach) and built there with the default -O2 (build-bench/); then
# ROUNDS (2) rounds run `bash bench/relay.sh` of that revision with its own
# binaries (each revision's script knows its own daemon: the key process
# came with its own CPU accounting), A and B alternating (the order swaps
# every round), with SKIP_POSTFIX=1 SKIP_MEMORY=1 PERF_M=0 PROC_N=20 and M
# (10000) messages.  The lines of the S/MIME table of every run are kept
# in WORK/ROUND-REV.txt and the summary compares, per run kind, the median
# wall rate and the median CPU-bound estimate (2 CPUs / CPU per message of
# smrelayd + smtp-sink + smtp-source): B / A.
#
# SCRIPT=b runs B's bench/relay.sh for both (A's daemon and smrelayctl
# through B's script: for a run kind A's script lacks, e.g. decrypt,verify).
#
# The first use: the key process (issue 13) against keys in the network
# process (REV_A = 9f2db92, the commit before it), docs/BENCHMARKS.md.
# Needs root (as bench/relay.sh).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
A=${1:?usage: bench/relay_ab.sh REV_A [REV_B]}
B=${2:-}
ROUNDS=${ROUNDS:-2}
M=${M:-10000}
work=$(mktemp -d /tmp/smrelay-ab.XXXXXX)
chmod 755 "$work"
die() { echo "relay_ab.sh: $*" >&2; exit 1; }

# tree REV DIR: a built checkout of REV in DIR (REV "" = this tree)
tree() {
	if [ -z "$1" ]; then
		echo "$root"
		return
	fi
	git -C "$root" worktree add --detach "$2" "$1" >/dev/null 2>&1 ||
		die "cannot check out $1"
	echo "$2"
}
build() {
	(cd "$1" && { [ -x configure ] || ./autogen.sh; } >/dev/null 2>&1 &&
		mkdir -p build-bench && cd build-bench &&
		{ [ -f Makefile ] || ../configure --quiet >/dev/null; } &&
		make -j"$(nproc)" >make.out 2>&1) || die "build of $1 failed ($1/build-bench/make.out)"
}
TA=$(tree "$A" "$work/a")
TB=$(tree "$B" "$work/b")
trap '[ "$TA" != "$root" ] && git -C "$root" worktree remove --force "$TA" >/dev/null 2>&1;
	[ "$TB" != "$root" ] && git -C "$root" worktree remove --force "$TB" >/dev/null 2>&1;
	echo "work directory: $work"' EXIT
build "$TA"
build "$TB"
revname() { git -C "$1" rev-parse --short HEAD; }
echo "A = $(revname "$TA") ($TA), B = $(revname "$TB")$([ "$TB" = "$root" ] && echo ' + working tree')"

for ((r = 1; r <= ROUNDS; r++)); do
	if [ $((r % 2)) = 1 ]; then order="a b"; else order="b a"; fi
	for v in $order; do
		t=$TA
		[ "$v" = b ] && t=$TB
		echo "== round $r/$ROUNDS: $v ($(revname "$t")), load $(cut -d' ' -f1-3 /proc/loadavg)"
		s=$t
		[ "${SCRIPT:-own}" = b ] && s=$TB
		(cd "$s" && SKIP_POSTFIX=1 SKIP_MEMORY=1 PERF_M=0 PROC_N=20 M=$M \
			SMRELAYD="$t/build-bench/smrelayd" bash bench/relay.sh) >"$work/$r-$v.out" 2>&1 ||
			die "bench/relay.sh of $v failed: $(tail -n 3 "$work/$r-$v.out")"
		grep -E '^\| (run 2|no rule|sign|encrypt|decrypt)' "$work/$r-$v.out" |
			grep -v '>=' >"$work/$r-$v.txt"
	done
done

# summary: per run kind, the medians of msgs/s (column 4) of A and B
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# cpu-bound estimate of a row: 2 / (the three CPU columns in ms) * 1000
{
	echo
	echo "A = $(revname "$TA"), B = $(revname "$TB"); $ROUNDS rounds of bench/relay.sh (M=$M), medians"
	printf '| %-34s | %9s | %9s | %6s | %9s | %9s | %6s |\n' run "A msgs/s" "B msgs/s" "B/A" "A cpu-est" "B cpu-est" "B/A"
	printf '|%s|%s|%s|%s|%s|%s|%s|\n' ------------------------------------ ----------- ----------- -------- ----------- ----------- --------
	while IFS= read -r kind; do
		for v in a b; do
			rates=$(cat "$work"/*-"$v".txt | awk -F'|' -v k="$kind" '{ n = $2; gsub(/^ +| +$/, "", n) } n == k { print $5 }' | tr '\n' ' ')
			est=$(cat "$work"/*-"$v".txt | awk -F'|' -v k="$kind" -v n="$(nproc)" '
				{ x = $2; gsub(/^ +| +$/, "", x) }
				x == k { c = $7 + $8 + $9; if (c > 0) print n / c * 1000 }' | tr '\n' ' ')
			eval "r_$v=\$(echo \"\$rates\" | median)"
			eval "e_$v=\$(echo \"\$est\" | median)"
		done
		printf '| %-34s | %9.0f | %9.0f | %6.2f | %9.0f | %9.0f | %6.2f |\n' "$kind" "$r_a" "$r_b" \
			"$(awk -v a="$r_a" -v b="$r_b" 'BEGIN { print (a > 0 ? b / a : 0) }')" "$e_a" "$e_b" \
			"$(awk -v a="$e_a" -v b="$e_b" 'BEGIN { print (a > 0 ? b / a : 0) }')"
	done < <(awk -F'|' '{ x = $2; gsub(/^ +| +$/, "", x); print x }' "$work/1-a.txt")
} | tee "$work/summary.txt"
