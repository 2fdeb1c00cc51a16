# tests/lib/free_port.sh: free_port, sourced by the test scripts (bash or
# POSIX sh) that start servers on 127.0.0.1.
# free_port: a TCP port on 127.0.0.1 that binds now, below the kernel's
# ephemeral range (outgoing connections of tests running beside this one
# take their source ports from that range, and one could take ours
# between here and the daemon's bind: "Address already in use"), and
# claimed for a few hours under /tmp/smrelay-test-ports so that parallel
# tests never pick the same one.  Falls back to a port the kernel picks.
free_port() {
	"${PYTHON:-python3}" - <<'PYEOF'
import os, random, socket, time
lo, hi = 20000, 32000
try:
    a = int(open('/proc/sys/net/ipv4/ip_local_port_range').read().split()[0])
    hi = min(hi, a - 1)
    lo = max(1024, min(lo, hi - 4000))
except (OSError, ValueError, IndexError):
    pass
d = '/tmp/smrelay-test-ports'
try:
    os.makedirs(d, exist_ok=True)
    try:
        os.chmod(d, 0o1777)
    except OSError:
        pass
except OSError:
    d = None
for _ in range(500):
    p = random.randint(lo, hi)
    if d is not None:
        c = os.path.join(d, str(p))
        try:
            os.mkdir(c)
        except FileExistsError:
            try:
                if time.time() - os.stat(c).st_mtime < 6 * 3600:
                    continue
                os.utime(c)             # a claim hours old: take it over
            except OSError:
                continue
        except OSError:
            d = None
    s = socket.socket()
    try:
        s.bind(('127.0.0.1', p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    raise SystemExit(0)
s = socket.socket()
s.bind(('127.0.0.1', 0))
print(s.getsockname()[1])
PYEOF
}
