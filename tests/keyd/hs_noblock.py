#!/usr/bin/env python3
"""hs_noblock.py PORT LOG: with the key process stopped (by the caller), a
STARTTLS handshake waits for its signature; meanwhile another client on
the same daemon is served (banner, EHLO, QUIT), and the handshake is still
pending when that is done: the event loop did not wait.  Then the caller's
'go' on stdin (the key process continued): the handshake completes.
Exit 0 on success, 1 with a reason."""
import select, socket, ssl, sys, time

port, log = int(sys.argv[1]), sys.argv[2]


def reply(f):
    while True:
        line = f.readline()
        if not line:
            sys.exit("FAIL: connection closed")
        if line[3:4] != b"-":
            return line


t = socket.create_connection(("127.0.0.1", port), timeout=30)
tf = t.makefile("rb")
reply(tf)
t.sendall(b"EHLO a.example\r\n")
reply(tf)
t.sendall(b"STARTTLS\r\n")
if not reply(tf).startswith(b"220"):
    sys.exit("FAIL: STARTTLS refused")
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
tt = ctx.wrap_socket(t, do_handshake_on_connect=False)
tt.setblocking(False)
try:
    tt.do_handshake()
except ssl.SSLWantReadError:
    pass
# the server got the ClientHello and waits for the key process
deadline = time.monotonic() + 20
while b"tls handshake waits for the key process" not in open(log, "rb").read():
    if time.monotonic() > deadline:
        sys.exit("FAIL: the handshake never waited for the key process")
    time.sleep(0.05)
# another client, served meanwhile
p = socket.create_connection(("127.0.0.1", port), timeout=10)
pf = p.makefile("rb")
if not reply(pf).startswith(b"220"):
    sys.exit("FAIL: no banner for the other client")
p.sendall(b"EHLO b.example\r\n")
if not reply(pf).startswith(b"250"):
    sys.exit("FAIL: no EHLO reply for the other client")
p.sendall(b"QUIT\r\n")
reply(pf)
p.close()
# the handshake is still where it was: nothing from the server yet
r, _, _ = select.select([tt], [], [], 0)
if r:
    sys.exit("FAIL: the handshake went on (or failed) before the other "
             "client was served: the loop waited for the key process")
print("other client served while the handshake waited", flush=True)
sys.stdin.readline()                    # the key process goes on
tt.setblocking(True)
tt.settimeout(15)
try:
    tt.do_handshake()
except (ssl.SSLError, OSError) as e:
    sys.exit("FAIL: handshake after the key process went on: %s" % e)
tt.sendall(b"EHLO a.example\r\n")
f2 = tt.makefile("rb")
if not reply(f2).startswith(b"250"):
    sys.exit("FAIL: no EHLO reply over TLS")
print("handshake completed: %s" % tt.version())
