#!/usr/bin/env python3
"""tests/revocation/tlsproxy.py PORT CERT KEY UPSTREAM: TLS in front of a
plain TCP server on 127.0.0.1:UPSTREAM (badhttp.py, openssl ocsp -port),
for the https:// tests.  Each connection's TLS handshake is done in its own
thread, so a client that fails it (or a port probe) holds nobody up.
The first HTTP request of a connection is passed on in one piece (header
and Content-Length body): openssl ocsp (3.0) answers 400 to a request
whose body comes in a later segment, which TLS records make likely.
Prints "listening" once bound."""
import socket
import ssl
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    # shutdown first: close alone leaves a recv in the other thread, and
    # the connection, as they are
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def first_request(tls):
    """The first request's header and body (at most 1 MB), as read."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 1 << 20:
        chunk = tls.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = min(int(value.strip()), 1 << 20)
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def handle(ctx, conn, upstream):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    # the upstream connection only once the first request is all here:
    # openssl ocsp (one connection at a time) would otherwise sit on it
    # while a slow client (a sanitizer build) sends, and answer 400
    try:
        first = first_request(tls)
    except OSError:
        first = b""
    try:
        up = socket.create_connection(("127.0.0.1", upstream), 5)
    except OSError:
        tls.close()
        return
    up.settimeout(None)
    try:
        if first:
            up.sendall(first)
    except OSError:
        pass
    threading.Thread(target=pipe, args=(up, tls), daemon=True).start()
    pipe(tls, up)


def main():
    port, cert, key, upstream = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                                 int(sys.argv[4]))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    print("listening", flush=True)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=handle, args=(ctx, conn, upstream),
                         daemon=True).start()


main()
