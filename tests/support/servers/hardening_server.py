# The real server (lib/wsserver) with every limit on the command line, for the
# hardening tests (dead peers, floods, MemoryError). Runs under MicroPython:
#   micropython tests/support/servers/hardening_server.py --port N [--max-message B]
#       [--max-clients N] [--max-pending N] [--ping-interval-ms MS] [--ping-timeout-ms MS]
# WebSocket "/" echoes; the text "heap" answers gc.mem_alloc() after gc.collect().
# "/alloc": a text "N" makes the handler allocate N bytes (a big allocation
# inside one connection, to provoke MemoryError under -X heapsize).
# GET /heap and GET /stats ("heap clients heads-pending") for the test to poll.
import sys

sys.path.insert(0, (__file__.rpartition("/")[0] or ".") + "/../../../lib")

import gc

from wsserver import Server


def arg(name, default):
    flag = "--" + name
    return int(sys.argv[sys.argv.index(flag) + 1]) if flag in sys.argv else default


def heap():
    gc.collect()
    return gc.mem_alloc()


server = Server(max_clients=arg("max-clients", 64), max_message=arg("max-message", 4096),
                max_pending=arg("max-pending", 8), request_timeout_ms=arg("request-timeout-ms", 5000),
                ping_interval_ms=arg("ping-interval-ms", 10000), ping_timeout_ms=arg("ping-timeout-ms", 5000))


@server.websocket("/")
async def echo(ws):
    async for message in ws:
        await ws.send(str(heap()) if message == "heap" else message)


@server.websocket("/alloc")
async def alloc(ws):
    async for message in ws:
        block = bytearray(int(message))
        await ws.send("allocated %d" % len(block))
        del block


@server.route("/heap")
def heap_route(request):
    return str(heap())


@server.route("/stats")
def stats(request):
    return "%d %d %d" % (heap(), len(server.clients), len(getattr(server, "_heads", ())))


print("hardening server on", arg("port", 0))
server.run("127.0.0.1", arg("port", 8765))
