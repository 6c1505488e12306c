"""Benchmark comparison: the same endpoints as tools/measure/echo_server.py --bench, on microdot 2.7.

    MICROPYPATH=.frozen:<dir holding the microdot package> micropython \\
        tools/measure/bench_servers/microdot_echo.py --port N [--host H] [--static DIR]

- WebSocket `/`: echo; the text message `heap` is answered with gc.mem_alloc() after gc.collect();
- GET /heap: the same number over HTTP;
- WebSocket `/bcast`: text `start` starts pushing ~80-byte JSON text frames as fast as possible
  to every client on /bcast, `stop` stops;
- GET /<file>: static files from --static (default web/).
"""
import asyncio
import gc
import sys

from microdot import Microdot, send_file
from microdot.websocket import with_websocket


def arg(name, default):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


STATIC = arg("--static", "web")
app = Microdot()
bcast_clients = []
pushing = False


def heap_text():
    gc.collect()
    return str(gc.mem_alloc())


def telemetry(seq):
    # 80 bytes, fixed width so every frame costs the same.
    head = '{"type":"telemetry","seq":%08d,"pad":"' % seq
    return head + "x" * (78 - len(head)) + '"}'


@app.route("/")
@with_websocket
async def echo(request, ws):
    while True:
        message = await ws.receive()
        if message == "heap":
            message = heap_text()
        await ws.send(message)


async def push():
    global pushing
    seq = 0
    while pushing and bcast_clients:
        message = telemetry(seq)
        seq += 1
        for ws in bcast_clients:
            try:
                await ws.send(message)
            except OSError:
                if ws in bcast_clients:
                    bcast_clients.remove(ws)
                break
    pushing = False


@app.route("/bcast")
@with_websocket
async def bcast(request, ws):
    global pushing
    bcast_clients.append(ws)
    try:
        while True:
            message = await ws.receive()
            if message == "start" and not pushing:
                pushing = True
                asyncio.create_task(push())
            elif message == "stop":
                pushing = False
    finally:
        if ws in bcast_clients:
            bcast_clients.remove(ws)


@app.get("/heap")
async def heap(request):
    return heap_text()


@app.get("/<path:path>")
async def static(request, path):
    if ".." in path:
        return "Not found", 404
    return send_file(STATIC + "/" + path, max_age=0)


app.run(host=arg("--host", "127.0.0.1"), port=int(arg("--port", "5000")))
