#!/usr/bin/env python3
"""The smallest heap a car runs in, plain and with the fleet link, on a board
proxy (build/proxy/micropython-esp32 by default), in the `make deploy` layout
(lib/ as .mpy files for x86 on the filesystem, tools/board/stage.py).

    python tools/measure/fleet_memory.py [--seconds 8] [--lo 40] [--hi 140] [--ws] [--check]

For each configuration the heap is bisected in 2 KB steps: a run passes when
the car serves a driver (10 Hz) and a viewer for --seconds with no
MemoryError, no traceback and no telemetry gap over 1 s, and (fleet) its
status is online on a real mosquitto on 127.0.0.1 with its telemetry arriving.
--ws adds the link over MQTT over WebSocket (needs lib/wsclient; the broker's
WebSocket listener binds every interface, so run that inside `unshare -n`).
--check is the budget test (tests/memory/test_fleet_memory.py, under a minute): the
plain car's edge is bisected as above, then each link runs once in that heap
+ BUDGET_KB; the exit status is 1 when one fails there.
"""
import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

BUDGET_KB = 12  # a car with the fleet link runs within the plain car's heap + 12 KB
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.common import LIB, ROOT, free_port, wait_port  # noqa: E402
sys.path.insert(0, LIB)
from mqtt.session import Session  # noqa: E402
from tools.board.stage import CHECKED, checked_config  # noqa: E402
from mqtt.transport import opener  # noqa: E402


async def exercise(port, seconds, broker_url):
    fleet = {"online": False, "telemetry": 0}
    session = task = None
    if broker_url:
        def got(topic, payload, retain):
            if topic.endswith("/status"):
                fleet["online"] = json.loads(payload).get("online")
            else:
                fleet["telemetry"] += 1
        session = Session(opener(broker_url), "probe", subscriptions=[("tether/+/status", 1),
                                                                      ("tether/+/telemetry", 0)],
                          on_message=got, log=lambda *a: None, backoff_min_ms=100, backoff_max_ms=500)
        task = asyncio.ensure_future(session.run())
    ok = await drive_and_watch(port, seconds)
    if session:
        await session.close()
        await task
    if broker_url:
        ok = ok and fleet["online"] and fleet["telemetry"] >= seconds
    return ok


async def drive_and_watch(port, seconds, before_stop=None):
    """A viewer and a driver (10 Hz) on the car's /ws for `seconds`; True when
    both stayed connected and telemetry kept arriving with no gap over 1 s.
    before_stop (a coroutine function) runs while both are still connected.
    tools/measure/uplink_memory.py uses it too."""
    import websockets

    times = []
    url = "ws://127.0.0.1:%d/ws" % port

    async def viewer():
        async with websockets.connect(url, max_queue=None) as ws:
            async for text in ws:
                if '"telemetry"' in text:
                    times.append(time.monotonic())

    async def driver():
        async with websockets.connect(url, max_queue=None) as ws:
            while True:
                await ws.send('{"type":"drive","throttle":0.4,"steer":0.1}')
                await asyncio.sleep(0.1)
    tasks = [asyncio.ensure_future(viewer())]
    await asyncio.sleep(0.3)
    tasks.append(asyncio.ensure_future(driver()))
    await asyncio.sleep(seconds)
    failed = [t for t in tasks if t.done()]
    if before_stop:
        await before_stop()
    for t in tasks:
        t.cancel()
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Memory, not timing, decides: a shared machine's load can stall a
    # telemetry frame for a few hundred ms whatever the heap.
    return not failed and len(times) > seconds * 5 and max(gaps or [9]) <= 1.0


def run_once(micropython, board, config, heap_k, seconds, broker_url):
    return run_car(micropython, board, config, heap_k, lambda port: exercise(port, seconds, broker_url))


def run_car(micropython, board, config, heap_k, exercise, heap=None, script="main.py"):
    """Start the car in `board` with `config` in a heap of heap_k KB (or `heap`
    bytes), run exercise(port) against it; True when that passed and the car
    is alive with no MemoryError and no traceback. tools/measure/uplink_memory.py
    uses it too."""
    # The config and its stamp, as tools/board/stage.py writes them: a board whose
    # stamp matches skips the config check at boot (lib/car/__init__.py), so the
    # heap measured is the deployed car's, not one that also checks its config.
    data = json.dumps(config).encode()
    stamp, checked = checked_config(ROOT, data, None)  # the board on_board() names on a Unix port
    with open(os.path.join(board, "config.json"), "wb") as f:
        f.write(data)
    with open(os.path.join(board, CHECKED), "w") as f:
        f.write(stamp + checked + "\n")
    port = free_port()
    proc = subprocess.Popen([micropython, "-X", "heapsize=%d" % (heap or heap_k * 1024), script, "--port", str(port)],
                            cwd=board, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ok = wait_port(port, proc) and asyncio.run(exercise(port))
        alive = proc.poll() is None
    finally:
        proc.terminate()
        out = proc.communicate(timeout=5)[0]
    passed = ok and alive and "MemoryError" not in out and "Traceback" not in out
    if SHOW and not passed:
        print("--- %d KB failed; the car's last lines:\n%s" % (heap_k, "\n".join(out.splitlines()[-12:])), flush=True)
    return passed


SHOW = []  # --show: print a failed run's output (tools/measure/uplink_memory.py's too)


def smallest_heap(passes, lo, hi, near=None):
    """Smallest heap (KB, even) in (lo, hi] for which passes(heap_k) holds, by
    bisection in 2 KB steps; None when hi itself fails. near: where the edge
    is expected (an even KB): two runs confirm it (near passes, near - 2
    fails); otherwise the search goes on from what they showed.
    tools/measure/uplink_memory.py uses it too."""
    known = False  # hi is known to pass
    if near and lo < near - 2 and near <= hi:
        if passes(near):
            if not passes(near - 2):
                return near
            hi, known = near - 2, True
        else:
            lo = near
    if not known and not passes(hi):
        return None
    while hi - lo > 2:
        mid = (lo + hi) // 2 // 2 * 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi


def edge(micropython, board, config, lo, hi, seconds, link, run=run_once, near=None):
    """The smallest heap in which run(..., heap_k, seconds, link) passes (run:
    this file's run_once or tools/measure/uplink_memory.py's)."""
    return smallest_heap(lambda heap_k: run(micropython, board, config, heap_k, seconds, link), lo, hi, near)


def heap_arguments():
    """The options this file and tools/measure/uplink_memory.py share."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--micropython", default=os.path.join(ROOT, "build", "proxy", "micropython-esp32"))
    parser.add_argument("--march", default="x86")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--lo", type=int, default=40)
    parser.add_argument("--hi", type=int, default=140)
    parser.add_argument("--near", type=int, help="the plain car's expected edge (KB): confirmed in two runs")
    parser.add_argument("--show", action="store_true", help="print the car's last lines when a run fails")
    return parser


CHIP = "esp32"  # the tree `make deploy CHIP=esp32` writes: -O3, no line tables, its config caps


def staged(args, prefix):
    """(tmp, board): a temporary folder and the `make deploy CHIP=esp32` layout
    staged in tmp/board for args.march; --show switched on if asked."""
    if args.show:
        SHOW.append(True)
    tmp = tempfile.mkdtemp(prefix=prefix)
    board = os.path.join(tmp, "board")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "board", "stage.py"), "--march", args.march, "--out", board,
                    "--chip", CHIP],
                   cwd=ROOT, check=True, capture_output=True)
    return tmp, board


def main():
    parser = heap_arguments()
    parser.add_argument("--ws", action="store_true")
    parser.add_argument("--check", action="store_true",
                        help="bisect the plain car only; run each link once at its edge + %d KB" % BUDGET_KB)
    parser.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    args = parser.parse_args()
    tmp, board = staged(args, "fleet-memory-")
    tcp, ws = free_port(), free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n" % tcp)
        if args.ws:
            f.write("listener %d 127.0.0.1\nprotocol websockets\n" % ws)
        if os.geteuid() == 0:
            f.write("user root\n")
    broker = subprocess.Popen([args.mosquitto, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(tcp, broker)
    base = {"hardware": {"mode": "sim"}, "wifi": {"hostname": "car-m"}}
    configs = [("plain car", base, None),
               ("fleet link over TCP", dict(base, fleet={"url": "mqtt://127.0.0.1:%d" % tcp}),
                "mqtt://127.0.0.1:%d" % tcp)]
    if args.ws:
        configs.append(("fleet link over WebSocket", dict(base, fleet={"url": "ws://127.0.0.1:%d/mqtt" % ws}),
                        "mqtt://127.0.0.1:%d" % tcp))
    results = {}
    failed = []
    try:
        for name, config, url in configs:
            if args.check and name != "plain car":
                heap = results["plain car"] + BUDGET_KB
                ok = run_once(args.micropython, board, config, heap, args.seconds, url)
                print("%-28s at %d KB (plain + %d KB): %s" % (name, heap, BUDGET_KB, "runs" if ok else "FAILS"),
                      flush=True)
                if not ok:
                    failed.append(name)
                continue
            results[name] = edge(args.micropython, board, config, args.lo, args.hi, args.seconds, url,
                                 near=args.near if name == "plain car" else None)
            print("%-28s smallest heap %s" % (name, "%d KB" % results[name] if results[name] else "> --hi"),
                  flush=True)
            if args.check and not results[name]:
                failed.append(name)
                break
    finally:
        broker.terminate()
        broker.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
    plain = results.get("plain car")
    for name, value in results.items():
        if name != "plain car" and value and plain:
            print("%s: plain + %d KB (allowed: + %d KB)" % (name, value - plain, BUDGET_KB))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
