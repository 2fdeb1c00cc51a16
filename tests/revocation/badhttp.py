#!/usr/bin/env python3
"""tests/revocation/badhttp.py PORT: an HTTP server that misbehaves by path,
for the CRL fetcher's bad-input tests.

  /slow.crl      one byte a second (never done within a fetch's deadline)
  /huge.crl      200 OK, then bytes without end (a "10 GB" CRL)
  /garbage.crl   200 OK with 4 KB of noise
  /loop.crl      302 to itself (a redirect loop)
  /missing.crl   404
The same for POST (OCSP requests), the request body read and ignored.
Prints "listening" once bound."""
import os
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        try:
            self.serve()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self):     # OCSP: the body is read and ignored
        n = int(self.headers.get("Content-Length", "0") or 0)
        self.rfile.read(min(n, 65536))
        self.do_GET()

    def serve(self):
        if self.path == "/slow.crl":
            self.send_response(200)
            self.end_headers()
            for _ in range(120):
                self.wfile.write(b"0")
                self.wfile.flush()
                time.sleep(1)
        elif self.path == "/huge.crl":
            self.send_response(200)
            self.end_headers()
            chunk = b"\x30" * 65536
            for _ in range(160000):     # 10 GB if nobody stops reading
                self.wfile.write(chunk)
        elif self.path == "/garbage.crl":
            self.send_response(200)
            self.send_header("Content-Length", "4096")
            self.end_headers()
            self.wfile.write(os.urandom(4096))
        elif self.path == "/loop.crl":
            self.send_response(302)
            self.send_header("Location", "/loop.crl")
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", int(sys.argv[1])), Handler)
print("listening", flush=True)
srv.serve_forever()
