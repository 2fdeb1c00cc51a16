#!/usr/bin/env python3
"""tests/layout/symbols.py: what the linker sees, checked with nm.

    symbols.py BUILDDIR

1. No two object files of our libraries reference each other's symbols
   (a lower module never calls up; callbacks go through a struct of
   function pointers given at creation).
2. smrelayctl contains no relay client and no queue runner: none of the
   functions defined by librelay.a, nor by libqueue.a, except the spool
   database (spooldb.o, which `smrelayctl queue` edits) and the routing
   decision (route.o, which `smrelayctl route test` shows).
3. smrelayd does contain them (so check 2 looks at real symbols).
Prints one line per problem; exit 1 if any.
"""
import collections
import os
import subprocess
import sys

LIBS = ["libsmlib.a", "libproto.a", "libpolicy.a", "libstore.a", "libbase.a",
        "libkeyd.a", "libsmtpd.a", "librelay.a", "libqueue.a", "libsmime.a", "libsink.a"]
CTL_ALLOWED = {("libqueue.a", "spooldb.o"), ("librelay.a", "route.o")}


def nm(path, *flags):
    out = subprocess.run(["nm", *flags, path], capture_output=True, text=True,
                         check=True).stdout
    return out.splitlines()


def archive(builddir, lib):
    """{object: (defined globals, undefined)} of one static library."""
    objs = collections.defaultdict(lambda: (set(), set()))
    for line in nm(os.path.join(builddir, lib), "-A"):
        parts = line.split()
        where = parts[0].rstrip(":").split(":")
        obj = where[1] if len(where) > 1 else where[0]
        kind, sym = (parts[1], parts[2]) if len(parts) == 3 else (parts[-2], parts[-1])
        if kind == "U":
            objs[obj][1].add(sym)
        elif kind in "TDBRCG":
            objs[obj][0].add(sym)
    return objs


def main():
    builddir = sys.argv[1] if len(sys.argv) > 1 else "."
    problems = []
    owner = {}
    libs = {lib: archive(builddir, lib) for lib in LIBS}
    for lib, objs in libs.items():
        for obj, (defs, _) in objs.items():
            for s in defs:
                owner[s] = (lib, obj)
    uses = collections.defaultdict(set)
    for lib, objs in libs.items():
        for obj, (_, undefs) in objs.items():
            for s in undefs:
                if s in owner and owner[s] != (lib, obj):
                    uses[((lib, obj), owner[s])].add(s)
    for (a, b), syms in sorted(uses.items()):
        if a < b and (b, a) in uses:
            problems.append("%s/%s and %s/%s call each other (%s; %s)" % (
                a[0], a[1], b[0], b[1], ", ".join(sorted(syms)[:3]),
                ", ".join(sorted(uses[(b, a)])[:3])))
    forbidden = {}
    for lib in ("librelay.a", "libqueue.a"):
        for obj, (defs, _) in libs[lib].items():
            if (lib, obj) not in CTL_ALLOWED:
                for s in defs:
                    forbidden[s] = "%s/%s" % (lib, obj)
    if not forbidden:
        problems.append("no relay or queue-runner symbols found in the libraries")

    def defined(prog):
        return {l.split()[-1] for l in nm(os.path.join(builddir, prog), "--defined-only")}
    ctl = defined("smrelayctl") & set(forbidden)
    for s in sorted(ctl):
        problems.append("smrelayctl contains %s (from %s)" % (s, forbidden[s]))
    missing = set(forbidden) - defined("smrelayd")
    if len(missing) == len(forbidden):
        problems.append("smrelayd contains none of the relay/queue symbols: is nm reading it?")
    for p in problems:
        print(p)
    print("symbols: %s (%d relay/queue-runner symbols kept out of smrelayctl)" % (
        "%d problem(s)" % len(problems) if problems else "ok", len(forbidden)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
