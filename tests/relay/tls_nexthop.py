#!/usr/bin/env python3
"""A scriptable SMTP next hop for tests/relay/run.sh: STARTTLS (python ssl),
and the misbehaviours the relay client must survive.  One thread per
connection.  Every accepted message is written to --dump DIR as
<n>.eml with the envelope in <n>.env (MAIL line, RCPT lines)."""

import argparse
import os
import socket
import socketserver
import ssl
import sys
import threading
import time

counter = 0
sessions = 0
lock = threading.Lock()


def next_id():
    global counter
    with lock:
        counter += 1
        return counter


class Session(socketserver.StreamRequestHandler):
    def setup(self):
        global sessions
        super().setup()
        self.opts = self.server.opts
        with lock:
            sessions += 1
            self.first = sessions == 1
        self.tls = False
        self.nmsg = 0

    def send(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(65536)
        if not line:
            raise EOFError
        return line.decode("utf-8", "replace").rstrip("\r\n")

    def ehlo_lines(self):
        o = self.opts
        exts = []
        if o.pipelining:
            exts.append("PIPELINING")
        if o.size is not None:
            exts.append("SIZE %d" % o.size)
        if o.dsn:
            exts.append("DSN")
        if o.eightbit:
            exts.append("8BITMIME")
        if o.smtputf8:
            exts.append("SMTPUTF8")
        exts.append("ENHANCEDSTATUSCODES")
        if o.starttls and not self.tls:
            exts.append("STARTTLS")
        return ["nexthop.test"] + exts

    def starttls(self):
        ready = b"220 2.0.0 Ready to start TLS\r\n"
        if self.opts.inject:
            # CVE-2011-0411 from the server side: a plaintext reply that
            # the client must not take as the answer to its next EHLO.
            ready += b"250 injected\r\n"
        self.wfile.write(ready)
        self.wfile.flush()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.opts.cert, self.opts.key)
        try:
            conn = ctx.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            sys.stderr.write("nexthop: handshake failed: %s\n" % e)
            raise EOFError
        self.request = conn
        self.rfile = conn.makefile("rb")
        self.wfile = conn.makefile("wb")
        self.tls = True

    def read_body(self):
        o = self.opts
        data = bytearray(b"\r\n")     # the body starts at a line start
        while True:
            if o.slow_read:
                time.sleep(0.01)
                chunk = self.rfile.read1(o.slow_read)
            else:
                chunk = self.rfile.read1(1 << 20)
            if not chunk:
                raise EOFError
            if o.close_mid_body and len(data) > o.close_mid_body:
                raise EOFError
            start = max(0, len(data) - 4)
            data += chunk
            end = data.find(b"\r\n.\r\n", start)
            if end >= 0:
                return bytes(data[2:end + 2])

    def handle(self):
        try:
            self.conversation()
        except (EOFError, ConnectionError, ssl.SSLError, OSError):
            pass

    def conversation(self):
        o = self.opts
        if o.silent:
            time.sleep(30)
            return
        self.send("220 nexthop.test ESMTP test")
        mail, rcpts = None, []
        while True:
            line = self.readline()
            verb = line[:4].upper()
            if verb == "EHLO":
                if o.no_ehlo:
                    self.send("502 5.5.1 EHLO not implemented")
                    continue
                lines = self.ehlo_lines()
                for l in lines[:-1]:
                    self.send("250-" + l)
                self.send("250 " + lines[-1])
            elif verb == "HELO":
                self.send("250 nexthop.test")
            elif verb == "STAR" and o.starttls and not self.tls:
                self.starttls()
            elif verb == "MAIL":
                if o.reject_mail:
                    self.send("550 5.7.1 sender refused")
                    continue
                mail, rcpts = line, []
                self.send("250 2.1.0 Ok")
            elif verb == "RCPT":
                if o.reject_on_replay and not self.first:
                    self.send("550 5.1.1 refused on the second connection")
                elif o.reject_rcpt and o.reject_rcpt in line:
                    self.send("550 5.1.1 <%s>: no such user" % line[9:])
                elif o.defer_rcpt and o.defer_rcpt in line:
                    self.send("450 4.2.0 try later")
                else:
                    rcpts.append(line)
                    self.send("250 2.1.5 Ok")
                    if (self.first and o.drop_after_rcpt and
                            len(rcpts) == o.drop_after_rcpt):
                        time.sleep(0.2)
                        return
            elif verb == "DATA":
                if o.close_after_data:
                    return
                self.send("354 End data with <CR><LF>.<CR><LF>")
                if o.close_after_354:
                    return
                body = self.read_body()
                n = next_id()
                if o.dump:
                    with open(os.path.join(o.dump, "%d.eml" % n), "wb") as f:
                        f.write(body)
                    with open(os.path.join(o.dump, "%d.env" % n), "w") as f:
                        f.write("\n".join([mail] + rcpts) + "\n")
                if o.long_reply:
                    for _ in range(200):
                        self.send("250-x")
                self.send("250 2.0.0 Ok: queued as %d" % n)
                self.nmsg += 1
                if o.die_after_msg:
                    return
            elif verb == "RSET":
                mail, rcpts = None, []
                self.send("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 unknown command")


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="127.0.0.1:2527")
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--pipelining", action="store_true")
    p.add_argument("--size", type=int)
    p.add_argument("--dsn", action="store_true")
    p.add_argument("--eightbit", action="store_true")
    p.add_argument("--smtputf8", action="store_true")
    p.add_argument("--no-ehlo", action="store_true")
    p.add_argument("--inject", action="store_true")
    p.add_argument("--reject-mail", action="store_true")
    p.add_argument("--reject-rcpt")
    p.add_argument("--defer-rcpt")
    p.add_argument("--drop-after-rcpt", type=int, default=0,
                   help="first connection only: close after N accepted RCPTs")
    p.add_argument("--reject-on-replay", action="store_true",
                   help="refuse every RCPT after the first connection")
    p.add_argument("--close-after-data", action="store_true")
    p.add_argument("--close-after-354", action="store_true")
    p.add_argument("--close-mid-body", type=int, default=0)
    p.add_argument("--slow-read", type=int, default=0,
                   help="read at most N bytes every 10 ms")
    p.add_argument("--silent", action="store_true")
    p.add_argument("--long-reply", action="store_true")
    p.add_argument("--die-after-msg", action="store_true")
    p.add_argument("--dump")
    opts = p.parse_args()
    host, port = opts.listen.rsplit(":", 1)
    srv = Server((host, int(port)), Session)
    srv.opts = opts
    sys.stderr.write("nexthop: listening on %s\n" % opts.listen)
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
