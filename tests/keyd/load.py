#!/usr/bin/env python3
"""load.py: send N messages to an SMTP server over C parallel connections,
the way an MTA would: a message refused with 4xx is sent again (after a
short pause, within a deadline), one refused with 5xx is a failure.  Each
message has Message-ID <load-I@TAG> so that the receiver's copies can be
counted one by one.  Prints "sent=N retries=R" and exits 0 when every
message got 250; 1 otherwise (with what went wrong)."""
import argparse
import queue
import smtplib
import sys
import threading
import time


def message(i, args):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: load %d\r\n"
            "Message-ID: <load-%d@%s>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            "Message %d of the key process fault test.\r\n%s" %
            (args.sender, args.rcpt, i, i, args.tag, i,
             "padding line for a message of about four kilobytes\r\n" * 70))


def worker(args, todo, stats, lock, deadline):
    conn = None
    while True:
        try:
            i = todo.get_nowait()
        except queue.Empty:
            break
        while True:
            if time.monotonic() > deadline:
                with lock:
                    stats["errors"].append("%d: deadline" % i)
                break
            try:
                if conn is None:
                    conn = smtplib.SMTP("127.0.0.1", args.port, timeout=30)
                    conn.ehlo("load.test")
                conn.sendmail(args.sender, [args.rcpt], message(i, args))
                with lock:
                    stats["sent"] += 1
                break
            except smtplib.SMTPResponseException as e:
                code = e.smtp_code
            except smtplib.SMTPRecipientsRefused as e:
                code = list(e.recipients.values())[0][0]
            except (OSError, smtplib.SMTPException) as e:
                code = 421
                conn = None
            if code >= 500:
                with lock:
                    stats["errors"].append("%d: %s" % (i, code))
                break
            with lock:
                stats["retries"] += 1
            try:
                if conn is not None:
                    conn.rset()
            except (OSError, smtplib.SMTPException):
                conn = None
            time.sleep(0.2)
    if conn is not None:
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--from", dest="sender", required=True)
    ap.add_argument("--to", dest="rcpt", required=True)
    ap.add_argument("--tag", default="load.test")
    ap.add_argument("--deadline", type=float, default=600)
    args = ap.parse_args()
    todo = queue.Queue()
    for i in range(args.count):
        todo.put(i)
    stats = {"sent": 0, "retries": 0, "errors": []}
    lock = threading.Lock()
    deadline = time.monotonic() + args.deadline
    threads = [threading.Thread(target=worker,
                                args=(args, todo, stats, lock, deadline))
               for _ in range(args.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("sent=%d retries=%d" % (stats["sent"], stats["retries"]))
    for e in stats["errors"][:10]:
        print("error " + e)
    return 0 if stats["sent"] == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
