#!/usr/bin/env python3
"""tests/sink/api_check.py BASE SUBJECT: the inbox's JSON API after a
message (SUBJECT) signed by alice and encrypted to bob went through
smrelayd, the newest one: the list and the message parse with json and
carry the fields the page shows."""
import json
import sys
import urllib.request

BASE, SUBJECT = sys.argv[1], sys.argv[2]


def get(path):
    with urllib.request.urlopen(BASE + path, timeout=30) as r:
        assert r.headers.get("Content-Type", "").startswith(
            "application/json"), r.headers.get("Content-Type")
        return json.loads(r.read().decode("utf-8"))


def check(cond, what, obj):
    if not cond:
        sys.exit("%s; got %s" % (what, json.dumps(obj, indent=1)[:3000]))


lst = get("/api/messages")
check(lst["total"] >= 1 and lst["messages"], "a message", lst)
m = lst["messages"][0]
check(m["id"] == lst["latest"], "newest first", lst)
for k in ("id", "time", "envelope_from", "envelope_to", "subject", "badges"):
    check(k in m, "list entry has " + k, m)
check(m["envelope_from"] == "alice@example.com", "envelope from", m)
check(m["envelope_to"] == ["bob@partner.example"], "envelope to", m)
check(m["subject"] == SUBJECT, "subject", m)
texts = [b["text"] for b in m["badges"]]
check("encrypted: AES-256-CBC, decrypted" in texts, "encrypted badge", m)
check("signed: pass" in texts, "signed badge", m)
check(get("/api/messages?since=%d" % lst["latest"])["messages"] == [],
      "nothing newer than latest", lst)

d = get("/api/messages/%d" % m["id"])
layers = d["layers"]
check(len(layers) == 2, "two S/MIME layers", d)
enc, sig = layers
check(enc["layer"] == "encrypted", "outer layer encrypted", enc)
check(enc["cipher"] == "AES-256-CBC", "content cipher", enc)
check(enc["auth_enveloped"] is False, "EnvelopedData, not AuthEnveloped", enc)
bob = [r for r in enc["recipients"] if r["known"]
       and "bob@partner.example" in r["known"]["emails"]]
check(len(bob) == 1, "encrypted to bob, matched to his certificate", enc)
check(bob[0]["issuer"] and bob[0]["serial"], "bob's issuer and serial", enc)
check(enc["decrypted"] is True, "decrypted with --key", enc)
check(sig["layer"] == "signed" and sig["outcome"] == "pass", "signed, pass",
      sig)
check(sig["identity"] == "alice@example.com", "signer identity", sig)
check("alice@example.com" in sig["signer"]["emails"], "signer cert", sig)
check(any("marker-7f3a" in t["text"] for t in d["text_parts"]),
      "decrypted text shown", d)
check(any(n["type"] == "text/plain" for n in d["mime"]), "MIME tree", d)
check(any(h[0].lower() == "subject" for h in d["headers"]), "headers", d)

with urllib.request.urlopen(BASE + "/api/messages/%d/raw" % m["id"],
                            timeout=30) as r:
    raw = r.read()
    check(r.headers.get("Content-Disposition", "").startswith("attachment"),
          "raw is a download", dict(r.headers))
check(b"application/pkcs7-mime" in raw or b"application/x-pkcs7-mime" in raw,
      "raw is the encrypted message as saved", raw[:500].decode("latin-1"))
print("api ok: %s" % ", ".join(texts))
