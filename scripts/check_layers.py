#!/usr/bin/env python3
"""Fails when a file in src/ or include/ includes a header of a higher layer (issue 12).

Layers, low to high (docs/architecture.md draws the same graph); a file may include headers of
its own layer and of lower ones, never a higher one nor a peer on the same rank:

    base < {http, config} < tls < health < route < fleet < core < admin < {tools, demo} < main
    < tests

(tls sits below health because the health probes speak TLS to TLS backends: issue 14.)

A source file's layer is its folder under src/ (src/main.c is main); a public header's layer is
assigned below. Every quoted include must resolve to a file of the tree: an include that only
resolves under tests/ is a climb into the test layer, one that resolves nowhere is an error.

    check_layers.py [ROOT]       check the tree at ROOT (default: this script's repository)
    check_layers.py --self-test  plant climbs in a scratch tree and prove each one is caught
"""
import os
import re
import sys
import tempfile

RANKS = [
    ("base",),
    ("http", "config"),
    ("tls",),  # the probes (health/probe.c) speak TLS too
    ("health",),  # health.h holds the snapshot types route decides on
    ("route",),
    ("fleet",),  # the server drives the fleet runtime as it drives the prober
    ("core",),
    ("admin",),
    ("tools", "demo"),
    ("main",),
    ("tests",),
]
RANK = {layer: i for i, peers in enumerate(RANKS) for layer in peers}

# include/sidestep/: what main.c, tests and bench/ compile against, each header in one layer.
PUBLIC = {
    "str.h": "base",
    "error.h": "base",
    "log.h": "base",
    "config.h": "config",
    "health.h": "health",
    "route.h": "route",
    "tls.h": "tls",
    "server.h": "core",
    "tools.h": "tools",
}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
SCANNED = ("src", "include")
SEARCH = ("src", "include")  # the product's include path (CMakeLists.txt)
TEST_SEARCH = ("tests/support", "tests/support/stub", "tests/unit")


def layer_of(root, path):
    """The layer of a file under root, or None when the tree has no place for it."""
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    parts = rel.split("/")
    if parts[0] == "tests":
        return "tests"
    if parts[0] == "include" and len(parts) == 3 and parts[1] == "sidestep":
        return PUBLIC.get(parts[2])
    if parts[0] == "src":
        if len(parts) == 2:
            return "main" if parts[1] == "main.c" else None
        return parts[1] if parts[1] in RANK else None
    return None


def resolve(root, src, name, quoted):
    """The file an include names, searched like the compiler would; None when not in the tree."""
    dirs = [os.path.dirname(src)] if quoted else []
    dirs += [os.path.join(root, d) for d in SEARCH + TEST_SEARCH]
    for d in dirs:
        cand = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(cand):
            return cand
    return None


def check(root):
    """Returns (problems, number of includes checked)."""
    problems = []
    checked = 0
    for top in SCANNED:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if not f.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, root)
                own = layer_of(root, path)
                if own is None:
                    problems.append("%s: not in any layer (add it to scripts/check_layers.py)"
                                    % rel)
                    continue
                with open(path, encoding="utf-8", errors="replace") as fh:
                    for lineno, line in enumerate(fh, 1):
                        m = INCLUDE_RE.match(line)
                        if m is None:
                            continue
                        quoted, name = m.group(1) == '"', m.group(2)
                        target = resolve(root, path, name, quoted)
                        if target is None:
                            if quoted:
                                problems.append("%s:%d: \"%s\" is not a file of the tree"
                                                % (rel, lineno, name))
                            continue  # a system or library header
                        checked += 1
                        theirs = layer_of(root, target)
                        where = "%s:%d: %s includes %s" % (rel, lineno, own, name)
                        if theirs is None:
                            problems.append("%s, which is in no layer" % where)
                        elif theirs != own and RANK[theirs] >= RANK[own]:
                            kind = "a peer" if RANK[theirs] == RANK[own] else "a higher layer"
                            problems.append("%s (%s: %s)" % (where, kind, theirs))
    return problems, checked


def self_test():
    """Plants one violation of each kind in a scratch tree; each must be reported."""
    files = {
        "src/base/str.c": '#include "sidestep/str.h"\n',
        "src/base/climb.c": '#include "route/route_x.h"\n',          # base -> route
        "src/route/route_x.h": '#include "sidestep/health.h"\n',     # fine: health < route
        "src/http/peer.c": '#include "config/config_x.h"\n',         # http -> config (peer)
        "src/config/config_x.h": '#include <stdio.h>\n',
        "src/core/uses_test.c": '#include "stub.h"\n',               # core -> tests
        "tests/support/stub/stub.h": "\n",
        "src/health/ghost.c": '#include "nowhere/missing.h"\n',      # unresolved
        "src/health/pub.c": '#include "sidestep/route.h"\n',          # health -> route (public)
        "include/sidestep/str.h": "\n",
        "include/sidestep/health.h": '#include "sidestep/config.h"\n',
        "include/sidestep/config.h": "\n",
        "include/sidestep/route.h": '#include "sidestep/health.h"\n',
        "include/sidestep/stray.h": "\n",                            # unassigned header
        "src/main.c": '#include "core/ok.h"\n#include "sidestep/route.h"\n',
        "src/core/ok.h": '#include "route/route_x.h"\n',
    }
    expect = ["src/base/climb.c:1", "src/http/peer.c:1", "src/core/uses_test.c:1",
              "src/health/ghost.c:1", "src/health/pub.c:1", "include/sidestep/stray.h"]
    clean = ["src/base/str.c", "src/route/route_x.h", "src/main.c", "src/core/ok.h",
             "include/sidestep/route.h", "include/sidestep/health.h"]
    with tempfile.TemporaryDirectory() as root:
        for rel, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w") as fh:
                fh.write(text)
        problems, checked = check(root)
    failed = False
    for e in expect:
        if not any(p.startswith(e) for p in problems):
            print("self-test: the planted violation %s was not reported" % e)
            failed = True
    for c in clean:
        if any(p.startswith(c) for p in problems):
            print("self-test: the legal file %s was reported" % c)
            failed = True
    if len(problems) != len(expect):
        print("self-test: %d problems reported, %d planted:\n  %s"
              % (len(problems), len(expect), "\n  ".join(problems)))
        failed = True
    if checked == 0:
        print("self-test: no include was checked")
        failed = True
    if not failed:
        print("self-test: all %d planted violations reported and nothing else (%d includes)"
              % (len(expect), checked))
    return 1 if failed else 0


def main(argv):
    if len(argv) > 1 and argv[1] == "--self-test":
        return self_test()
    root = argv[1] if len(argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))
    problems, checked = check(root)
    for p in problems:
        print(p)
    if checked == 0:
        print("no include checked under %s: wrong root?" % root)
        return 1
    if problems:
        print("%d layer violation(s); the layers are in docs/architecture.md" % len(problems))
        return 1
    print("layers ok: %d includes checked" % checked)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
