#!/usr/bin/env python3
"""send.py: one SMTP transaction for the tests/scale topology.

    send.py --port P --sender ADDR --rcpt ADDR [--file MSG | --id ID]
            [--proxy-from ADDR]

Sends the message of --file (a file with LF or CRLF line ends, sent as
it is apart from CRLF and dot-stuffing) or, with --id, a small text message
with Message-ID <ID>.  Prints the final reply ("250 2.0.0 ...", the code
of the first refused step, or "died: reason") on stdout; exits 0 when the
message got 250 at end of DATA, 1 when it was refused, 2 when the
connection failed.
"""
import argparse
import smtplib
import sys
import time


def message(args):
    if args.file:
        with open(args.file, "rb") as f:
            return f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    text = ("From: <%s>\r\nTo: <%s>\r\nSubject: scale test %s\r\n"
            "Date: %s\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            "Hello,\r\n\r\n%s\r\n" % (args.sender, args.rcpt, args.id, date,
                                    args.id, args.body))
    return text.encode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sender", required=True)
    p.add_argument("--rcpt", required=True)
    p.add_argument("--file")
    p.add_argument("--id")
    p.add_argument("--body", default="The cluster test says hello.")
    p.add_argument("--timeout", type=float, default=30)
    args = p.parse_args()
    if not args.file and not args.id:
        p.error("--file or --id")
    msg = message(args)
    try:
        s = smtplib.SMTP(args.host, args.port, local_hostname="client.test",
                         timeout=args.timeout)
    except (OSError, smtplib.SMTPException) as e:
        print("died: %s" % e)
        return 2
    try:
        s.ehlo()
        code, text = s.mail(args.sender)
        if code != 250:
            print("%d %s" % (code, text.decode(errors="replace")))
            return 1
        code, text = s.rcpt(args.rcpt)
        if code != 250:
            print("%d %s" % (code, text.decode(errors="replace")))
            return 1
        code, text = s.data(msg)
        print("%d %s" % (code, text.decode(errors="replace")))
        try:
            s.quit()
        except (OSError, smtplib.SMTPException):
            pass
        return 0 if code == 250 else 1
    except smtplib.SMTPResponseException as e:
        print("%d %s" % (e.smtp_code, e.smtp_error.decode(errors="replace")))
        return 1
    except (OSError, smtplib.SMTPException) as e:
        print("died: %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
