#!/usr/bin/env python3
"""The smallest heap a car runs in, plain and with the uplink, on a board proxy
(build/proxy/micropython-esp32 by default), in the `make deploy` layout (lib/ as
.mpy files for x86 on the filesystem, tools/board/stage.py) — the way
tools/measure/fleet_memory.py measures the fleet link.

    python tools/measure/uplink_memory.py [--seconds 8] [--lo 40] [--hi 140] [--romfs] [--check]

For each configuration the heap is bisected in 2 KB steps: a run passes when the
car serves a driver (10 Hz) and a viewer on its /ws for --seconds with no
MemoryError, no traceback and no telemetry gap over 1 s, and (uplink) it said
hello to a websockets server on 127.0.0.1, its telemetry kept arriving, and a
ping over the uplink was answered at the end. --romfs puts lib/ in a ROMFS
image executed in place (tools/measure/heap_report.py's layout: the heap is enlarged
by exactly the image's block, so the figure is the heap besides the image).
--check is the budget test (tests/memory/test_uplink_memory.py): the plain car's
edge is bisected as above, then the uplink runs once in that heap + BUDGET_KB;
the exit status is 1 when it fails there.
"""
import asyncio
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.common import free_port  # noqa: E402
from fleet_memory import drive_and_watch, edge, heap_arguments, run_car, staged  # noqa: E402  (tools/measure is sys.path[0]: shared, the same 2 KB bisection)

BUDGET_KB = 8  # a car with the uplink runs within the plain car's heap + 8 KB


async def exercise(port, seconds, uplink):
    import websockets
    from websockets.asyncio.server import serve

    seen = {"hello": 0, "telemetry": 0, "pong": 0}
    cars = []

    async def handler(ws):
        cars.append(ws)
        async for text in ws:
            kind = json.loads(text).get("type")
            if kind in seen:
                seen[kind] += 1

    async def ping():
        if uplink and cars:
            try:
                await cars[-1].send('{"type":"ping","id":1}')
                await asyncio.sleep(0.5)
            except websockets.ConnectionClosed:
                pass

    server = await serve(handler, "127.0.0.1", uplink) if uplink else None
    ok = await drive_and_watch(port, seconds, before_stop=ping)
    if server:
        server.close()
    if uplink:
        ok = ok and seen["hello"] >= 1 and seen["telemetry"] >= seconds and seen["pong"] >= 1
    return ok


ROMFS = {}  # board dir -> image size, when lib/ is in a ROMFS image


def run_once(micropython, board, config, heap_k, seconds, uplink):
    heap, script = heap_k * 1024, "main.py"
    if board in ROMFS:
        from tools.measure.heap_report import romfs_heapsize

        heap, script = romfs_heapsize(heap, ROMFS[board]), "romfs_boot.py"
    return run_car(micropython, board, config, heap_k, lambda port: exercise(port, seconds, uplink),
                   heap=heap, script=script)


def main():
    parser = heap_arguments()
    parser.add_argument("--only", choices=["plain", "uplink"])
    parser.add_argument("--romfs", action="store_true")
    parser.add_argument("--check", action="store_true",
                        help="bisect the plain car only; run the uplink once at its edge + %d KB" % BUDGET_KB)
    args = parser.parse_args()
    tmp, board = staged(args, "uplink-memory-")
    if args.romfs:
        from tools.measure.heap_report import romfs_tree

        rom = os.path.join(tmp, "rom")
        os.makedirs(rom)
        ROMFS[rom] = romfs_tree(board, rom)
        board = rom
    uplink = free_port()
    base = {"hardware": {"mode": "sim"}, "wifi": {"hostname": "car-m"}}
    configs = [("plain", base, None),
               ("uplink", dict(base, uplink={"url": "ws://127.0.0.1:%d/car" % uplink}), uplink)]
    results = {}
    try:
        for name, config, port in configs:
            if args.only and name != args.only:
                continue
            if args.check and name == "uplink":
                if not results.get("plain"):
                    return 1
                heap = results["plain"] + BUDGET_KB
                ok = run_once(args.micropython, board, config, heap, args.seconds, port)
                print("%-8s at %d KB (plain + %d KB): %s" % (name, heap, BUDGET_KB, "runs" if ok else "FAILS"),
                      flush=True)
                return 0 if ok else 1
            results[name] = edge(args.micropython, board, config, args.lo, args.hi, args.seconds, port,
                                 run=run_once, near=args.near if name == "plain" else None)
            print("%-8s smallest heap %s" % (name, "%d KB" % results[name] if results[name] else "> --hi"),
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if results.get("plain") and results.get("uplink"):
        print("uplink: plain + %d KB (allowed: + %d KB)" % (results["uplink"] - results["plain"], BUDGET_KB))
    return 0


if __name__ == "__main__":
    sys.exit(main())
