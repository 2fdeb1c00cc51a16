#!/bin/bash
# t_inbox.sh: `smrelayctl sink --http`, the lab inbox, end to end: smrelayd
# signs (alice) and encrypts (to bob) a message on its way to the sink; the
# inbox, in a real headless Chromium driven by Selenium, shows it without a
# reload, with the signer and "encrypted to bob@partner.example,
# AES-256-CBC", and the decrypted text (the sink has bob's --key).  A
# hostile message (<script> in the subject, an HTML part with scripts and
# handlers) runs nothing.  The JSON API parses and carries the fields.
# One sink (with bob's key, alice's EC certificate and the trust anchors)
# and one smrelayd serve every case; each case finds its own messages.
. "$(dirname "$0")/lib_sink.sh"
need_bins

# The shared peers, in $IT_TMP/peers (PEERS_DIR).
start_peers() {
	CASE=peers
	CASE_DIR=$IT_TMP/peers
	PEERS_DIR=$CASE_DIR
	mkdir -p "$CASE_DIR"
	start_web_sink --key "$SPKI/bob-keycert.pem" --trust "$SPKI/anchors.pem" \
		--cert "$SPKI/bob.pem" --cert "$SPKI/alice-ec.pem" &&
		smime_relay "relay=127.0.0.1:$NH_PORT" || {
		echo "FAIL peers: $IT_REASON"
		it_show_logs
		exit 1
	}
	shared_keep "$SINK_PID" "$SMRELAYD_PID"
	SINK_PID=""
	SMRELAYD_PID=""
	CASE_DIR=$IT_TMP
}

# api: the JSON endpoints, read with python's json.
case_api() {
	local out n
	n=$(sink_count)
	SUBJ="quarterly figures api" PORT=$PORT "$SK_DIR/send.sh" signed \
		>"$CASE_DIR/send.log" 2>&1 ||
		{ fail_because "send.sh: $(tail -n 3 "$CASE_DIR/send.log")"; return 1; }
	wait_delivered $((n + 1)) || return 1
	out=$("$PYTHON" "$SK_DIR/api_check.py" "http://127.0.0.1:$HTTP_PORT" \
		"quarterly figures api" 2>&1) ||
		{ fail_because "api_check.py: $out"; return 1; }
	echo "$out"
}

# headers: every answer has the strict CSP and nosniff; bad paths are 404.
case_headers() {
	local out
	out=$("$PYTHON" - "http://127.0.0.1:$HTTP_PORT" <<'PY' 2>&1
import sys, urllib.request, urllib.error
base = sys.argv[1]
for path, code in [("/", 200), ("/app.js", 200), ("/app.css", 200),
                   ("/api/messages", 200), ("/api/messages/999999", 404),
                   ("/api/messages/abc", 404), ("/nope", 404),
                   ("/api/messages?limit=x", 400)]:
    try:
        r = urllib.request.urlopen(base + path, timeout=30)
        got, h = r.status, r.headers
    except urllib.error.HTTPError as e:
        got, h = e.code, e.headers
    assert got == code, (path, got)
    csp = h.get("Content-Security-Policy", "")
    assert "script-src 'self'" in csp and "default-src 'none'" in csp, (path, csp)
    assert "unsafe-inline" not in csp, csp
    assert h.get("X-Content-Type-Options") == "nosniff", path
req = urllib.request.Request(base + "/api/messages", method="POST", data=b"x")
try:
    urllib.request.urlopen(req, timeout=30)
    raise SystemExit("POST accepted")
except urllib.error.HTTPError as e:
    assert e.code in (405, 501), e.code
# DNS rebinding: a page whose own name points here is refused; the
# address, localhost and [::1]-style literals are served
for host, code in [("evil.example", 421), ("evil.example:80", 421),
                   ("localhost:1", 200), ("127.0.0.1", 200)]:
    req = urllib.request.Request(base + "/api/messages", headers={"Host": host})
    try:
        got = urllib.request.urlopen(req, timeout=30).status
    except urllib.error.HTTPError as e:
        got = e.code
    assert got == code, (host, got)
print("headers ok")
PY
) || { fail_because "$out"; return 1; }
}

# browser: the inbox in headless Chromium.
case_browser() {
	have chromium && have chromedriver ||
		{ skip "chromium and chromium-driver not installed"; return 0; }
	# Debian's python3-selenium is for the system's python3
	local py out rc
	for py in "$PYTHON" /usr/bin/python3; do
		"$py" -c 'import selenium' 2>/dev/null && break
		py=""
	done
	[ -n "$py" ] || { skip "python3-selenium not installed"; return 0; }
	# browser.py opens the inbox, then has send.sh send through smrelayd
	# and straight to the sink, and watches the rows appear
	out=$(cd "$CASE_DIR" && SEND_CMD="$SK_DIR/send.sh" PORT=$PORT \
		SUBJ="quarterly figures" HOSTILE_MSG="$SK_DIR/hostile.eml" \
		NH_PORT=$NH_PORT timeout 300 "$py" "$SK_DIR/browser.py" \
		"http://127.0.0.1:$HTTP_PORT/" 2>&1)
	rc=$?
	echo "$out" >"$CASE_DIR/browser.out"
	[ $rc -eq 0 ] || { fail_because "browser.py: $(tail -n 5 "$CASE_DIR/browser.out" | tr '\n' ' ')"; return 1; }
}

# gcm_kari: AuthEnvelopedData (AES-256-GCM) from another implementation
# (openssl cms) to bob (RSA: ktri) and alice's EC certificate (kari): both
# recipients named, the cipher and the structure said, decrypted with bob's
# --key.
case_gcm_kari() {
	printf 'Content-Type: text/plain\r\n\r\ngcm body marker-g5\r\n' >"$CASE_DIR/plain.eml"
	openssl cms -encrypt -aes-256-gcm -in "$CASE_DIR/plain.eml" \
		-from alice@example.com -to bob@partner.example -subject "gcm test" \
		"$SPKI/bob.pem" "$SPKI/alice-ec.pem" >"$CASE_DIR/enc.eml" ||
		{ fail_because "openssl cms -encrypt failed"; return 1; }
	PORT=$NH_PORT swaks_send --to bob@partner.example --data "@$CASE_DIR/enc.eml" ||
		return 1
	local out
	out=$("$PYTHON" - "http://127.0.0.1:$HTTP_PORT" <<'PY' 2>&1
import json, sys, urllib.request
def get(p):
    return json.loads(urllib.request.urlopen(sys.argv[1] + p, timeout=30).read())
m = [m for m in get("/api/messages")["messages"] if m["subject"] == "gcm test"]
assert len(m) == 1, m
d = get("/api/messages/%d" % m[0]["id"])
l = d["layers"][0]
assert l["layer"] == "encrypted" and l["cipher"] == "AES-256-GCM", l
assert l["auth_enveloped"] is True, l
kinds = sorted((r["kind"], (r["known"] or {}).get("emails", ["?"])[0])
               for r in l["recipients"])
assert kinds == [("kari", "alice@example.com"),
                 ("ktri", "bob@partner.example")], kinds
assert l["decrypted"] is True, l
assert "marker-g5" in d["text_parts"][0]["text"], d["text_parts"]
print("gcm ok")
PY
) || { fail_because "$out"; return 1; }
}

# big_off_loop: messages near the 8 MiB analysis limit are analysed off the
# event loop.  The test holds a file lease (F_SETLEASE) on each big message,
# so whatever opens one waits until the test lets go and the test is told
# (SIGIO) the moment it tries: the list is then provably stuck in the
# analysis, and the page and an SMTP session must still be served.  One over
# the limit shows its header fields only.
case_big_off_loop() {
	"$PYTHON" -c '
import sys
sys.stdout.write("Content-Type: text/plain\r\n\r\n")
sys.stdout.write(("y" * 76 + "\r\n") * int(sys.argv[1]))' 75000 >"$CASE_DIR/mid.txt"
	openssl cms -encrypt -aes-256-cbc -in "$CASE_DIR/mid.txt" -from a@example.com \
		-to bob@partner.example -subject "big one" "$SPKI/bob.pem" >"$CASE_DIR/mid.eml" &&
		cat "$CASE_DIR/mid.eml" "$CASE_DIR/mid.txt" "$CASE_DIR/mid.txt" >"$CASE_DIR/huge.eml" ||
		{ fail_because "openssl cms -encrypt failed"; return 1; }
	local i out
	for i in 1 2 3 4; do
		PORT=$NH_PORT swaks_send --to bob@partner.example --data "@$CASE_DIR/mid.eml" ||
			return 1
	done
	PORT=$NH_PORT swaks_send --to bob@partner.example --data "@$CASE_DIR/huge.eml" ||
		return 1
	out=$("$PYTHON" - "http://127.0.0.1:$HTTP_PORT" "$NH_PORT" "$SINK_DIR" <<'PY' 2>&1
import fcntl, json, os, signal, smtplib, sys, threading, urllib.request
base, smtp_port, maildir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
F_SETLEASE = 1024
opened = threading.Event()
signal.signal(signal.SIGIO, lambda s, f: opened.set())
held = []
for sub in ("new", "cur"):
    for name in os.listdir(os.path.join(maildir, sub)):
        path = os.path.join(maildir, sub, name)
        if os.path.getsize(path) > 4 * 1024 * 1024:
            fd = os.open(path, os.O_RDONLY)
            fcntl.fcntl(fd, F_SETLEASE, fcntl.F_WRLCK)
            held.append(fd)
assert len(held) == 5, "%d big messages in the maildir" % len(held)
res = {}
def lst():
    res["list"] = json.loads(urllib.request.urlopen(
        base + "/api/messages", timeout=120).read())
t = threading.Thread(target=lst)
t.start()
assert opened.wait(60), "the list never opened a big message"
page = urllib.request.urlopen(base + "/", timeout=30).read()
assert b"smrelay sink" in page
with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as s:
    s.sendmail("a@example.com", ["c@lab.example"], "Subject: meanwhile\r\n\r\nx\r\n")
assert t.is_alive() and "list" not in res, "the list came while a message was held"
for fd in held:
    os.close(fd)
t.join(120)
assert "list" in res, "the list never came"
big = [m for m in res["list"]["messages"] if m.get("subject") == "big one"]
assert len(big) == 5, [m.get("subject") for m in res["list"]["messages"]]
for m in big[1:]:
    texts = [b["text"] for b in m["badges"]]
    assert texts == ["encrypted: AES-256-CBC, decrypted"], (m["id"], texts)
huge = json.loads(urllib.request.urlopen(base + "/api/messages/%d" % big[0]["id"],
                                         timeout=60).read())
assert huge["analysed"] is False and huge["subject"] == "big one", huge.get("analysed")
assert huge["size"] > 8 * 1024 * 1024 and huge["layers"] == [], huge["size"]
print("page and SMTP served while the analysis waited on a held message")
PY
) || { fail_because "$out"; return 1; }
	echo "$out"
}

# encoded_words: RFC 2047 subjects and names are shown decoded (UTF-8 and
# ISO-8859-1, B and Q); the header list keeps the field as it came.
case_encoded_words() {
	PORT=$NH_PORT swaks_send --to bob@lab.example \
		--header 'From: =?ISO-8859-1?Q?Andr=E9?= <andre@x.example>' \
		--header 'Subject: =?UTF-8?B?R3LDvMOfZQ==?= =?UTF-8?Q?_und_mehr?=' ||
		return 1
	local out
	out=$("$PYTHON" - "http://127.0.0.1:$HTTP_PORT" <<'PY' 2>&1
import json, sys, urllib.request
m = json.loads(urllib.request.urlopen(sys.argv[1] + "/api/messages",
                                      timeout=30).read())["messages"][0]
assert m["subject"] == "Gr\u00fc\u00dfe und mehr", m["subject"]
assert m["from"] == "Andr\u00e9 <andre@x.example>", m["from"]
d = json.loads(urllib.request.urlopen(sys.argv[1] + "/api/messages/%d" % m["id"],
                                      timeout=30).read())
assert ["Subject", "=?UTF-8?B?R3LDvMOfZQ==?= =?UTF-8?Q?_und_mehr?="] in d["headers"]
PY
) || { fail_because "$out"; return 1; }
}

# ambiguous: alice's valid signature under a second Content-Type (a
# multipart/mixed whose first part is the sender's own text) is no pass
# in the inbox either, as smrelayd would say it; nor under a second From
# field, a display name showing another address (a fullwidth at-sign in
# an encoded-word), or over an entity whose own From is another's (the
# From rules, policy); the same message as signed passes.
case_ambiguous() {
	local d=$CASE_DIR v out
	printf 'Content-Type: text/plain\r\n\r\nPay invoice 7 to account A.\r\n' >"$d/ent.txt"
	openssl cms -sign -in "$d/ent.txt" -signer "$SPKI/alice.pem" -inkey "$SPKI/alice.key" \
		-certfile "$SPKI/chain.pem" -from alice@example.com -to bob@lab.example \
		-subject "ambiguous clean" >"$d/clean.eml" 2>"$d/cms.err" ||
		{ fail_because "openssl cms -sign: $(tail -n 1 "$d/cms.err")"; return 1; }
	printf 'From: CEO <ceo@example.com>\r\nContent-Type: text/plain\r\n\r\nPay invoice 7 to account A.\r\n' >"$d/ent2.txt"
	openssl cms -sign -in "$d/ent2.txt" -signer "$SPKI/alice.pem" -inkey "$SPKI/alice.key" \
		-certfile "$SPKI/chain.pem" -from alice@example.com -to bob@lab.example \
		-subject "ambiguous inner" >"$d/inner.eml" 2>"$d/cms.err" ||
		{ fail_because "openssl cms -sign: $(tail -n 1 "$d/cms.err")"; return 1; }
	"$PYTHON" - "$d/clean.eml" "$d/two.eml" "$d/from2.eml" "$d/disp.eml" <<'PY' || { fail_because "making the variant"; return 1; }
import sys
m = open(sys.argv[1], newline='').read().replace('\r\n', '\n')
h, b = m.split('\n\n', 1)
h = h.replace('Subject: ambiguous clean', 'Subject: ambiguous two')
open(sys.argv[2], 'w').write(h + '\nContent-Type: multipart/mixed; boundary="EVIL"\n\n--EVIL\n'
                             'Content-Type: text/plain\n\nPay invoice 7 to account MALLORY.\n--EVIL\n\n'
                             + b + '\n--EVIL--\n')
h0 = m.split('\n\n', 1)[0]
open(sys.argv[3], 'w').write(h0.replace('Subject: ambiguous clean', 'Subject: ambiguous from2')
                             + '\nFrom: CEO <ceo@example.com>\n\n' + b)
assert 'From: alice@example.com' in h0, h0
open(sys.argv[4], 'w').write(h0.replace('Subject: ambiguous clean', 'Subject: ambiguous disp')
                             .replace('From: alice@example.com',
                                      'From: =?utf-8?q?ceo=EF=BC=A0example=2Ecom?= <alice@example.com>')
                             + '\n\n' + b)
PY
	for v in clean two from2 disp inner; do
		PORT=$NH_PORT swaks_send --from alice@example.com --to bob@lab.example \
			--data "@$d/$v.eml" || return 1
	done
	out=$("$PYTHON" - "http://127.0.0.1:$HTTP_PORT" <<'PY' 2>&1
import json, sys, urllib.request, time
base = sys.argv[1]
def get(p):
    return json.loads(urllib.request.urlopen(base + p, timeout=30).read())
want = {"ambiguous clean": "pass", "ambiguous two": "permerror",
        "ambiguous from2": "policy", "ambiguous disp": "policy",
        "ambiguous inner": "policy"}
why = {"ambiguous from2": "more than one From field",
       "ambiguous disp": "the From display name shows another address",
       "ambiguous inner": "the From of the signed part is not the message's"}
for _ in range(100):
    seen = {m["subject"]: m["id"] for m in get("/api/messages")["messages"]}
    if all(s in seen for s in want):
        break
    time.sleep(0.1)
for s, o in want.items():
    layer = get("/api/messages/%d" % seen[s])["layers"][0]
    assert layer["layer"] == "signed" and layer["outcome"] == o, (s, layer)
    if o == "permerror":
        assert "more than one Content-Type" in layer["ambiguous"], layer
    if s in why:
        assert layer["reason"] == why[s], layer
PY
) || { fail_because "$out"; return 1; }
}

# peers_exit: the shared sink and smrelayd exit 0 on SIGTERM.
case_peers_exit() {
	shared_stop
}

sink_pki || exit 99
start_peers
run_case api case_api
run_case headers case_headers
run_case gcm_kari case_gcm_kari
run_case encoded_words case_encoded_words
run_case ambiguous case_ambiguous
run_case big_off_loop case_big_off_loop
run_case browser case_browser
run_case peers_exit case_peers_exit
it_finish
