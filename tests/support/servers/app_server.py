# A test application on the server package: every feature the tests need.
#   micropython tests/support/servers/app_server.py --port N
import sys

sys.path.insert(0, (__file__.rpartition("/")[0] or ".") + "/../../../lib")

import asyncio

from wsserver import Server

port = int(sys.argv[sys.argv.index("--port") + 1])
opt = {}
for name in ("max-clients", "max-message", "request-timeout-ms", "close-timeout-ms", "max-queue",
             "max-pending", "ping-interval-ms", "ping-timeout-ms"):
    flag = "--" + name
    if flag in sys.argv:
        opt[name.replace("-", "_")] = int(sys.argv[sys.argv.index(flag) + 1])
pad = "x" * (int(sys.argv[sys.argv.index("--feed-pad") + 1]) if "--feed-pad" in sys.argv else 60)
static = sys.argv[sys.argv.index("--static") + 1] if "--static" in sys.argv else None

server = Server(static_dir=static, **opt)


@server.websocket("/echo")
async def echo(ws):
    async for message in ws:
        await ws.send(message)


def token_required(request):
    if request.query.get("token") != "letmein":
        return 403, "token required"
    return None


@server.websocket("/private", accept=token_required)
async def private(ws):
    await ws.send("welcome")
    async for message in ws:
        pass


def who(request):
    # The accept hook's value is the connection's ws.data.
    name = request.query.get("name")
    if name is None:
        return [401, "name required"]
    if name == "anon":
        return True  # accepted, no data
    return {"name": name}


@server.websocket("/whoami", accept=who)
async def whoami(ws):
    await ws.send(repr(ws.data))
    async for message in ws:
        pass


@server.websocket("/chat", subprotocols=("chat.v2", "chat.v1"))
async def chat(ws):
    await ws.send(ws.subprotocol or "none")
    async for message in ws:
        pass


@server.websocket("/feed")
async def feed(ws):
    async for message in ws:
        pass


@server.websocket("/closer")
async def closer(ws):
    # Closes from the server side as soon as asked.
    async for message in ws:
        await ws.close(4000, "asked to")


@server.websocket("/crash")
async def crash(ws):
    async for message in ws:
        raise ValueError("handler bug")


@server.route("/upload", methods="POST, PUT", max_body=100000)
async def upload(request):
    # Hashes the body piece by piece; answers its length, sha256 and how
    # many pieces (and the largest) it came in.
    import hashlib
    from binascii import hexlify

    body = request.body
    h = hashlib.sha256()
    pieces = largest = 0
    while True:
        piece = await body.read()
        if not piece:
            break
        h.update(piece)
        pieces += 1
        largest = max(largest, len(piece))
    return "%s %d %d %d %d" % (hexlify(h.digest()).decode(), body.length, pieces, largest,
                               len(server.buf))


@server.route("/refuse", methods="POST", max_body=100000)
def refuse(request):
    # Refuses before reading any of the body (as a token check would).
    from wsserver.errors import HTTPError
    raise HTTPError(403, "refused before the body")


@server.route("/status")
def status(request):
    return "ok"


async def ticker():
    n = 0
    while True:
        n += 1
        server.broadcast('{"seq":%d,"pad":"%s"}' % (n, pad), "/feed")
        await asyncio.sleep_ms(5)


async def main():
    await server.start("127.0.0.1", port)
    await ticker()


asyncio.run(main())
