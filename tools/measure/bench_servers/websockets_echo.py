"""Benchmark reference on CPython: the `websockets` library (asyncio API, with
its C speed-ups), the same endpoints as the MicroPython echo servers.

    python tools/measure/bench_servers/websockets_echo.py --port N [--host H]

/ echoes every message; /bcast: "start" pushes the same telemetry-like text
as tools/measure/echo_server.py --bench to every /bcast client (16 per loop turn) until
"stop". No compression (the others have none), no keepalive pings.
"""
import asyncio
import sys

import websockets
from websockets.asyncio.server import broadcast, serve

import websockets.speedups  # noqa: F401  fails loudly if the C speed-ups are missing


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


members = set()
pushing = [False]


async def push():
    seq = 0
    while pushing[0]:
        for _ in range(16):
            seq += 1
            broadcast(members, '{"type":"telemetry","seq":%d,"motor":{"left":0.5,"right":0.5},"d":1}' % seq)
        await asyncio.sleep(0)


async def handler(ws):
    if ws.request.path == "/bcast":
        members.add(ws)
        try:
            async for message in ws:
                if message == "start" and not pushing[0]:
                    pushing[0] = True
                    asyncio.get_running_loop().create_task(push())
                elif message == "stop":
                    pushing[0] = False
        finally:
            members.discard(ws)
        return
    async for message in ws:
        await ws.send(message)


async def main():
    async with serve(handler, arg("--host", "127.0.0.1"), int(arg("--port", "8765")),
                     compression=None, ping_interval=None, max_size=1 << 24, max_queue=None):
        print("websockets %s echo server" % websockets.__version__, flush=True)
        await asyncio.get_running_loop().create_future()


asyncio.run(main())
