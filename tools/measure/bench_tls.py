#!/usr/bin/env python3
"""wss beside ws on the same server, in one run: round trip, handshakes per
second, heap per client. `make bench` runs it after tools/measure/bench.py.

    python tools/measure/bench_tls.py [--micropython PATH] [--proxy build/proxy/micropython-esp32]
                              [--board esp32|esp8266] [--clients 3] [--echoes 300] [--seconds 3]

Each interpreter (the Unix port, and the esp32 board proxy when built; with
--board, as `make bench BOARD=...` passes it, that board's proxy alone) runs
tools/measure/echo_server.py --bench twice, plain and with --tls (a certificate made
here by tools/board/cert.py: EC P-256, the car's kind). The client is CPython
(websockets' sync client), verifying the certificate against the test CA.

Heap: gc.mem_alloc() after gc.collect() on the server, asked over the first
connection. mbedTLS's own allocations (record buffers, handshake state) are
not in it: on the Unix port and the proxies MicroPython's mbedTLS config uses
libc's calloc (extmod/mbedtls routes it to the GC heap only on bare-metal
ports), on an ESP32 the IDF heap, which the GC heap also grows into. On the
esp32 proxy tools/measure/malloc_meter (an LD_PRELOAD shim) counts those bytes.
Writes reports/bench-tls.md. CPython only.
"""
import argparse
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.board import cert  # noqa: E402
from tools.common import ROOT, free_port  # noqa: E402


def build_meter(out_dir):
    """tools/measure/malloc_meter as a 32-bit shared object for the proxies, or None."""
    so = os.path.join(out_dir, "malloc_meter32.so")
    src = os.path.join(HERE, "malloc_meter", "malloc_meter.c")
    r = subprocess.run(["gcc", "-m32", "-shared", "-fPIC", "-O2", "-o", so, src, "-ldl"],
                       capture_output=True, text=True)
    return so if r.returncode == 0 else None


class Meter:
    """Bytes the server process holds from libc malloc (mbedTLS's, here)."""

    def __init__(self, so, out):
        self.env = {"LD_PRELOAD": so, "MALLOC_METER_OUT": out}
        self.out = out
        self.pid = None

    def read(self):
        """(live, peak since the last read)"""
        if os.path.exists(self.out):
            os.unlink(self.out)
        os.kill(self.pid, 10)  # SIGUSR1
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with open(self.out) as f:
                    text = f.read()
                if text.endswith("\n"):
                    live, peak = text.split()
                    return int(live), int(peak)
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError("malloc meter did not answer")


def start(micropython, port, certs=None, max_tls=16, meter=None):
    cmd = [micropython, os.path.join(HERE, "echo_server.py"), "--port", str(port), "--bench",
           "--max-clients", "32"]
    if certs:
        cmd += ["--tls", certs, "--max-tls", str(max_tls)]
    env = dict(os.environ, **(meter.env if meter else {}))
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if meter:
        meter.pid = proc.pid
    line = proc.stdout.readline()
    if "echo server on" not in line:
        proc.kill()
        raise RuntimeError("echo server did not start: %s%s" % (line, proc.stdout.read()))
    time.sleep(0.2)
    return proc


def connect(url, ctx):
    from websockets.sync.client import connect as ws_connect
    return ws_connect(url, ssl=ctx, open_timeout=10, compression=None, proxy=None, max_queue=None,
                      legacy=True)


def measure(micropython, certs, ca_ctx, tls, clients, echoes, seconds, meter=None):
    port = free_port()
    proc = start(micropython, port, certs if tls else None, meter=meter)
    url = "%s://localhost:%d/" % ("wss" if tls else "ws", port)
    ctx = ca_ctx if tls else None
    try:
        first = connect(url, ctx)
        first.send("heap")
        idle_with_one = int(first.recv(10))
        # Round trip: one 32-byte text message at a time.
        rtts = []
        for i in range(echoes):
            t = time.perf_counter()
            first.send("x" * 32)
            first.recv(10)
            rtts.append(time.perf_counter() - t)
        # Handshakes: connect (TCP + TLS + upgrade) and close, back to back.
        times = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.perf_counter()
            c = connect(url, ctx)
            times.append(time.perf_counter() - t)
            c.close()
        # Heap per client: `clients` more held open.
        first.send("heap")
        one = int(first.recv(10))
        native = {}
        if meter:
            time.sleep(0.2)
            before = meter.read()[0]
            held = [connect(url, ctx)]
            live, peak = meter.read()
            native["native_handshake_peak"] = peak - before
            held += [connect(url, ctx) for _ in range(clients - 1)]
            time.sleep(0.2)
            native["native_per_client"] = (meter.read()[0] - before) / clients
        else:
            held = [connect(url, ctx) for _ in range(clients)]
        first.send("heap")
        more = int(first.recv(10))
        for c in held:
            c.close()
        first.close()
        return {"rtt_us": statistics.median(rtts) * 1e6, **native,
                "handshake_ms": statistics.median(times) * 1e3,
                "handshakes_s": len(times) / sum(times),
                "heap_1": one, "heap_per_client": (more - one) / clients, "heap_first": idle_with_one}
    finally:
        proc.terminate()
        proc.wait(5)


ROWS = (("rtt_us", "round trip, 32 B text (median)", "us", "%.0f"),
        ("handshake_ms", "connect: TCP + TLS + upgrade (median)", "ms", "%.1f"),
        ("handshakes_s", "handshakes per second, one client", "/s", "%.1f"),
        ("heap_1", "server heap with 1 client (after gc)", "B", "%d"),
        ("heap_per_client", "GC heap per further client", "B", "%.0f"),
        ("native_per_client", "malloc (mbedTLS) per further client", "B", "%.0f"),
        ("native_handshake_peak", "malloc peak during one handshake", "B", "%.0f"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--micropython", default=os.path.join(ROOT, ".venv", "bin", "micropython"))
    ap.add_argument("--proxy", default=os.path.join(ROOT, "build", "proxy", "micropython-esp32"))
    ap.add_argument("--board", choices=["esp32", "esp8266"],
                    help="only that board proxy (build/proxy/micropython-BOARD, make proxies), as bench.py --board")
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--echoes", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--report", default=os.path.join(ROOT, "reports", "bench-tls.md"))
    args = ap.parse_args(argv)
    if args.board:
        args.proxy = os.path.join(ROOT, "build", "proxy", "micropython-" + args.board)
        if not os.path.exists(args.proxy):
            ap.error("%s is missing: make proxies" % os.path.relpath(args.proxy, ROOT))
        interpreters = [("%s proxy (32-bit)" % args.board, args.proxy)]
    else:
        interpreters = [("Unix port (x86-64)", args.micropython)]
        if os.path.exists(args.proxy):
            interpreters.append(("%s proxy (32-bit)" % os.path.basename(args.proxy).split("-")[-1], args.proxy))
        else:
            print("note: no %s (make proxies): Unix port only" % args.proxy)
    lines = ["# wss beside ws", "",
             "tools/measure/bench_tls.py: the echo server, plain and TLS (EC P-256 certificate, TLS 1.2,"
             " mbedTLS), CPython client on loopback, one run. The GC heap rows are gc.mem_alloc();"
             " mbedTLS's session is not in them (the Unix port and the proxies give it libc's"
             " malloc, an ESP32 its IDF heap): the malloc rows (esp32 proxy, tools/measure/malloc_meter)"
             " show it.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        certs = cert.make(tmp, "bench-car", dns=["localhost"], ips=["127.0.0.1"])
        ca_ctx = ssl.create_default_context(cafile=os.path.join(tmp, "ca.crt.pem"))
        so = build_meter(tmp)
        for label, mp in interpreters:
            # The meter only for the 32-bit proxy (the pip Unix port runs inside a CPython process).
            meter = Meter(so, os.path.join(tmp, "meter.out")) if so and mp == args.proxy else None
            ws = measure(mp, certs, ca_ctx, False, args.clients, args.echoes, args.seconds, meter)
            wss = measure(mp, certs, ca_ctx, True, args.clients, args.echoes, args.seconds, meter)
            lines += ["## " + label, "", "| | ws | wss | wss / ws |", "|---|---|---|---|"]
            for key, name, unit, f in ROWS:
                if key not in ws:
                    continue
                lines.append("| %s | %s %s | %s %s | %s |" % (
                    name, f % ws[key], unit, f % wss[key], unit,
                    "%.2f" % (wss[key] / ws[key]) if ws[key] > 0 else "-"))
            lines.append("")
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(args.report), exist_ok=True)
    with open(args.report, "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
