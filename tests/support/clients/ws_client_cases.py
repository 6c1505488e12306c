# WebSocket-client scenarios, the same code under MicroPython and CPython:
#   micropython tests/support/clients/ws_client_cases.py CASE URL [ARG...]   (cwd: the repo)
# Prints what happened, one fact per line, for tests/client/test_wsclient.py to check.
import sys

sys.path.insert(0, "lib")

import asyncio
import time

from wsclient import ConnectionClosed, HandshakeError, ProtocolError, connect
from wsclient.bytestream import open_byte_stream

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


def show(message):
    if isinstance(message, str):
        return "text %d %s" % (len(message), message[:40])
    if message is None:
        return "None"
    return "binary %d %s" % (len(message), bytes(message[:8]).hex())


def pattern(n):
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


async def case_echo(url):
    ws = await connect(url, max_message=200000)
    print("subprotocol", ws.subprotocol)
    sent = ["hello", b"\x00\xffbin", "", "é" * 5000, pattern(70000), "x" * 9000]
    for message in sent:
        await ws.send(message)
        reply = await ws.recv()
        same = reply == message if isinstance(message, str) else bytes(reply) == message
        print("echo", show(message).split(" ")[0], len(message), "same" if same else "DIFFERENT",
              type(reply).__name__ == type(message).__name__ or (not isinstance(message, str) and not isinstance(reply, str)))
    await ws.close()
    print("closed", ws.close_code)


async def case_open(url, *subprotocols):
    try:
        ws = await connect(url, subprotocols=list(subprotocols) or None, open_timeout_ms=5000)
    except HandshakeError as e:
        print("error", e.status)
        print("message", e)
        return
    print("open", ws.subprotocol)
    await ws.close()
    print("closed", ws.close_code)


async def case_dial_then_connect(url):
    # dialled.dial() after client.py is loaded (this file imports it), then
    # connect(): each refusal is the HandshakeError callers catch.
    from wsclient.dialled import dial

    for how in ("dial", "connect", "dial"):
        try:
            await (dial(None, url) if how == "dial" else connect(url))
            print(how, "opened")
        except HandshakeError as e:
            print(how, "HandshakeError", e.status)
        except Exception as e:  # the class of a second copy of common.py is not the one caught
            print(how, "other", type(e).__name__)


async def case_take(url, count):
    # The first `count` messages, then our close.
    ws = await connect(url)
    for _ in range(int(count)):
        print("message", show(await asyncio.wait_for(ws.recv(), 10)))
    await ws.close()
    print("closed", ws.close_code)


async def case_headers(url, value):
    ws = await connect(url, headers={"Authorization": value, "X-Tether-Test": "1"})
    print("first", show(await ws.recv()))
    await ws.close()


async def case_deadline(url, ms):
    start = ticks_ms()
    try:
        await connect(url, open_timeout_ms=int(ms))
        print("open")
    except HandshakeError as e:
        print("error", e.status)
        print("message", e)
    except OSError as e:
        print("oserror", e.args[0])
    print("elapsed", ticks_diff(ticks_ms(), start))


async def case_ping(url):
    ws = await connect(url)
    await ws.ping(b"tether")
    print("pong")
    # Another reader: ping() while recv() waits in a second task.
    reader = asyncio.create_task(ws.recv())
    await asyncio.sleep(0.05)
    await ws.ping()
    print("pong while reading")
    await ws.send("after pings")
    print("reader", show(await reader))
    await ws.close()
    print("closed", ws.close_code)


async def case_idle(url, seconds):
    # Sit in recv() longer than the server's ping interval + timeout: the
    # pongs recv() sends keep the connection open. wait_for cancels recv().
    ws = await connect(url)
    try:
        await asyncio.wait_for(ws.recv(), float(seconds))
        print("unexpected message")
    except asyncio.TimeoutError:
        print("idle", seconds)
    await ws.send("still here")
    print("echo", show(await asyncio.wait_for(ws.recv(), 5)))
    await ws.close()
    print("closed", ws.close_code)


async def case_close(url, code):
    ws = await connect(url)
    await ws.close(int(code), "client bye")
    print("closed", ws.close_code)


async def case_close_while_reading(url, code):
    # close() from one task while another waits in recv(): the reader sees the
    # server's reply and returns None; close() returns once TCP is closed.
    ws = await connect(url)
    reader = asyncio.create_task(ws.recv())
    await asyncio.sleep(0.05)
    start = ticks_ms()
    await ws.close(int(code), "client bye")
    print("reader", show(await reader))
    print("closed", ws.close_code, "fast" if ticks_diff(ticks_ms(), start) < 1500 else "slow")


async def case_close_timeout(url, ms):
    ws = await connect(url, close_timeout_ms=int(ms))
    start = ticks_ms()
    await ws.close()
    took = ticks_diff(ticks_ms(), start)
    print("closed", ws.close_code, "within bound" if int(ms) - 50 <= took < int(ms) + 700 else "took %d ms" % took)


async def case_recv(url, max_message, *to_send):
    # Send each argument, then print every message until the connection closes.
    ws = await connect(url, max_message=int(max_message))
    for message in to_send:
        await ws.send(message)
    while True:
        message = await asyncio.wait_for(ws.recv(), 10)
        print("message", show(message))
        if message is None:
            break
    print("closed", ws.close_code, ws.close_reason)
    try:
        await ws.send("late")
        print("sent after close")
    except ConnectionClosed as e:
        print("send after close raises ConnectionClosed", e.code)


async def case_bytestream(url, size=20000):
    size = int(size)
    stream = await open_byte_stream(url)
    print("subprotocol", stream.ws.subprotocol)
    await stream.send(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
    print("recv", show(await stream.recv()))
    await stream.send(pattern(size))
    got = bytearray()
    while len(got) < size:
        got += await stream.recv()
    print("recv big", len(got), bytes(got) == pattern(size))
    await stream.close()
    print("after close", repr(await stream.recv()))
    try:
        await stream.send(b"x")
        print("sent after close")
    except OSError as e:
        print("send after close raises OSError", e)


async def case_bytestream_text(url):
    stream = await open_byte_stream(url)
    try:
        print("recv", show(await stream.recv()))
    except ProtocolError as e:
        print("ProtocolError", e.code, e.reason)


async def case_wss(url, cafile, server_hostname):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    with open(cafile, "rb") as f:
        ctx.load_verify_locations(cadata=f.read())  # DER: both ports take it as cadata
    ws = await connect(url, ssl=ctx, server_hostname=server_hostname, max_message=200000)
    await ws.send("over tls")
    print("echo", show(await ws.recv()))
    await ws.send(pattern(30000))
    print("echo big", bytes(await ws.recv()) == pattern(30000))
    await ws.close()
    print("closed", ws.close_code)


async def case_bad_url(url):
    try:
        await connect(url)
        print("open")
    except ValueError as e:
        print("ValueError", e)


async def case_fragment(url, fragment):
    # Messages sent with send(message, fragment): to /echo (reassembled by the
    # server and sent back whole), then to /fragsizes (which answers with the
    # payload size of each frame it got, then the joined payload as binary).
    fragment = int(fragment)
    base = url[:url.rfind("/")]
    sent = ["é" * 3000, pattern(2500), "short", "x" * fragment]
    ws = await connect(base + "/echo", max_message=20000)
    for message in sent:
        await ws.send(message, fragment)
        reply = await ws.recv()
        same = reply == message if isinstance(message, str) else bytes(reply) == message
        print("echo", type(reply).__name__ if isinstance(reply, str) else "bytes",
              "same" if same else "DIFFERENT")
    await ws.close()
    ws = await connect(base + "/fragsizes", max_message=20000)
    for message in sent:
        await ws.send(message, fragment)
        sizes = await ws.recv()
        joined = bytes(await ws.recv())
        raw = message.encode() if isinstance(message, str) else message
        print("frames", sizes, "same" if joined == raw else "DIFFERENT")
    await ws.close()
    print("closed", ws.close_code)


async def main():
    case = globals()["case_" + sys.argv[1]]
    await case(*sys.argv[2:])


asyncio.run(main())
