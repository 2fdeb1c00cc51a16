#!/usr/bin/env python3
"""chat.py: a scripted raw SMTP client for exact-byte conversations.

Usage: chat.py [options] HOST PORT STEP...

Steps (run in order; the first failing one ends the run with exit 1):
  send:TEXT          write TEXT in one write; \\r \\n \\t \\0 \\xHH \\\\ are decoded
  line:TEXT          write TEXT followed by CRLF
  repeat:N:TEXT      write TEXT repeated N times in one write
  sendfile:PATH      write the bytes of PATH (as one stream of writes)
  expect:CODE[:RE]   read one reply; its code must start with CODE ("2", "55",
                     "250") and, when given, the regular expression RE must
                     match somewhere in the reply text (all lines joined by \\n);
                     RE written as !RE must not match
                     CODE may list alternatives: "4|5", "250|251"
  until:CODE         read replies until one starts with CODE (fails on EOF)
  errloop:N:CODE:TEXT  up to N times: send TEXT + CRLF and read the reply,
                     until a reply starts with CODE (fails on EOF or after N)
  eof                the next read must see the server close the connection
                     (a 421 reply followed by close is also accepted if CODE
                     checks were meant; use expect:421 then eof)
  tls                TLS handshake (no certificate verification unless --cafile)
  sleep:SECS         pause (for pacing only, never for assertions)
  mark:TEXT          print TEXT in the transcript

Exit status: 0 all steps passed, 1 a step failed, 2 connection error.
The transcript goes to stderr (C: client, S: server).
"""
import argparse
import re
import socket
import ssl
import sys
import time


def decode_escapes(text):
    """Decode the small set of escapes above; text may contain UTF-8."""
    raw = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x5C and i + 1 < len(raw):  # backslash
            n = raw[i + 1]
            if n == ord("r"):
                out += b"\r"; i += 2; continue
            if n == ord("n"):
                out += b"\n"; i += 2; continue
            if n == ord("t"):
                out += b"\t"; i += 2; continue
            if n == ord("0"):
                out += b"\x00"; i += 2; continue
            if n == 0x5C:
                out += b"\\"; i += 2; continue
            if n == ord("x") and i + 3 < len(raw) + 0:
                try:
                    out.append(int(raw[i + 2:i + 4].decode("ascii"), 16))
                    i += 4
                    continue
                except ValueError:
                    pass
        out.append(c)
        i += 1
    return bytes(out)


def show(prefix, data):
    """Print one transcript entry, long payloads abbreviated."""
    if len(data) > 400:
        text = repr(data[:200])[2:-1] + " ... (%d bytes) ... " % len(data) + repr(data[-100:])[2:-1]
    else:
        text = repr(data)[2:-1]
    sys.stderr.write("%s %s\n" % (prefix, text))
    sys.stderr.flush()


class Failed(Exception):
    pass


class Conn:
    def __init__(self, args):
        self.args = args
        self.buf = b""
        fam = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        if args.bind:
            self.sock.bind((args.bind, 0))
        self.sock.settimeout(args.timeout)
        self.sock.connect((args.host, args.port))
        if args.implicit_tls:
            self.starttls()

    def starttls(self):
        if self.buf:
            raise Failed("server sent %r before the TLS handshake" % self.buf[:200])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.args.cafile:
            ctx.load_verify_locations(self.args.cafile)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.args.sni or self.args.host)
        self.sock.settimeout(self.args.timeout)
        sys.stderr.write("-- TLS %s %s\n" % (self.sock.version(), self.sock.cipher()[0]))

    def send(self, data):
        show("C:", data)
        self.sock.sendall(data)

    def fill(self):
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise Failed("timeout (%ss) waiting for the server" % self.args.timeout)
        except (ConnectionResetError, ssl.SSLError) as e:
            chunk = b""
            sys.stderr.write("-- read error: %s\n" % e)
        return chunk

    def readline(self):
        while b"\n" not in self.buf:
            chunk = self.fill()
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def reply(self):
        """One (possibly multi-line) reply: (code, text) or None on EOF."""
        lines = []
        while True:
            line = self.readline()
            if line is None:
                if lines:
                    raise Failed("connection closed inside a multi-line reply")
                return None
            show("S:", line)
            lines.append(line.rstrip(b"\r\n").decode("utf-8", "replace"))
            if not re.match(r"^\d{3}[ -]?", lines[-1]):
                raise Failed("malformed reply line %r" % lines[-1])
            if len(lines[-1]) < 4 or lines[-1][3] != "-":
                break
        code = lines[0][:3]
        for l in lines:
            if l[:3] != code:
                raise Failed("inconsistent codes in multi-line reply %r" % lines)
        return code, "\n".join(lines)

    def at_eof(self):
        if self.buf:
            return False
        return self.fill() == b""


def run(args):
    try:
        conn = Conn(args)
    except (OSError, ssl.SSLError) as e:
        sys.stderr.write("chat: connect %s:%s: %s\n" % (args.host, args.port, e))
        return 2
    for n, step in enumerate(args.steps, 1):
        kind, _, rest = step.partition(":")
        try:
            if kind == "send":
                conn.send(decode_escapes(rest))
            elif kind == "line":
                conn.send(decode_escapes(rest) + b"\r\n")
            elif kind == "repeat":
                count, _, text = rest.partition(":")
                conn.send(decode_escapes(text) * int(count))
            elif kind == "sendfile":
                with open(rest, "rb") as f:
                    data = f.read()
                show("C:", data)
                conn.sock.sendall(data)
            elif kind in ("expect", "until"):
                want, _, pattern = rest.partition(":")
                while True:
                    r = conn.reply()
                    if r is None:
                        raise Failed("connection closed, expected %s" % want)
                    code, text = r
                    if any(code.startswith(w) for w in want.split("|")):
                        break
                    if kind == "expect":
                        raise Failed("expected %s, got %r" % (want, text))
                if pattern.startswith("!"):
                    if re.search(pattern[1:], text, re.M):
                        raise Failed("reply %r matches /%s/" % (text, pattern[1:]))
                elif pattern and not re.search(pattern, text, re.M):
                    raise Failed("reply %r does not match /%s/" % (text, pattern))
            elif kind == "errloop":
                count, _, rest2 = rest.partition(":")
                want, _, text = rest2.partition(":")
                for _ in range(int(count)):
                    conn.send(decode_escapes(text) + b"\r\n")
                    r = conn.reply()
                    if r is None:
                        raise Failed("connection closed before a %s reply" % want)
                    if any(r[0].startswith(w) for w in want.split("|")):
                        break
                else:
                    raise Failed("no %s reply after %s commands" % (want, count))
            elif kind == "eof":
                if not conn.at_eof():
                    r = conn.reply() if conn.buf else None
                    raise Failed("expected the connection to be closed, got %r" % (r or conn.buf,))
            elif kind == "tls":
                conn.starttls()
            elif kind == "sleep":
                time.sleep(float(rest))
            elif kind == "mark":
                sys.stderr.write("-- %s\n" % rest)
            else:
                raise Failed("unknown step %r" % step)
        except Failed as e:
            sys.stderr.write("chat: step %d (%s): %s\n" % (n, step[:60], e))
            print("step %d (%s): %s" % (n, step[:60], e))
            return 1
        except (OSError, ssl.SSLError) as e:
            sys.stderr.write("chat: step %d (%s): I/O error: %s\n" % (n, step[:60], e))
            print("step %d (%s): I/O error: %s" % (n, step[:60], e))
            return 1
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bind", help="local source address")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per read")
    p.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte")
    p.add_argument("--cafile", help="verify the server certificate against this CA")
    p.add_argument("--sni", help="server name for SNI/verification")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("steps", nargs="*")
    args = p.parse_args()
    sys.exit(run(args))


if __name__ == "__main__":
    main()
