# Echo server for conformance runs and benchmarks:
#   micropython tools/measure/echo_server.py --port N [--host H] [--max-message BYTES] [--bench]
#                                    [--tls CERT_DIR [--max-tls N]] [--unload-http]
# Text is echoed as text, binary as binary, at WebSocket path "/".
# --bench adds: GET /heap and the text "heap" on "/" answer gc.mem_alloc() after
# gc.collect(); the text "modules" on "/" the wsserver modules loaded; at "/bcast" the text "start" pushes ~80-byte JSON frames to every
# client there as fast as possible until "stop".
# --unload-http drops the HTTP side's code between requests (Server(unload_http=True),
# the default only where wsserver runs from .mpy files).
# --tls serves wss:// and https:// with CERT_DIR/cert.der and key.der (tools/board/cert.py).
import sys

# The server's receive buffer, allocated before the imports below load code
# into the heap: on a small heap they leave no free block of 4 KB.
BUFFER = bytearray(4096)

sys.path.insert(0, (__file__.rpartition("/")[0] or ".") + "/../../lib")

import asyncio
import gc

from wsserver import Server


def parse_args(argv):
    opts = {"host": "127.0.0.1", "port": 8765, "max-message": 65536, "max-clients": 64,
            "bench": False, "static": None, "debug": False, "unload-http": False, "tls": None, "max-tls": 3}
    i = 1
    while i < len(argv):
        name = argv[i].lstrip("-")
        if name in ("bench", "debug", "unload-http"):
            opts[name] = True
        elif name in opts:
            i += 1
            opts[name] = argv[i] if name in ("host", "static", "tls") else int(argv[i])
        else:
            raise SystemExit("unknown option " + argv[i])
        i += 1
    return opts


def heap():
    gc.collect()
    return gc.mem_alloc()


def main():
    opts = parse_args(sys.argv)
    server = Server(static_dir=opts["static"], max_clients=opts["max-clients"],
                    max_message=opts["max-message"], debug=opts["debug"],
                    buffer=BUFFER, max_queue=64, max_tls=opts["max-tls"])
    if opts["unload-http"]:
        server.unload_http = True
    ctx = None
    if opts["tls"]:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opts["tls"] + "/cert.der", opts["tls"] + "/key.der")
    bench = opts["bench"]

    @server.websocket("/")
    async def echo(ws):
        async for message in ws:
            if bench and message == "heap":
                await ws.send(str(heap()))
            elif bench and message == "modules":  # the server's own, loaded now
                await ws.send(" ".join(sorted(m for m in sys.modules if m.startswith("wsserver."))))
            else:
                await ws.send(message)

    if bench:
        pushing = [False]

        @server.route("/heap")
        def heap_route(request):
            return str(heap())

        async def push():
            seq = 0
            while pushing[0]:
                # A burst per turn of the event loop: the server writes each
                # client's burst with one system call.
                for _ in range(16):
                    seq += 1
                    server.broadcast('{"type":"telemetry","seq":%d,"motor":{"left":0.5,"right":0.5},"d":1}' % seq,
                                     "/bcast")
                await asyncio.sleep_ms(0)  # let the sockets drain

        @server.websocket("/bcast")
        async def bcast(ws):
            async for message in ws:
                if message == "start" and not pushing[0]:
                    pushing[0] = True
                    asyncio.create_task(push())
                elif message == "stop":
                    pushing[0] = False

    print("echo server on %s://%s:%d/" % ("wss" if ctx else "ws", opts["host"], opts["port"]))
    server.run(opts["host"], opts["port"], ssl=ctx)


main()
