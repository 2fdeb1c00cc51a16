#!/usr/bin/env python3
"""dsn.py: check a delivery status notification captured at the next hop
(a Maildir file from `smrelayctl sink`, nexthop.py or flaky_hop.py), with
python's email package.

  dsn.py FILE [--sender ADDR] [--final RCPT]... [--action failed]
         [--status-re ERE] [--envid ID] [--orig-msgid MSGID]

Checks: Return-Path <> (the envelope sender of a DSN is null), Delivered-To
ADDR, Content-Type multipart/report; report-type=delivery-status, a
message/delivery-status part whose per-recipient fields name each --final
recipient (Final-Recipient rfc822;RCPT) with the --action and a Status
matching --status-re, Original-Envelope-Id equal to --envid, and a returned
part (message/rfc822 or text/rfc822-headers) with the Message-ID --orig-msgid.
Prints one summary line; exits 1 with the reason on the first mismatch.
"""
import argparse
import email
import email.policy
import re
import sys


def die(why):
    print("DSN check failed: %s" % why)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--sender")
    p.add_argument("--final", action="append", default=[])
    p.add_argument("--action", default="failed")
    p.add_argument("--status-re", default=r"^5\.\d+\.\d+$")
    p.add_argument("--envid")
    p.add_argument("--orig-msgid")
    a = p.parse_args()
    with open(a.file, "rb") as f:
        msg = email.message_from_bytes(f.read(), policy=email.policy.compat32)
    rp = (msg.get("Return-Path") or "").strip()
    if rp != "<>":
        die("envelope sender (Return-Path) is %r, expected <>" % rp)
    if a.sender:
        dt = [d.strip().strip("<>").lower() for d in msg.get_all("Delivered-To", [])]
        if dt != [a.sender.lower()]:
            die("delivered to %r, expected only %s" % (dt, a.sender))
    if msg.get_content_type() != "multipart/report":
        die("Content-Type is %s, not multipart/report" % msg.get_content_type())
    if (msg.get_param("report-type") or "").lower() != "delivery-status":
        die("report-type is %r" % msg.get_param("report-type"))
    parts = msg.get_payload()
    if not isinstance(parts, list) or len(parts) < 2:
        die("multipart/report with %s part(s)" % (len(parts) if isinstance(parts, list) else 0))
    if parts[0].get_content_maintype() != "text":
        die("first part is %s, not human-readable text" % parts[0].get_content_type())
    ds = [x for x in parts if x.get_content_type() == "message/delivery-status"]
    if len(ds) != 1:
        die("%d message/delivery-status parts" % len(ds))
    blocks = ds[0].get_payload()
    if not isinstance(blocks, list) or len(blocks) < 2:
        die("message/delivery-status has no per-recipient block")
    per_msg, per_rcpt = blocks[0], blocks[1:]
    if not per_msg.get("Reporting-MTA"):
        die("no Reporting-MTA")
    if a.envid is not None:
        got = (per_msg.get("Original-Envelope-Id") or "").strip()
        if got != a.envid:
            die("Original-Envelope-Id %r, expected %r" % (got, a.envid))
    seen = {}
    for b in per_rcpt:
        fr = (b.get("Final-Recipient") or "").strip()
        m = re.match(r"(?i)rfc822\s*;\s*(.*)$", fr)
        if not m:
            die("Final-Recipient %r is not rfc822;ADDR" % fr)
        seen[m.group(1).strip().lower()] = b
    for r in a.final:
        b = seen.get(r.lower())
        if b is None:
            die("no per-recipient block for %s (have %s)" % (r, sorted(seen)))
        act = (b.get("Action") or "").strip().lower()
        if act != a.action:
            die("Action for %s is %r, expected %s" % (r, act, a.action))
        st = (b.get("Status") or "").strip()
        if not re.search(a.status_re, st):
            die("Status for %s is %r, expected /%s/" % (r, st, a.status_re))
    if a.final and len(seen) != len(a.final):
        die("per-recipient blocks for %s, expected only %s" % (sorted(seen), a.final))
    ret = [x for x in parts[2:] if x.get_content_type() in
           ("message/rfc822", "text/rfc822-headers", "message/global",
            "message/global-headers")]
    if len(ret) != 1:
        die("%d returned-message parts (%s)" % (len(ret), [x.get_content_type() for x in parts]))
    if a.orig_msgid:
        r = ret[0]
        if r.get_content_type() == "message/rfc822":
            inner = r.get_payload()[0]
            mid = inner.get("Message-ID")
        else:
            inner = email.message_from_string(r.get_payload())
            mid = inner.get("Message-ID")
        if (mid or "").strip() != a.orig_msgid:
            die("returned part has Message-ID %r, expected %r" % (mid, a.orig_msgid))
    summary = ["report-type=delivery-status", "returned=%s" % ret[0].get_content_type()]
    for r, b in sorted(seen.items()):
        summary.append("%s: Action=%s Status=%s" % (r, (b.get("Action") or "").strip(),
                                                   (b.get("Status") or "").strip()))
    if per_msg.get("Original-Envelope-Id"):
        summary.append("Original-Envelope-Id=%s" % per_msg.get("Original-Envelope-Id").strip())
    print("DSN ok: " + "; ".join(summary))


if __name__ == "__main__":
    main()
