#!/usr/bin/env python3
"""tests/metrics/httpc.py: small HTTP client for t_metrics.sh.

  httpc.py get URL [TIMEOUT]        status line "STATUS" then the body
  httpc.py method VERB URL          the status only
  httpc.py hold N HOST PORT SECS    open N idle connections, print "held",
                                   keep them until SECS pass or stdin closes
  httpc.py sample FILE NAME [LABELS] the value of one sample of a scrape
  httpc.py query PROMURL EXPR       value of an instant query (empty: none)
"""
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def get(url, timeout=5.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def sample(path, name, labels=""):
    want = name + ("{" + labels + "}" if labels else "")
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            key, _, value = line.rstrip("\n").rpartition(" ")
            if key == want:
                return value
    return ""


def main():
    cmd = sys.argv[1]
    if cmd == "get":
        try:
            status, body = get(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 5.0)
        except (OSError, urllib.error.URLError) as e:
            print("ERR %s" % e)
            return 1
        print(status)
        sys.stdout.write(body)
    elif cmd == "method":
        req = urllib.request.Request(sys.argv[3], method=sys.argv[2], data=b"x" if sys.argv[2] == "POST" else None)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                print(r.status)
        except urllib.error.HTTPError as e:
            print(e.code)
    elif cmd == "hold":
        n, host, port, secs = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        socks = [socket.create_connection((host, port), timeout=5) for _ in range(n)]
        print("held", flush=True)
        end = time.monotonic() + secs
        while time.monotonic() < end:
            time.sleep(0.1)
        for s in socks:
            s.close()
    elif cmd == "sample":
        print(sample(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else ""))
    elif cmd == "query":
        url = sys.argv[2] + "/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[3]})
        try:
            status, body = get(url)
        except (OSError, urllib.error.URLError):
            return 1
        res = json.loads(body).get("data", {}).get("result", [])
        if res:
            print(res[0]["value"][1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
