#!/bin/bash
# t_config.sh: `smrelayd -c FILE -n`: "configuration OK" and exit 0, or
# "FILE:LINE: reason" and a non-zero exit, for the keys of SPEC.md.
. "$(dirname "$0")/lib.sh"
need_bins

# check_conf LINE... : write the lines (after a valid base) to a file, run
# -n; sets OUT (stdout+stderr), RC, CFILE and BASE_LINES (lines before ours).
check_conf() {
	it_certs || return 1
	CFILE=$CASE_DIR/test.conf
	mkdir -p "$CASE_DIR/data"
	{
		echo "# smrelayd -n test"
		echo "relay = 127.0.0.1:2525"
		echo "data_dir = $CASE_DIR/data"
		printf '%s\n' "$@"
	} >"$CFILE"
	BASE_LINES=3
	OUT=$(timeout 30 "$SMRELAYD" -c "$CFILE" -n 2>&1)
	RC=$?
	echo "# -n: rc=$RC: $(short_out)"
}

# OUT in one line for a FAIL reason (the sanitizer summary if there is one).
short_out() {
	local sum
	sum=$(grep -m1 '^SUMMARY: ' <<<"$OUT")
	if [ -n "$sum" ]; then
		echo "$sum"
	else
		tr '\n' ' ' <<<"$OUT" | sed 's/  */ /g' | cut -c1-300
	fi
}

# conf_ok LINE...: must print "configuration OK" and exit 0.
conf_ok() {
	check_conf "$@" || return 1
	[ $RC -eq 0 ] || { fail_because "exit $RC for a valid config: $(short_out)"; return 1; }
	grep -q 'configuration OK' <<<"$(short_out)" || fail_because "no 'configuration OK' in: $(short_out)"
}

# conf_bad N LINE...: must fail, naming the file and line BASE_LINES+N.
conf_bad() {
	local n=$1 want
	shift
	check_conf "$@" || return 1
	want="$CFILE:$((BASE_LINES + n)): "
	[ $RC -ne 0 ] || { fail_because "exit 0 for a bad config ($*): $(short_out)"; return 1; }
	grep -q -F -- "$want" <<<"$(short_out)" || fail_because "expected '$want<reason>', got: $(short_out)"
}

t_minimal_ok() { conf_ok; }

t_all_keys_ok() {
	conf_ok "listen = 127.0.0.1:10025" \
		"listen = 127.0.0.1:10465 tls=implicit proxy=off" \
		"listen = 127.0.0.1:10027 tls=starttls proxy=v1" \
		"hostname = gw.example.com" \
		"tls_cert_file = $PKI/srv.pem" "tls_key_file = $PKI/srv.key" \
		"inbound_tls = encrypt" "relay_tls = verify" "relay_tls_ca_file = $PKI/ca.pem" \
		"relay_networks = 127.0.0.0/8 ::1/128 192.0.2.0/24" \
		"max_message_size = 50M" "max_recipients = 100" "max_connections = 10" \
		"queue_lifetime = 5d" "log_level = debug" "revocation = hard" "revocation_fetch = no" "revocation_wait = 10s"
}

t_ipv6_listen_ok() { conf_ok "listen = [::1]:10026 tls=none proxy=v2"; }

# SPEC: "# starts a comment", so also after a value.
t_trailing_comment() { conf_ok "max_recipients = 10 # ten is plenty"; }

t_comments_blank_lines() {
	conf_ok "" "   # indented comment" "# listen = nowhere" "" "max_recipients = 10"
}

t_sizes_durations() {
	conf_ok "max_message_size = 10k" "queue_lifetime = 90m" || return 1
	conf_ok "max_message_size = 1G" "queue_lifetime = 12h" || return 1
	conf_ok "max_message_size = 1048576" "queue_lifetime = 30s"
}

t_unknown_key() { conf_bad 2 "hostname = a.example" "no_such_key = 1"; }
t_repeated_key() { conf_bad 3 "hostname = a.example" "max_recipients = 5" "hostname = b.example"; }
t_bad_relay_tls() { conf_bad 1 "relay_tls = sometimes"; }
t_bad_inbound_tls() { conf_bad 1 "inbound_tls = verify"; }
t_bad_size() { conf_bad 1 "max_message_size = 10X"; }
t_bad_duration() { conf_bad 1 "queue_lifetime = 5w"; }
t_bad_number() { conf_bad 2 "max_recipients = 10" "max_connections = many"; }
t_bad_netmask() { conf_bad 1 "relay_networks = 127.0.0.1/33"; }
t_bad_listen_option() { conf_bad 1 "listen = 127.0.0.1:10025 tls=sometimes"; }
t_bad_log_level() { conf_bad 1 "log_level = chatty"; }
t_bad_revocation() { conf_bad 1 "revocation = maybe"; }
t_bad_revocation_fetch() { conf_bad 1 "revocation_fetch = sometimes"; }
# a message may wait 0 (never) to 60 s for a fetch, not longer
t_revocation_wait() {
	conf_ok "revocation_wait = 0" && conf_bad 1 "revocation_wait = 2m" &&
		conf_bad 1 "revocation_wait = -1" && conf_bad 1 "revocation_wait = soon"
}
t_revocation_values() { conf_ok "revocation = off" && conf_ok "revocation = soft"; }
t_missing_equals() { conf_bad 1 "hostname gw.example.com"; }

# Delivery to the Internet: routes, DNS, DANE, SMIMEA lookups.
t_routing_keys_ok() {
	echo '. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D' \
		>"$CASE_DIR/root.key"
	conf_ok "relay_tls = dane" "relay_mx_port = 2525" \
		"route = alice@example.com [::1]:2526 tls=verify" \
		"route = @example.com 127.0.0.1:2527 tls=dane-only" \
		"route = *.example.org mx" "route = *@example.net mx tls=may" "route = * mx" \
		"dns_resolver = 127.0.0.1:53" "dns_trust_anchor = $CASE_DIR/root.key" \
		"cert_lookup = smimea"
}

t_bad_route() {
	conf_bad 1 "route = example.com mx" && conf_bad 2 "route = * mx" "route = @a.example host:0" &&
		conf_bad 1 "route = @a.example mx tls=maybe" && conf_bad 1 "route = @a.example mx extra" &&
		conf_bad 1 "route = @a.example" && conf_bad 1 "relay_mx_port = 0" &&
		conf_bad 1 "dns_resolver = dns.example" && conf_bad 1 "cert_lookup = ldap"
}

# The trust anchor file is checked only when DNS will be used.
t_trust_anchor() {
	conf_ok "dns_trust_anchor = $CASE_DIR/missing.key" "route = @a.example 127.0.0.1:2526" &&
		conf_bad 2 "route = @a.example mx" "dns_trust_anchor = $CASE_DIR/missing.key" &&
		conf_bad 1 "dns_trust_anchor = $CASE_DIR/missing.key" "relay_tls = dane-only" &&
		conf_bad 1 "dns_trust_anchor = $CASE_DIR/missing.key" "cert_lookup = smimea"
}

# Keys that must come together or need others.
t_cert_without_key() {
	check_conf "tls_cert_file = $PKI/srv.pem" || return 1
	[ $RC -ne 0 ] || fail_because "tls_cert_file without tls_key_file accepted: $(short_out)"
}

t_implicit_without_cert() {
	check_conf "listen = 127.0.0.1:10465 tls=implicit" || return 1
	[ $RC -ne 0 ] || fail_because "tls=implicit without a certificate accepted: $(short_out)"
}

t_missing_relay() {
	CFILE=$CASE_DIR/norelay.conf
	printf 'hostname = a.example\ndata_dir = %s\n' "$CASE_DIR" >"$CFILE"
	OUT=$(timeout 30 "$SMRELAYD" -c "$CFILE" -n 2>&1)
	RC=$?
	[ $RC -ne 0 ] || { fail_because "config without relay accepted: $(short_out)"; return 1; }
	grep -q -F -- "$CFILE" <<<"$(short_out)" || fail_because "error does not name the file: $(short_out)"
}

t_missing_file() {
	OUT=$(timeout 30 "$SMRELAYD" -c "$CASE_DIR/does-not-exist.conf" -n 2>&1)
	RC=$?
	[ $RC -ne 0 ] || { fail_because "missing config file accepted: $(short_out)"; return 1; }
	grep -q -F -- "does-not-exist.conf" <<<"$(short_out)" || fail_because "error does not name the file: $(short_out)"
}

t_unreadable_cert() {
	check_conf "tls_cert_file = $CASE_DIR/none.pem" "tls_key_file = $CASE_DIR/none.key" || return 1
	[ $RC -ne 0 ] || fail_because "nonexistent certificate files accepted by -n: $(short_out)"
}

# A config error stops the daemon itself too (not only -n).
t_daemon_refuses_bad_config() {
	check_conf "relay_tls = sometimes" || return 1
	OUT=$(timeout 10 "$SMRELAYD" -c "$CFILE" -f 2>&1)
	RC=$?
	[ $RC -ne 0 ] && [ $RC -ne 124 ] || { fail_because "smrelayd -f started (rc $RC) with a bad config"; return 1; }
	grep -q -F -- "$CFILE:4: " <<<"$(short_out)" || fail_because "expected '$CFILE:4: reason', got: $(short_out)"
}

# -n checks the database without writing: none on a fresh data_dir (it
# is made at start), a data_dir that does not exist yet is not made, and
# an unusable database is reported with the config file's name.
t_database_checked() {
	conf_ok || return 1
	[ ! -e "$CASE_DIR/data/smrelay.db" ] || { fail_because "-n created data_dir/smrelay.db"; return 1; }
	rm -rf "$CASE_DIR/data"
	CFILE=$CASE_DIR/fresh.conf
	printf 'relay = 127.0.0.1:2525\ndata_dir = %s/data\n' "$CASE_DIR" >"$CFILE"
	OUT=$(timeout 30 "$SMRELAYD" -c "$CFILE" -n 2>&1)
	[ $? -eq 0 ] || { fail_because "-n with a data_dir still to make: $(short_out)"; return 1; }
	[ ! -e "$CASE_DIR/data" ] || { fail_because "-n made data_dir"; return 1; }
	mkdir -p "$CASE_DIR/data/smrelay.db"
	check_conf || return 1
	[ $RC -ne 0 ] || { fail_because "-n exited 0 with smrelay.db a directory"; return 1; }
	grep -q "^$CFILE: database: " <<<"$OUT" || fail_because "no 'FILE: database: reason' in: $(short_out)"
}

# A listener given twice.
t_listen_twice() { conf_bad 3 "listen = 127.0.0.1:10030" "hostname = a.example" "listen = 127.0.0.1:10030 tls=none"; }

# Every problem is reported, one line each: bad lines together; then, for
# a file that parses, a certificate with the wrong key, a missing CA file
# and a key file others can read, in one run.
t_several_problems() {
	check_conf "max_connections = many" "listen = 127.0.0.1" "max_recipients = -1" || return 1
	[ $RC -ne 0 ] || { fail_because "exit 0 for three bad lines"; return 1; }
	for n in 4 5 6; do
		grep -q -F -- "$CFILE:$n: " <<<"$OUT" || { fail_because "line $n not reported: $(short_out)"; return 1; }
	done
	: >"$CASE_DIR/keys.db"
	chmod 644 "$CASE_DIR/keys.db"
	: >"$CASE_DIR/datafile"
	CFILE=$CASE_DIR/three.conf
	printf '%s\n' "relay = 127.0.0.1:2525" "data_dir = $CASE_DIR/datafile" \
		"key_file = $CASE_DIR/keys.db" "tls_cert_file = $PKI/srv.pem" \
		"tls_key_file = $PKI/wrong.key" >"$CFILE"
	OUT=$(timeout 30 "$SMRELAYD" -c "$CFILE" -n 2>&1)
	RC=$?
	echo "# -n: rc=$RC: $(short_out)"
	[ $RC -ne 0 ] || { fail_because "exit 0 with three problems"; return 1; }
	[ "$(wc -l <<<"$OUT")" -ge 3 ] || { fail_because "fewer than 3 lines for 3 problems: $(short_out)"; return 1; }
	grep -q 'datafile: not a directory' <<<"$OUT" || { fail_because "data_dir not reported: $(short_out)"; return 1; }
	grep -q 'keys.db: mode 0644' <<<"$OUT" || { fail_because "the key file's mode is not reported: $(short_out)"; return 1; }
	grep -q -i 'key' <<<"$(head -n 1 <<<"$OUT")" || fail_because "the key mismatch is not reported first: $(short_out)"
}

# -h and --version (SPEC: both programs answer them): exit 0, on stdout.
t_help_version() {
	local prog out
	for prog in "$SMRELAYD" "$SMRELAYCTL"; do
		out=$("$prog" --version 2>/dev/null) ||
			{ fail_because "$prog --version exited $?"; return 1; }
		grep -qx "$(basename "$prog") [0-9][0-9.]*" <<<"$out" ||
			{ fail_because "$prog --version said: $out"; return 1; }
		for opt in -h --help; do
			out=$("$prog" $opt 2>/dev/null) ||
				{ fail_because "$prog $opt exited $?"; return 1; }
			grep -q "^usage: $(basename "$prog") " <<<"$out" ||
				{ fail_because "$prog $opt: no usage on stdout"; return 1; }
		done
		"$prog" --no-such-option >/dev/null 2>&1
		[ $? -eq 2 ] || { fail_because "$prog: a bad option did not exit 2"; return 1; }
	done
}

run_case help_version t_help_version
run_case minimal_ok t_minimal_ok
run_case database_checked t_database_checked
run_case listen_twice t_listen_twice
run_case several_problems t_several_problems
run_case all_keys_ok t_all_keys_ok
run_case ipv6_listen_ok t_ipv6_listen_ok
run_case trailing_comment t_trailing_comment
run_case comments_blank_lines t_comments_blank_lines
run_case sizes_durations t_sizes_durations
run_case unknown_key t_unknown_key
run_case repeated_key t_repeated_key
run_case bad_relay_tls t_bad_relay_tls
run_case bad_inbound_tls t_bad_inbound_tls
run_case bad_size t_bad_size
run_case bad_duration t_bad_duration
run_case bad_number t_bad_number
run_case bad_netmask t_bad_netmask
run_case bad_listen_option t_bad_listen_option
run_case bad_log_level t_bad_log_level
run_case bad_revocation t_bad_revocation
run_case bad_revocation_fetch t_bad_revocation_fetch
run_case revocation_wait t_revocation_wait
run_case revocation_values t_revocation_values
run_case missing_equals t_missing_equals
run_case routing_keys_ok t_routing_keys_ok
run_case bad_route t_bad_route
run_case trust_anchor t_trust_anchor
run_case cert_without_key t_cert_without_key
run_case implicit_without_cert t_implicit_without_cert
run_case missing_relay t_missing_relay
run_case missing_file t_missing_file
run_case unreadable_cert t_unreadable_cert
run_case daemon_refuses_bad_config t_daemon_refuses_bad_config
it_finish
