#!/usr/bin/env python3
"""nexthop.py: a scriptable next-hop SMTP server for integration tests.

Captures each accepted message as one Maildir file (DIR/new/) in the same
layout as `smrelayctl sink`: "Return-Path: <FROM>", one "Delivered-To: RCPT"
per accepted recipient, then our own trace lines (X-Mail-Args, X-Rcpt-Args,
X-NextHop-TLS, X-NextHop-Conn), then the message as received (unstuffed).
Every event is appended to --events FILE (CONNECT, TLS, MAIL, RCPT, DATA, ...),
one line each, so tests can count connections and see what happened.

Options let a test make the next hop misbehave: per-recipient replies, a reply
at end of DATA, STARTTLS with a given certificate, slow reading (backpressure).
tests/queue/flaky_hop.py subclasses Session (the hooks: tag, on_mail,
rcpt_reply, end_of_data, extra_headers) and reuses parser() and run().
"""
import argparse
import os
import re
import socket
import ssl
import sys
import threading
import time

LOCK = threading.Lock()
COUNTER = [0]


def event(args, text):
    with LOCK:
        with open(args.events, "a") as f:
            f.write(text + "\n")


class Session(threading.Thread):
    NAME = "nexthop.py"         # in the banner
    SUFFIX = "nexthop"          # of the Maildir file names

    def __init__(self, args, sock, peer, ctx, num):
        super().__init__(daemon=True)
        self.args, self.sock, self.peer, self.ctx, self.num = args, sock, peer, ctx, num
        self.buf = b""
        self.tls = None

    def recv(self):
        n = 4096 if self.args.slow else 65536
        chunk = self.sock.recv(n)
        if self.args.slow:
            time.sleep(self.args.slow_delay)
        return chunk

    def send(self, text):
        self.sock.sendall(text.encode("utf-8") + b"\r\n")

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line.rstrip(b"\r\n").decode("utf-8", "replace")
            if len(self.buf) > 65536:
                return None
            chunk = self.recv()
            if not chunk:
                return None
            self.buf += chunk

    def read_data(self):
        data = bytearray(b"\r\n") + self.buf
        self.buf = b""
        start = 0
        while True:
            i = data.find(b"\r\n.\r\n", start)
            if i >= 0:
                self.buf = bytes(data[i + 5:])
                body = bytes(data[2:i + 2])
                break
            start = max(0, len(data) - 4)
            chunk = self.recv()
            if not chunk:
                return None
            data += chunk
        if body.startswith(b".."):
            body = body[1:]
        return body.replace(b"\r\n..", b"\r\n.")

    def tag(self):
        """What names the transaction in MAIL, RCPT, DATA and STORED events."""
        return "conn=%d" % self.num

    def on_mail(self, arg):
        """A MAIL command was accepted (before its 250)."""
        event(self.args, "MAIL %s %s" % (self.tag(), arg))

    def rcpt_reply(self, addr):
        for rule in self.args.rcpt_reply:
            pat, _, reply = rule.partition("=")
            if pat.lower() in addr.lower():
                return reply
        return "250 2.1.5 Ok"

    def end_of_data(self, mail, mail_args, rcpts, rcpt_args, helo, body):
        """Reply to a whole message; False: close the connection instead."""
        a = self.args
        event(a, "DATA %s bytes=%d" % (self.tag(), len(body)))
        if a.data_reply and not a.data_reply.startswith("2"):
            self.send(a.data_reply)
        else:
            self.store(mail, mail_args, rcpts, rcpt_args, helo, body)
            self.send(a.data_reply or "250 2.0.0 Ok: queued")
        return True

    def extra_headers(self):
        """Trace lines of a subclass, after X-NextHop-Conn."""
        return []

    def run(self):
        try:
            self.serve()
        except (OSError, ssl.SSLError) as e:
            event(self.args, "ERROR conn=%d %s" % (self.num, e))
        finally:
            event(self.args, "CLOSE conn=%d" % self.num)
            try:
                self.sock.close()
            except OSError:
                pass

    def serve(self):
        a = self.args
        event(a, "CONNECT conn=%d peer=%s:%d" % (self.num, self.peer[0], self.peer[1]))
        self.send("220 %s ESMTP %s" % (a.hostname, self.NAME))
        mail, mail_args, rcpts, rcpt_args, helo = None, "", [], [], ""
        while True:
            line = self.readline()
            if line is None:
                return
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb) + 1:] if " " in line else ""
            event(a, "CMD conn=%d %s" % (self.num, line[:200]))
            if verb in ("EHLO", "HELO"):
                helo = arg
                mail, rcpts, rcpt_args = None, [], []
                if verb == "HELO":
                    self.send("250 %s" % a.hostname)
                    continue
                ext = [a.hostname, "PIPELINING", "SIZE %d" % a.size, "8BITMIME",
                       "ENHANCEDSTATUSCODES"]
                if not a.no_dsn:
                    ext.append("DSN")
                ext.append("SMTPUTF8")
                if self.ctx and not self.tls:
                    ext.append("STARTTLS")
                for e in ext[:-1]:
                    self.sock.sendall(("250-%s\r\n" % e).encode())
                self.send("250 %s" % ext[-1])
            elif verb == "STARTTLS" and self.ctx and not self.tls:
                self.send("220 2.0.0 Ready to start TLS")
                self.buf = b""
                self.sock = self.ctx.wrap_socket(self.sock, server_side=True)
                self.tls = "%s %s" % (self.sock.version(), self.sock.cipher()[0])
                event(a, "TLS conn=%d %s reused=%s" % (self.num, self.tls,
                                                       "yes" if self.sock.session_reused else "no"))
                mail, rcpts, rcpt_args = None, [], []
            elif verb == "MAIL":
                m = re.match(r"(?i)FROM:\s*<([^>]*)>\s*(.*)", arg)
                if not m:
                    self.send("501 5.5.4 Syntax: MAIL FROM:<address>")
                    continue
                if a.mail_reply:
                    self.send(a.mail_reply)
                    continue
                mail, rcpts, rcpt_args = m.group(1), [], []
                mail_args = ("<%s> %s" % (m.group(1), m.group(2))).strip()
                self.on_mail(arg)
                self.send("250 2.1.0 Ok")
            elif verb == "RCPT":
                m = re.match(r"(?i)TO:\s*<([^>]*)>\s*(.*)", arg)
                if mail is None:
                    self.send("503 5.5.1 Error: need MAIL command")
                    continue
                if not m:
                    self.send("501 5.5.4 Syntax: RCPT TO:<address>")
                    continue
                reply = self.rcpt_reply(m.group(1))
                event(a, "RCPT %s %s -> %s" % (self.tag(), arg, reply[:3]))
                if reply.startswith("2"):
                    rcpts.append(m.group(1))
                    rcpt_args.append(("<%s> %s" % (m.group(1), m.group(2))).strip())
                self.send(reply)
            elif verb == "DATA":
                if not rcpts:
                    self.send("554 5.5.1 Error: no valid recipients")
                    continue
                self.send("354 End data with <CR><LF>.<CR><LF>")
                body = self.read_data()
                if body is None or not self.end_of_data(mail, mail_args, rcpts,
                                                        rcpt_args, helo, body):
                    return
                if a.one_message:
                    return
                mail, rcpts, rcpt_args = None, [], []
            elif verb == "RSET":
                mail, rcpts, rcpt_args = None, [], []
                self.send("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 Error: command not recognized")

    def store(self, mail, mail_args, rcpts, rcpt_args, helo, body):
        """Write one Maildir file; returns its name."""
        with LOCK:
            COUNTER[0] += 1
            n = COUNTER[0]
        name = "%d.%d_%d.%s" % (int(time.time()), os.getpid(), n, self.SUFFIX)
        head = ["Return-Path: <%s>" % mail]
        head += ["Delivered-To: %s" % r for r in rcpts]
        head.append("X-Mail-Args: %s" % mail_args)
        head += ["X-Rcpt-Args: %s" % r for r in rcpt_args]
        head.append("X-Helo-Args: %s" % helo)
        head.append("X-NextHop-TLS: %s" % (self.tls or "none"))
        head.append("X-NextHop-Conn: %d" % self.num)
        head += self.extra_headers()
        tmp = os.path.join(self.args.maildir, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(("\r\n".join(head) + "\r\n").encode("utf-8"))
            f.write(body)
        os.rename(tmp, os.path.join(self.args.maildir, "new", name))
        event(self.args, "STORED %s %s" % (self.tag(), name))
        return name


def parser(doc=__doc__):
    """The options; a subclass's script adds its own."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", action="append", required=True, help="ADDR:PORT (repeatable)")
    p.add_argument("--maildir", required=True)
    p.add_argument("--events", help="event log (default MAILDIR/../nexthop.events)")
    p.add_argument("--hostname", default="nexthop.test")
    p.add_argument("--tls-cert"), p.add_argument("--tls-key")
    p.add_argument("--rcpt-reply", action="append", default=[],
                   help="SUBSTRING=REPLY, e.g. 'bob@=550 5.1.1 <bob@x>: no such user'")
    p.add_argument("--mail-reply", help="reply to every MAIL")
    p.add_argument("--data-reply", help="reply at end of DATA (non-2xx: message not stored)")
    p.add_argument("--no-dsn", action="store_true")
    p.add_argument("--one-message", action="store_true",
                   help="close the connection after each message's reply")
    p.add_argument("--size", type=int, default=104857600)
    p.add_argument("--slow", action="store_true", help="read 4 KB at a time, pausing between reads")
    p.add_argument("--slow-delay", type=float, default=0.01)
    return p


def run(a, session=Session):
    """Listen as the options a say and serve each connection with session."""
    for d in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(a.maildir, d), exist_ok=True)
    if not a.events:
        a.events = os.path.join(os.path.dirname(os.path.abspath(a.maildir)), "nexthop.events")
    ctx = None
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
    socks = []
    for spec in a.listen:
        host, _, port = spec.rpartition(":")
        host = host.strip("[]")
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if a.slow:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind((host, int(port)))
        s.listen(128)
        socks.append(s)
    num = [0]

    def acceptor(s):
        while True:
            c, peer = s.accept()
            with LOCK:
                num[0] += 1
                n = num[0]
            session(a, c, peer, ctx, n).start()

    for s in socks[1:]:
        threading.Thread(target=acceptor, args=(s,), daemon=True).start()
    sys.stderr.write("%s listening on %s\n" % (session.NAME, ", ".join(a.listen)))
    sys.stderr.flush()
    acceptor(socks[0])


def main():
    run(parser().parse_args())


if __name__ == "__main__":
    main()
