#!/bin/bash
# t_metrics.sh: GET /metrics (checked by promtool, scraped by a real
# Prometheus), GET /healthz, and `smrelayctl stats` agreeing with what the
# sink received.
. "$(dirname "$0")/../integration/lib.sh"
need_bins
HTTP_PY=$(cd "$(dirname "$0")" && pwd)/httpc.py

# start_metrics [write_conf args]: sink + smrelayd with metrics_listen on
# MPORT; METRICS is its base URL.
start_metrics() {
	MPORT=$(free_port)
	METRICS=http://127.0.0.1:$MPORT
	start_sink && start_relay metrics_listen="127.0.0.1:$MPORT" "$@" ||
		return 1
	wait_listen "$MPORT" "$SMRELAYD_PID" 15 ||
		fail_because "metrics_listen 127.0.0.1:$MPORT not listening"
}

# scrape FILE: GET /metrics into FILE (body only); fails unless 200.
scrape() {
	local out
	out=$("$PYTHON" "$HTTP_PY" get "$METRICS/metrics") ||
		{ fail_because "GET /metrics: $out"; return 1; }
	[ "${out%%$'\n'*}" = 200 ] ||
		{ fail_because "GET /metrics: status ${out%%$'\n'*}"; return 1; }
	printf '%s\n' "${out#*$'\n'}" >"$1"
}

# metric FILE NAME [LABELS]: one sample's value from a scrape.
metric() {
	"$PYTHON" "$HTTP_PY" sample "$@"
}

# relayed_is N: a fresh scrape says N messages were relayed in-line.
relayed_is() {
	scrape "$CASE_DIR/m.txt" &&
		[ "$(metric "$CASE_DIR/m.txt" smrelay_messages_total 'outcome="relayed"')" = "$1" ]
}

# Traffic from swaks (one with STARTTLS) and smtp-source; the scrape
# passes `promtool check metrics` and its counters match the sink; stats
# and stats --json say the same; the control socket is 0600.
t_scrape_promtool() {
	local n st json
	start_metrics || return 1
	swaks_send --to alice@example.net || return 1
	swaks_send --to bob@example.net -tls || return 1
	swaks_send --to carol@example.net || return 1
	if have smtp-source; then
		timeout 60 smtp-source -s 2 -m 5 -f sender@example.com \
			-t dave@example.net "127.0.0.1:$PORT" ||
			{ fail_because "smtp-source failed"; return 1; }
	fi
	n=$(sink_count)
	[ "$n" -ge 3 ] || { fail_because "the sink has $n messages"; return 1; }
	wait_for 10 relayed_is "$n" ||
		{ fail_because "relayed is $(metric "$CASE_DIR/m.txt" smrelay_messages_total 'outcome="relayed"'), the sink has $n"; return 1; }
	if have promtool; then
		promtool check metrics <"$CASE_DIR/m.txt" >"$CASE_DIR/promtool.log" 2>&1 ||
			{ fail_because "promtool check metrics: $(head -n 3 "$CASE_DIR/promtool.log" | tr '\n' ' ')"; return 1; }
	else
		echo "# promtool not installed: format not checked"
	fi
	assert_eq 1 "$(metric "$CASE_DIR/m.txt" smrelay_tls_handshakes_total 'direction="in",version="TLSv1.3"')" "inbound TLSv1.3 handshakes" || return 1
	assert_eq "$n" "$(metric "$CASE_DIR/m.txt" smrelay_relay_latency_seconds_count)" "next-hop latency observations" || return 1
	[ "$(metric "$CASE_DIR/m.txt" smrelay_connections_total)" -ge 4 ] ||
		{ fail_because "connections_total below 4"; return 1; }
	assert_eq 0 "$(metric "$CASE_DIR/m.txt" smrelay_queue_messages)" "queue size" || return 1
	grep -q '^smrelay_certificate_expiry_seconds{kind="tls",fingerprint="[0-9a-f]\{64\}",subject="/CN=localhost"} [1-9]' "$CASE_DIR/m.txt" ||
		{ fail_because "no expiry of the TLS certificate"; return 1; }
	[ "$(metric "$CASE_DIR/m.txt" process_open_fds)" -gt 3 ] ||
		{ fail_because "process_open_fds"; return 1; }
	# smrelayctl stats: the same figures, through the control socket
	st=$(stat -c '%a' "$CASE_DIR/data/smrelayd.sock") || return 1
	assert_eq 600 "$st" "mode of the control socket" || return 1
	"$SMRELAYCTL" -c "$CONF" stats >"$CASE_DIR/stats.txt" 2>"$CASE_DIR/stats.err" ||
		{ fail_because "stats: $(cat "$CASE_DIR/stats.err")"; return 1; }
	assert_eq "$n" "$(awk -F'\t' '$1 == "smrelay_messages_total" && $2 == "outcome=relayed" { print $3 }' "$CASE_DIR/stats.txt")" "stats: relayed" || return 1
	"$SMRELAYCTL" -c "$CONF" stats --json >"$CASE_DIR/stats.json" ||
		{ fail_because "stats --json failed"; return 1; }
	json=$("$PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print([s["value"] for s in d["smrelay_messages_total"] if s["labels"]["outcome"] == "relayed"][0])' "$CASE_DIR/stats.json") ||
		{ fail_because "stats --json does not parse"; return 1; }
	assert_eq "$n" "$json" "stats --json: relayed"
}

# A real Prometheus scrapes smrelayd every second; its API sees a rate of
# relayed messages above 0.
t_prometheus_rate() {
	local pport up rate i
	have prometheus || { skip "prometheus not installed"; return 0; }
	start_metrics || return 1
	pport=$(free_port)
	cat >"$CASE_DIR/prometheus.yml" <<-YML
	global:
	  scrape_interval: 1s
	  evaluation_interval: 1s
	scrape_configs:
	  - job_name: smrelay
	    static_configs:
	      - targets: ['127.0.0.1:$MPORT']
	YML
	bg prometheus prometheus --config.file="$CASE_DIR/prometheus.yml" \
		--storage.tsdb.path="$CASE_DIR/tsdb" \
		--web.listen-address="127.0.0.1:$pport"
	wait_listen "$pport" "$BG_PID" 30 ||
		{ fail_because "prometheus did not start"; return 1; }
	prom_up() { [ "$("$PYTHON" "$HTTP_PY" query "http://127.0.0.1:$pport" 'up{job="smrelay"}')" = 1 ]; }
	wait_for 30 prom_up || { fail_because "prometheus never scraped smrelayd"; return 1; }
	for i in 1 2 3; do
		swaks_send --to "user$i@example.net" || return 1
	done
	prom_rate() {
		rate=$("$PYTHON" "$HTTP_PY" query "http://127.0.0.1:$pport" \
			'sum(rate(smrelay_messages_total{outcome="relayed"}[30s]))')
		[ -n "$rate" ] && "$PYTHON" -c 'import sys; sys.exit(not float(sys.argv[1]) > 0)' "$rate"
	}
	wait_for 40 prom_rate ||
		{ fail_because "rate() of relayed messages is '${rate:-none}' after 40 s"; return 1; }
	echo "# rate(relayed[30s]) = $rate"
}

# /healthz: 200; 503 with the reason while the database file is gone; 200
# again once it is back.
t_healthz() {
	start_metrics || return 1
	wait_for 10 health_is 200 || { fail_because "/healthz not 200"; return 1; }
	mv "$CASE_DIR/data/smrelay.db" "$CASE_DIR/data/smrelay.db.away"
	wait_for 10 health_is 503 || { fail_because "/healthz not 503 without the database"; return 1; }
	[[ $HEALTH == *"database"* ]] || { fail_because "503 without the reason: $HEALTH"; return 1; }
	mv "$CASE_DIR/data/smrelay.db.away" "$CASE_DIR/data/smrelay.db"
	wait_for 10 health_is 200 || { fail_because "/healthz not 200 again"; return 1; }
	swaks_send --to alice@example.net
}

# Refused connections and rejected messages are counted; a verify rule on
# unsigned mail counts verify/none.
t_refused_rejected() {
	local holder
	start_metrics max_connections=1 || return 1
	"$SMRELAYCTL" -c "$CONF" policy add --action verify >"$CASE_DIR/ctl.log" 2>&1 ||
		{ fail_because "policy add: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	# the running daemon sees the new rule at its next look at the store
	wait_for 10 grep -q "store changed: reloaded 1 rule" "$CASE_DIR/smrelayd.log" ||
		{ fail_because "the daemon did not load the verify rule"; return 1; }
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: bare\n\nbare LF\r\n.\r\n" expect:554 \
		line:QUIT expect:221 || return 1
	swaks_send --to bob@example.net || return 1
	coproc HOLD { "$PYTHON" "$HTTP_PY" hold 1 127.0.0.1 "$PORT" 30; }
	holder=$HOLD_PID
	IT_PIDS+=("$holder")
	read -r -t 10 _ <&"${HOLD[0]}" || { fail_because "holder did not connect"; return 1; }
	open_is_1() { scrape "$CASE_DIR/m.txt" && [ "$(metric "$CASE_DIR/m.txt" smrelay_connections_open)" = 1 ]; }
	wait_for 10 open_is_1 || { fail_because "connections_open is not 1"; return 1; }
	chat expect:421 || return 1
	kill "$holder" 2>/dev/null
	scrape "$CASE_DIR/m.txt" || return 1
	assert_eq 1 "$(metric "$CASE_DIR/m.txt" smrelay_connections_refused_total)" "refused" || return 1
	assert_eq 1 "$(metric "$CASE_DIR/m.txt" smrelay_messages_total 'outcome="rejected"')" "rejected" || return 1
	assert_eq 1 "$(metric "$CASE_DIR/m.txt" smrelay_smime_operations_total 'op="verify",result="none"')" "verify none" || return 1
	assert_eq 1 "$(metric "$CASE_DIR/m.txt" smrelay_messages_total 'outcome="relayed"')" "relayed"
}

# The HTTP side is bounded: GET and HEAD only (evhttp says 501), 404 elsewhere, and 16 idle
# connections hold off a 17th until they go; SMTP goes on meanwhile.
t_http_bounds() {
	local out holder
	start_metrics || return 1
	out=$("$PYTHON" "$HTTP_PY" method POST "$METRICS/metrics")
	[[ $out == 405 || $out == 501 ]] || { fail_because "POST /metrics: $out"; return 1; }
	assert_eq 404 "$("$PYTHON" "$HTTP_PY" method GET "$METRICS/nothing")" "GET /nothing" || return 1
	coproc HOLD { "$PYTHON" "$HTTP_PY" hold 16 127.0.0.1 "$MPORT" 60; }
	holder=$HOLD_PID
	IT_PIDS+=("$holder")
	read -r -t 10 _ <&"${HOLD[0]}" || { fail_because "holder did not connect"; return 1; }
	out=$("$PYTHON" "$HTTP_PY" get "$METRICS/healthz" 1)
	[[ $out == ERR* ]] || { fail_because "a 17th connection was served: $out"; return 1; }
	swaks_send --to alice@example.net || return 1
	kill "$holder" 2>/dev/null
	wait_for 25 health_is 200 || { fail_because "/healthz not served once the connections went"; return 1; }
}

# S/MIME operations: sign+encrypt to a partner with a certificate, encrypt
# wanted for one without (--if-no-cert plain: no-cert); our identity's
# expiry is shown with its fingerprint.
t_smime_ops() {
	local P=$IT_TMP/spki fp n
	have openssl || { skip "openssl not installed"; return 0; }
	if [ ! -s "$P/bob.pem" ]; then
		sh "$(dirname "$HTTP_PY")/../smime/pki.sh" "$P" >"$CASE_DIR/pki.log" 2>&1 ||
			{ fail_because "pki.sh: $(tail -n 2 "$CASE_DIR/pki.log" | tr '\n' ' ')"; return 1; }
	fi
	start_sink && it_certs || return 1
	PORT=$(free_port)
	MPORT=$(free_port)
	METRICS=http://127.0.0.1:$MPORT
	CONF=$CASE_DIR/smrelayd.conf
	mkdir -p "$CASE_DIR/data"
	write_conf "$CONF" metrics_listen="127.0.0.1:$MPORT"
	{
		"$SMRELAYCTL" -c "$CONF" trust import "$P/trust.pem" &&
		"$SMRELAYCTL" -c "$CONF" key import "$P/alice.p12" &&
		"$SMRELAYCTL" -c "$CONF" cert import "$P/bob.pem" &&
		"$SMRELAYCTL" -c "$CONF" policy add --sender alice@example.com \
			--recipient @partner.example --action sign,encrypt \
			--if-no-cert plain
	} >"$CASE_DIR/ctl.log" 2>&1 ||
		{ fail_because "smrelayctl: $(tail -n 1 "$CASE_DIR/ctl.log")"; return 1; }
	start_smrelayd "$CONF" "$PORT" "$MPORT" || return 1
	swaks_send --from alice@example.com --to bob@partner.example || return 1
	swaks_send --from alice@example.com --to carol@partner.example || return 1
	wait_delivered 2 || return 1
	scrape "$CASE_DIR/m.txt" || return 1
	assert_eq 2 "$(metric "$CASE_DIR/m.txt" smrelay_smime_operations_total 'op="sign",result="ok"')" "sign ok" || return 1
	assert_eq 1 "$(metric "$CASE_DIR/m.txt" smrelay_smime_operations_total 'op="encrypt",result="ok"')" "encrypt ok" || return 1
	assert_eq 1 "$(metric "$CASE_DIR/m.txt" smrelay_smime_operations_total 'op="encrypt",result="no-cert"')" "encrypt no-cert" || return 1
	assert_eq 0 "$(metric "$CASE_DIR/m.txt" smrelay_smime_operations_total 'op="sign",result="fail"')" "sign fail" || return 1
	fp=$(openssl x509 -in "$P/alice.pem" -outform DER | sha256sum | cut -c1-64)
	n=$(grep -c "^smrelay_certificate_expiry_seconds{kind=\"key\",fingerprint=\"$fp\"" "$CASE_DIR/m.txt")
	assert_eq 1 "$n" "expiry of alice's identity by fingerprint"
}

run_case scrape_promtool t_scrape_promtool
run_case prometheus_rate t_prometheus_rate
run_case healthz t_healthz
run_case refused_rejected t_refused_rejected
run_case smime_ops t_smime_ops
run_case http_bounds t_http_bounds
it_finish
