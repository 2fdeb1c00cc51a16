#!/usr/bin/env python3
"""tests/layout/layering.py: check that the tree's #include arrows point one way.

    layering.py [ROOT]       check the tree at ROOT (default: the source tree)

The folders, lowest first (docs/ARCHITECTURE.md):

    lib -> proto -> policy -> store -> daemon/base -> daemon/keyd
        -> daemon/smtpd
        -> daemon/relay -> daemon/queue -> daemon/smime -> daemon/sink
        -> daemon (smrelayd.c), daemon/ctl

A file may include headers of its own folder and of folders before it.
It fails (exit 1, one line per problem) on:
  - an include pointing against that order (a lower folder using a higher one),
  - two folders that include each other (also two folders of the same rank),
  - another folder's header other than the one named after that folder
    (lib/lib.h, proto/proto.h, ..., daemon/relay/relay.h),
  - two modules (x.c + x.h) that include each other's headers,
  - an include naming a file of ours that does not exist,
  - a folder (other than the programs') without its header,
  - a C file of ours outside the known folders.
tests/, bench/ and generated files are not checked.
"""
import os
import re
import sys

ORDER = [
    ("lib",), ("proto",), ("policy",), ("store",), ("daemon/base",),
    ("daemon/keyd",), ("daemon/smtpd",), ("daemon/relay",), ("daemon/queue",),
    ("daemon/smime",), ("daemon/sink",), ("daemon", "daemon/ctl"),
]
RANK = {f: i for i, group in enumerate(ORDER) for f in group}
PROGRAMS = ("daemon", "daemon/ctl")  # no library: nothing includes them
CHECKED_TOPS = ("lib", "proto", "policy", "store", "daemon")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def folder_header(folder):
    return folder + "/" + os.path.basename(folder) + ".h"


def sources(root):
    for top in CHECKED_TOPS:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(dirpath, f), root)


def includes(root, path):
    """(line number, included path relative to root) for each of our includes."""
    out = []
    with open(os.path.join(root, path), encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            name = m.group(1)
            if "/" in name:
                target = os.path.normpath(name)
            else:
                target = os.path.join(os.path.dirname(path), name)
                if not os.path.exists(os.path.join(root, target)):
                    out.append((n, None, name))  # generated (autoconfig.h)
                    continue
            out.append((n, target, name))
    return out


def module(path):
    """x.c, x.h and x_priv.h are one module."""
    m = os.path.splitext(path)[0]
    return m[:-len("_priv")] if m.endswith("_priv") else m


def check(root):
    problems = []
    folder_edges = {}
    module_edges = {}
    for path in sources(root):
        src = os.path.dirname(path)
        if src not in RANK:
            problems.append("%s: folder %s is not in the layer order" % (path, src))
            continue
        for n, target, name in includes(root, path):
            if target is None:
                if name != "autoconfig.h":
                    problems.append("%s:%d: \"%s\" not found" % (path, n, name))
                continue
            where = "%s:%d: includes %s" % (path, n, target)
            if not os.path.exists(os.path.join(root, target)):
                problems.append(where + ": no such file")
                continue
            dst = os.path.dirname(target)
            if dst not in RANK:
                problems.append(where + ": not a folder of the layer order")
                continue
            if dst == src:
                a, b = module(path), module(target)
                if a != b:
                    module_edges.setdefault((a, b), where)
                continue
            folder_edges.setdefault((src, dst), where)
            if RANK[dst] >= RANK[src]:
                problems.append(where + ": %s may not use %s (it comes later)" % (src, dst))
            if target != folder_header(dst):
                problems.append(where + ": use %s, the folder's header" % folder_header(dst))
    for folder in RANK:
        if folder not in PROGRAMS and not os.path.exists(os.path.join(root, folder_header(folder))):
            problems.append("%s: no %s" % (folder, folder_header(folder)))
    for (a, b), where in sorted(folder_edges.items()):
        if a < b and (b, a) in folder_edges:
            problems.append("folders %s and %s include each other (%s; %s)"
                            % (a, b, where, folder_edges[(b, a)]))
    for (a, b), where in sorted(module_edges.items()):
        if a < b and (b, a) in module_edges:
            problems.append("modules %s and %s include each other's headers (%s; %s)"
                            % (a, b, where, module_edges[(b, a)]))
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else \
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    problems = check(os.path.abspath(root))
    for p in problems:
        print(p)
    if problems:
        print("layering: %d problem(s)" % len(problems))
        return 1
    print("layering: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
