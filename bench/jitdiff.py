#!/usr/bin/env python3
"""bench/jitdiff.py - what one set of bench/jitprof.sh runs costs a server
against another, symbol by symbol, from their DIR/symbols.tsv (samples
per 1000 requests of each server; runs of a set averaged):

    bench/jitdiff.py BASE_DIR... -- DIR... [--side twin|first] [--rows N]

With TWINS=1 NOAGENT=1 runs as the base and TWINS=1 runs after "--", the
twin's rows are what the tracepoints' dispatch and the port test cost a
server hotpathd does not watch, in situ (the socket loop of
bench/overhead.sh measures them in a loop). Totals move with the
machine's speed between runs; a symbol's own rows move much less.
"""
import collections
import sys


def load(d, side):
    t = collections.Counter()
    for line in open(d + "/symbols.tsv"):
        s, sym, v = line.rstrip("\n").split("\t")
        if s == side:
            t[sym] += float(v)
    return t


def mean(dirs, side):
    m = collections.Counter()
    for d in dirs:
        for k, v in load(d, side).items():
            m[k] += v / len(dirs)
    return m


def main(argv):
    side, rows = "twin", 16
    if "--side" in argv:
        i = argv.index("--side")
        side = argv[i + 1]
        del argv[i:i + 2]
    if "--rows" in argv:
        i = argv.index("--rows")
        rows = int(argv[i + 1])
        del argv[i:i + 2]
    if "--" not in argv:
        sys.exit(__doc__)
    i = argv.index("--")
    base, runs = argv[:i], argv[i + 1:]
    if not base or not runs:
        sys.exit(__doc__)
    a, b = mean(base, side), mean(runs, side)
    ta, tb = sum(a.values()), sum(b.values())
    print("%s: %.1f samples per 1000 requests in the base, %.1f (%+.2f%%)"
          % (side, ta, tb, 100.0 * (tb / ta - 1)))
    diff = sorted(((b[k] - a[k], k) for k in set(a) | set(b)), key=lambda r: -r[0])
    for x, k in diff[:rows]:
        print("  %+7.2f %+6.2f%%  %s" % (x, 100.0 * x / ta, k))
    print("  ...")
    for x, k in diff[-4:]:
        print("  %+7.2f %+6.2f%%  %s" % (x, 100.0 * x / ta, k))


if __name__ == "__main__":
    main(sys.argv[1:])
