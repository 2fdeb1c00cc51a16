#!/bin/sh
# t_relay.sh: `make check` entry for the relay client scenarios (run.sh)
# against smtp-sink and tls_nexthop.py, with the relay_drive built here.
drive=./tests/relay/relay_drive
[ -x "$drive" ] || { echo "relay_drive not built" >&2; exit 99; }
# Under AddressSanitizer the shadow memory and quarantine inflate RSS.
if grep -q -a -m1 '__asan_init' "$drive"; then
	RELAY_RSS_MAX_KB=${RELAY_RSS_MAX_KB:-80000}
	export RELAY_RSS_MAX_KB
fi
exec sh "${srcdir:-.}/tests/relay/run.sh" "$drive"
