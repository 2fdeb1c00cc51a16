#!/usr/bin/env python3
"""procsend.py: send COUNT messages over SESSIONS parallel SMTP sessions and
write the Message-ID of each one the server answered 250 to DATA for, one a
line, to --accepted (t_processes.sh: nothing 250'd may be lost when a
network process is killed).  A session that breaks reconnects and goes on;
a message whose 250 was not seen is not recorded (its client would retry)."""
import argparse
import smtplib
import sys
import threading
import time


def worker(args, ids, lock, out, stats):
    while True:
        with lock:
            if not ids:
                return
            mid = ids.pop()
        s = None
        try:
            s = smtplib.SMTP("127.0.0.1", args.port, timeout=args.timeout)
            while True:
                msg = ("From: <sender@example.com>\r\nTo: <rcpt@example.net>\r\n"
                       "Subject: procsend\r\nMessage-ID: <%s>\r\n\r\n%s\r\n"
                       % (mid, "x" * 512))
                try:
                    s.sendmail("sender@example.com", ["rcpt@example.net"], msg)
                except smtplib.SMTPResponseException:
                    stats["rejected"] += 1
                else:
                    with lock:
                        out.write(mid + "\n")
                        out.flush()
                        stats["ok"] += 1
                with lock:
                    if not ids:
                        break
                    mid = ids.pop()
            s.quit()
        except (OSError, smtplib.SMTPException):
            stats["broken"] += 1
            time.sleep(0.05)
        finally:
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--accepted", required=True)
    args = ap.parse_args()
    ids = ["ps-%d-%d@test" % (i, int(time.time())) for i in range(args.count)]
    ids.reverse()
    lock = threading.Lock()
    stats = {"ok": 0, "rejected": 0, "broken": 0}
    with open(args.accepted, "w") as out:
        ts = [threading.Thread(target=worker, args=(args, ids, lock, out, stats))
              for _ in range(args.sessions)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    print("accepted=%d rejected=%d broken=%d" % (stats["ok"], stats["rejected"],
                                                 stats["broken"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
