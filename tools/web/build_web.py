#!/usr/bin/env python3
"""Precompress the control page: web/X -> web/X.gz (gzip -9, mtime 0, no file name,
so the output is byte-for-byte reproducible). The board sends the .gz as-is.

Prints what a phone downloads for the page and fails when it is over budget:
the car serves it over a slow, lossy access point from a tiny heap.

Usage: python tools/web/build_web.py [--web DIR] [--budget BYTES] [--check]
  --check  only verify the .gz files are present and current (exit 1 if not)
"""
import argparse
import gzip
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUDGET = 16 * 1024      # bytes, gzipped, everything the page loads


def assets(web):
    """Source files under web/ (sorted, relative paths); .gz outputs and dotfiles excluded."""
    found = []
    for dirpath, dirnames, filenames in os.walk(web):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(".gz"):
                continue
            found.append(os.path.relpath(os.path.join(dirpath, name), web))
    return found


def compress(data):
    # gzip.compress writes no file name and, with mtime=0, no timestamp.
    return gzip.compress(data, compresslevel=9, mtime=0)


def stale_outputs(web, sources):
    """.gz files whose source no longer exists (left over from a rename)."""
    wanted = {s + ".gz" for s in sources}
    stale = []
    for dirpath, _, filenames in os.walk(web):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), web)
            if name.endswith(".gz") and rel not in wanted:
                stale.append(rel)
    return sorted(stale)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--web", default=os.path.join(ROOT, "web"))
    ap.add_argument("--budget", type=int, default=BUDGET)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)

    sources = assets(args.web)
    if not sources:
        print("build_web: no assets in %s" % args.web, file=sys.stderr)
        return 1

    outdated = []
    total_raw = total_gz = 0
    rows = []
    for rel in sources:
        src = os.path.join(args.web, rel)
        with open(src, "rb") as f:
            data = f.read()
        packed = compress(data)
        out = src + ".gz"
        try:
            with open(out, "rb") as f:
                current = f.read() == packed
        except OSError:
            current = False
        if not current:
            outdated.append(rel + ".gz")
            if not args.check:
                with open(out, "wb") as f:
                    f.write(packed)
        total_raw += len(data)
        total_gz += len(packed)
        rows.append((rel, len(data), len(packed)))

    for rel in stale_outputs(args.web, sources):
        if args.check:
            outdated.append(rel)
        else:
            os.remove(os.path.join(args.web, rel))

    width = max(len(r[0]) for r in rows)
    for rel, raw, packed in rows:
        print("  %-*s %7d B -> %6d B gzip" % (width, rel, raw, packed))
    verdict = "OK" if total_gz <= args.budget else "OVER BUDGET"
    print("web page: %d B raw, %d B gzipped (%.1f KB of %.1f KB budget) %s"
          % (total_raw, total_gz, total_gz / 1024, args.budget / 1024, verdict))

    if args.check and outdated:
        print("build_web: out of date: %s (run tools/web/build_web.py)" % ", ".join(outdated), file=sys.stderr)
        return 1
    if total_gz > args.budget:
        print("build_web: the page is %d B gzipped, over the %d B budget" % (total_gz, args.budget),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
