#!/usr/bin/env python3
"""tests/revocation/badocsp.py PORT CA.pem CA.key OTHER.pem OTHER.key LEAF.pem...:
an OCSP responder (HTTP POST) that misbehaves by path, for the OCSP
checker's bad-input tests.  It answers about the LEAF certificates (found
by the request's serial), issued by CA; OTHER is another CA.

  /good       status good, signed by the CA itself (a control)
  /expired    good, but thisUpdate and nextUpdate in the past
  /future     good, but thisUpdate tomorrow
  /wrongid    good, about another of the leaves (not the one asked about)
  /unknown    status unknown
  /trylater   no answer: responseStatus tryLater
  /otherca    good, signed by OTHER (a CA of the same root, not the issuer)
  /badsig     the /good answer with one bit of its signature flipped
  /replay     the first request: revoked; every later one: good, but older
              than that revocation (an old answer played back)
Anything else, or a request about a certificate it does not know: 404.
Prints "listening" once bound."""
import datetime
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp


def load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


CA, CAKEY = load_cert(sys.argv[2]), load_key(sys.argv[3])
OTHER, OTHERKEY = load_cert(sys.argv[4]), load_key(sys.argv[5])
LEAVES = [load_cert(p) for p in sys.argv[6:]]
DAY = datetime.timedelta(days=1)
lock = threading.Lock()
replayed = [0]


def answer(path, req):
    """The DER answer for path to req, or None (404)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    leaf = next((c for c in LEAVES if c.serial_number == req.serial_number
                 and c.issuer == CA.subject), None)
    if path == "/trylater":
        return ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(
                serialization.Encoding.DER)
    if leaf is None:
        return None
    status, this, nxt, rtime = ocsp.OCSPCertStatus.GOOD, now, now + DAY, None
    signer, key = CA, CAKEY
    if path == "/expired":
        this, nxt = now - 2 * DAY, now - DAY
    elif path == "/future":
        this, nxt = now + DAY, now + 2 * DAY
    elif path == "/wrongid":
        leaf = next((c for c in LEAVES if c is not leaf), None)
    elif path == "/unknown":
        status = ocsp.OCSPCertStatus.UNKNOWN
    elif path == "/otherca":
        signer, key = OTHER, OTHERKEY
    elif path == "/replay":
        with lock:
            replayed[0] += 1
            first = replayed[0] == 1
        if first:
            status, this, rtime = (ocsp.OCSPCertStatus.REVOKED,
                                   now - datetime.timedelta(minutes=1),
                                   now - datetime.timedelta(minutes=2))
        else:
            this = now - datetime.timedelta(hours=1)
    elif path not in ("/good", "/badsig"):
        return None
    b = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf, issuer=CA, algorithm=req.hash_algorithm,
        cert_status=status, this_update=this, next_update=nxt,
        revocation_time=rtime,
        revocation_reason=None if rtime is None else
        x509.ReasonFlags.key_compromise)
    b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, signer)
    if signer is not CA:
        b = b.certificates([signer])
    der = bytearray(b.sign(key, hashes.SHA256()).public_bytes(
        serialization.Encoding.DER))
    if path == "/badsig":
        der[-1] ^= 1        # the signature is the answer's last field
    return bytes(der)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        try:
            der = answer(self.path, ocsp.load_der_ocsp_request(
                self.rfile.read(min(n, 65536))))
        except ValueError:
            der = ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(
                    serialization.Encoding.DER)
        if der is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(der)))
        self.end_headers()
        self.wfile.write(der)


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", int(sys.argv[1])), Handler)
print("listening", flush=True)
srv.serve_forever()
