"""Benchmark ceiling: plain MicroPython asyncio TCP echo, no WebSocket framing.

    micropython tools/measure/bench_servers/raw_tcp_echo.py --port N [--host H] [--static DIR]

Same jobs as the WebSocket echo servers, minus the protocol:
- any connection echoes every byte; the exact message b"heap\\n" is answered with
  gc.mem_alloc() after gc.collect() (decimal, newline-terminated) instead;
- a connection whose first bytes are b"bcast\\n" joins the fan-out group: a line
  b"start\\n" starts pushing 80-byte newline-terminated lines to every member as
  fast as possible, b"stop\\n" stops;
- "GET /heap" and "GET /<file>" (from --static) get a minimal HTTP/1.0 answer.
"""
import asyncio
import gc
import sys

LINE = b'{"type":"telemetry","seq":%08d,"pad":"' 
bcast_clients = []
pushing = False


def arg(name, default):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


STATIC = arg("--static", "web")


def telemetry_line(seq):
    # 79 bytes + b"\n" = 80 bytes, fixed width so every line costs the same.
    head = LINE % seq
    return head + b"x" * (77 - len(head)) + b'"}\n'


async def push():
    global pushing
    seq = 0
    while pushing and bcast_clients:
        line = telemetry_line(seq)
        seq += 1
        for w in bcast_clients:
            try:
                w.write(line)
                await w.drain()
            except OSError:
                if w in bcast_clients:
                    bcast_clients.remove(w)
                break
    pushing = False


async def serve_http(first, reader, writer):
    path = first.split(b" ")[1]
    if path == b"/heap":
        gc.collect()
        body = b"%d" % gc.mem_alloc()
    else:
        try:
            with open(STATIC + path.decode(), "rb") as f:
                body = f.read()
        except OSError:
            writer.write(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
    writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
    writer.write(body)
    await writer.drain()


async def bcast_member(data, reader, writer):
    global pushing
    bcast_clients.append(writer)
    try:
        while True:
            for line in data.split(b"\n"):
                if line == b"start" and not pushing:
                    pushing = True
                    asyncio.create_task(push())
                elif line == b"stop":
                    pushing = False
            data = await reader.read(256)
            if not data:
                break
    finally:
        if writer in bcast_clients:
            bcast_clients.remove(writer)


async def handle(reader, writer):
    try:
        data = await reader.read(4096)
        if data.startswith(b"GET "):
            await serve_http(data, reader, writer)
        elif data.startswith(b"bcast\n"):
            await bcast_member(data[6:], reader, writer)
        else:
            while data:
                if data == b"heap\n":
                    gc.collect()
                    data = b"%d\n" % gc.mem_alloc()
                writer.write(data)
                await writer.drain()
                data = await reader.read(4096)
    except OSError:
        pass
    try:
        await writer.aclose()
    except OSError:
        pass


async def main():
    server = await asyncio.start_server(handle, arg("--host", "127.0.0.1"), int(arg("--port", "8080")))
    print("raw_tcp_echo listening")
    await server.wait_closed()


asyncio.run(main())
