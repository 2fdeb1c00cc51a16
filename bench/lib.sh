# bench/lib.sh: what the benchmark scripts share (sourced; bash).

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# user + system CPU seconds of a process so far
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null; }
# the machine's busy and idle CPU seconds so far
machine_cpu() { awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f %.2f", ($2 + $3 + $4 + $7 + $8) / hz, ($5 + $6) / hz }' /proc/stat; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# smrelayd_child PID NAME: the pid of smrelayd PID's child NAME
# (smrelayd-net: sessions, S/MIME, the spool; smrelayd-keyd: the keys).
smrelayd_child() {
	# cat opens the files: mawk stops at one that is gone
	cat /proc/[0-9]*/stat 2>/dev/null |
		awk -v ppid="$1" -v name="($2)" '$2 == name && $4 == ppid { print $1; exit }'
}
# smrelayd_net PID: the network process, waited for (the parent only
# supervises; it has no sessions).
smrelayd_net() {
	local n=0 p
	until p=$(smrelayd_child "$1" smrelayd-net) && [ -n "$p" ]; do
		n=$((n + 1))
		[ $n -gt 100 ] && return 1
		sleep 0.1
	done
	echo "$p"
}
# daemon_cpu PID: user + system CPU seconds of smrelayd PID and its key and
# network processes so far.
daemon_cpu() {
	local t=0 p c
	for p in "$1" $(smrelayd_child "$1" smrelayd-net) $(smrelayd_child "$1" smrelayd-keyd); do
		c=$(proc_cpu "$p") && t=$(awk -v a="$t" -v b="$c" 'BEGIN { printf "%.2f", a + b }')
	done
	echo "$t"
}

# listening PORT: something listens on TCP PORT (IPv4 or IPv6).
listening() {
	local hex
	hex=$(printf ':%04X' "$1")
	awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
		/proc/net/tcp /proc/net/tcp6
}

# wait_port PORT SECONDS: until something listens on PORT; 1 on timeout.
wait_port() {
	local n=0
	until listening "$1"; do
		n=$((n + 1))
		[ $n -gt $(($2 * 10)) ] && return 1
		sleep 0.1
	done
}

# bench_binaries: SMRELAYD (built in $root/build-bench/ unless given) and
# SMRELAYCTL next to it unless given; dies (the caller's die) if missing.
bench_binaries() {
	if [ -z "${SMRELAYD:-}" ]; then
		SMRELAYD=$root/build-bench/smrelayd
		echo "building smrelayd in build-bench/ ..."
		[ -x "$root/configure" ] || (cd "$root" && ./autogen.sh) >/dev/null 2>&1 || die "autogen failed"
		mkdir -p "$root/build-bench"
		(cd "$root/build-bench" && { [ -f Makefile ] || ../configure --quiet; } && make -j"$(nproc)" >make.out 2>&1) ||
			die "build failed (see build-bench/make.out)"
	fi
	[ -x "$SMRELAYD" ] || die "$SMRELAYD not found"
	SMRELAYCTL=${SMRELAYCTL:-$(dirname "$SMRELAYD")/smrelayctl}
}
