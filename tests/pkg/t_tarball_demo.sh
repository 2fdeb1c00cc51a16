#!/bin/bash
# tests/pkg/t_tarball_demo.sh TARBALL: the README's first command from a
# release: the tarball `make dist` made, extracted into an empty directory,
# and contrib/demo.sh run there (it builds, starts the sink and smrelayd,
# sends one message over STARTTLS, then openssl cms decrypts it and checks
# alice's signature).  tests/run-all.sh runs it after distcheck-quick, on
# the tarball that step left in build-ci/.
set -u

tarball=${1:?usage: t_tarball_demo.sh TARBALL}
[ -f "$tarball" ] || { echo "FAIL tarball_demo: no $tarball"; exit 1; }
work=$(mktemp -d /tmp/smrelay-tarball.XXXXXX)
chmod 755 "$work"     # smrelayd drops to its user, which must reach data_dir
trap 'rm -rf "$work"' EXIT

# two ports nobody listens on, the kernel's choice
ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1",0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
set -- $ports

tar -C "$work" -xzf "$tarball" || { echo "FAIL tarball_demo: cannot extract $tarball"; exit 1; }
dir=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[ -f "$dir/contrib/demo.sh" ] || { echo "FAIL tarball_demo: the tarball has no contrib/demo.sh"; exit 1; }
if ! (cd "$dir" && DEMO_PORT=$1 DEMO_SINK_PORT=$2 bash contrib/demo.sh) >"$work/demo.out" 2>&1; then
	tail -n 40 "$work/demo.out"
	echo "FAIL tarball_demo: contrib/demo.sh from the tarball failed"
	exit 1
fi
# what the demo promises: a captured enveloped message, its signature
# verified on bob's side by openssl cms
if ! grep -q '^Verification successful' "$work/demo.out" &&
	! grep -q 'CMS Verification successful' "$work/demo.out"; then
	tail -n 40 "$work/demo.out"
	echo "FAIL tarball_demo: no successful signature check in the demo's output"
	exit 1
fi
echo "PASS tarball_demo"
