#!/usr/bin/env python3
"""A reference uplink server (docs/protocol.md, "Uplink"): cars configured with
`uplink.url` pointing here connect; it prints each car, its hello, its telemetry
and its replies, and drives one of them from the keyboard.

    python tools/uplink/uplink_server.py [--host 127.0.0.1] [--port 8765] [--path /car]
                                  [--bearer TOKEN] [--subprotocol NAME]
                                  [--cert CERT.pem --key KEY.pem]

With --cert and --key it serves wss:// (the car checks the certificate against
its uplink.ca).

At a terminal: w/s throttle up/down, a/d steer left/right (steps of 0.25), space
stop, l light, p ping, 1-9 pick a car, q quit. While throttle or steer is not 0 it
sends `drive` every 100 ms (the deadman heartbeat), each stamped with `at` on the
car's clock, learnt from a `ping` when the car connects.

With stdin not a terminal (a script, the tests) it reads commands, one a line:
    drive THROTTLE STEER   start the heartbeat with these values
    stop                   end the heartbeat and send stop
    send TEXT              send TEXT as it is (a text message)
    binary HEX             send these bytes as a binary message
    ping                   learn the car's clock again
    token TOKEN            put "token": TOKEN into drive/actuator (access.token)
    car N                  talk to car N (default: the latest to connect)
    quit

Output, one line per event: `listening on ws://...`, `refused ...: 401 ...`,
`car N connected ...`, `car N hello {json}`, `car N telemetry {json}`,
`car N reply {json}`, `car N gone (code reason)`.
tools/uplink/uplink_server.js is the same server on Node.js and the `ws` package.
"""
import argparse
import asyncio
import json
import os
import sys
import time
from http import HTTPStatus

from websockets.asyncio.server import serve

HEARTBEAT_S = 0.1


def now_ms():
    return time.monotonic() * 1000


def say(*words):
    print(*words, flush=True)


class Car:
    def __init__(self, number, ws):
        self.number = number
        self.ws = ws
        self.offset = None  # car uptime_ms - our now_ms()
        self.ping_sent = {}  # ping id -> now_ms() when sent

    async def send(self, message):
        await self.ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))

    async def ping(self):
        ident = "sync-%d" % len(self.ping_sent)
        self.ping_sent[ident] = now_ms()
        await self.send({"type": "ping", "id": ident})


class UplinkServer:
    def __init__(self, args):
        self.args = args
        self.cars = {}  # number -> Car
        self.count = 0
        self.selected = None
        self.throttle = self.steer = 0.0
        self.token = None
        self.light = False

    # --- the handshake ---------------------------------------------------

    def process_request(self, connection, request):
        args = self.args
        peer = "%s:%d" % connection.remote_address[:2]
        if request.path.split("?")[0] != args.path:
            say("refused %s: 404 (path %s, this server serves %s)" % (peer, request.path, args.path))
            return connection.respond(HTTPStatus.NOT_FOUND, "no uplink at this path\n")
        if args.bearer and request.headers.get("Authorization") != "Bearer " + args.bearer:
            say("refused %s: 401 (no or wrong Authorization: Bearer ...)" % peer)
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Authorization: Bearer <token> needed\n")
        return None

    def select_subprotocol(self, connection, offered):
        # The one we speak if the car offered it, else none: a car that asked
        # for another one then refuses the handshake itself (and says why).
        want = self.args.subprotocol
        return want if want and want in offered else None

    # --- a connected car -------------------------------------------------

    async def handle(self, ws):
        self.count += 1
        car = Car(self.count, ws)
        self.cars[car.number] = car
        self.selected = car.number
        say("car %d connected from %s:%d (subprotocol %s)" % (car.number, ws.remote_address[0],
                                                              ws.remote_address[1], ws.subprotocol))
        try:
            async for message in ws:
                self.received(car, message)
        except Exception as e:  # a reset connection, a protocol error
            say("car %d error %s" % (car.number, e))
        finally:
            del self.cars[car.number]
            say("car %d gone (%s %s)" % (car.number, ws.close_code, ws.close_reason or ""))

    def received(self, car, message):
        if isinstance(message, bytes):
            say("car %d binary %s" % (car.number, message.hex()))
            return
        try:
            msg = json.loads(message)
            kind = msg.get("type")
        except (ValueError, AttributeError):
            say("car %d text %s" % (car.number, message))
            return
        if kind == "hello":
            say("car %d hello %s" % (car.number, message))
            asyncio.ensure_future(car.ping())  # learn its clock for `at`
        elif kind == "telemetry":
            say("car %d telemetry %s" % (car.number, message))
        else:
            if kind == "pong" and msg.get("id") in car.ping_sent and "uptime_ms" in msg:
                t0 = car.ping_sent.pop(msg["id"])
                car.offset = msg["uptime_ms"] - (t0 + now_ms()) / 2
            say("car %d reply %s" % (car.number, message))

    # --- commands ----------------------------------------------------------

    def car(self):
        return self.cars.get(self.selected)

    async def heartbeat(self):
        while True:
            car = self.car()
            if car and car.offset is not None and (self.throttle or self.steer):
                await self.drive(car)
            await asyncio.sleep(HEARTBEAT_S)

    async def drive(self, car):
        msg = {"type": "drive", "throttle": self.throttle, "steer": self.steer,
               "at": int(now_ms() + car.offset)}
        if self.token:
            msg["token"] = self.token
        try:
            await car.send(msg)
        except Exception:
            pass  # gone: handle() says so

    async def command(self, line):
        words = line.split(None, 1)
        if not words:
            return True
        verb, rest = words[0], (words[1] if len(words) > 1 else "")
        car = self.car()
        try:
            if verb == "quit":
                return False
            if verb == "car":
                self.selected = int(rest)
                say("talking to car %s" % rest)
            elif verb == "token":
                self.token = rest or None
            elif verb == "drive":
                throttle, steer = rest.split()
                self.throttle, self.steer = float(throttle), float(steer)
                if car and car.offset is not None:
                    await self.drive(car)  # at once, not on the next beat
            elif not car:
                say("no car connected")
            elif verb == "stop":
                self.throttle = self.steer = 0.0
                await car.send({"type": "stop"})
            elif verb == "send":
                await car.send(rest)
            elif verb == "binary":
                await car.send(bytes.fromhex(rest))
            elif verb == "ping":
                await car.ping()
            elif verb == "light":
                self.light = not self.light
                msg = {"type": "actuator", "name": "light", "value": self.light}
                if self.token:
                    msg["token"] = self.token
                await car.send(msg)
            else:
                say("unknown command %r" % verb)
        except Exception as e:
            say("command %r failed: %s" % (line, e))
        return True

    async def keys(self):
        """Commands from stdin: lines, or single keys at a terminal."""
        loop = asyncio.get_running_loop()
        if not sys.stdin.isatty():
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line or not await self.command(line.strip()):
                    return
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        keys = asyncio.Queue()
        loop.add_reader(fd, lambda: keys.put_nowait(os.read(fd, 1).decode(errors="replace")))
        say("keys: w/s throttle, a/d steer, space stop, l light, p ping, 1-9 car, q quit")
        try:
            while True:
                key = await keys.get()
                if key == "q":
                    return
                step = {"w": (0.25, 0), "s": (-0.25, 0), "a": (0, -0.25), "d": (0, 0.25)}.get(key)
                if step:
                    t = max(-1.0, min(1.0, self.throttle + step[0]))
                    s = max(-1.0, min(1.0, self.steer + step[1]))
                    await self.command("drive %s %s" % (t, s))
                    say("throttle %.2f steer %.2f" % (t, s))
                elif key == " ":
                    await self.command("stop")
                elif key == "l":
                    await self.command("light")
                elif key == "p":
                    await self.command("ping")
                elif key.isdigit():
                    await self.command("car " + key)
        finally:
            loop.remove_reader(fd)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--path", default="/car")
    parser.add_argument("--bearer", help="refuse (401) a car without Authorization: Bearer <this>")
    parser.add_argument("--subprotocol", help="the subprotocol this server speaks")
    parser.add_argument("--cert", help="serve wss://: this certificate (PEM, its chain after it)")
    parser.add_argument("--key", help="the certificate's private key (PEM)")
    args = parser.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    tls = None
    if args.cert:
        import ssl

        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)
    server = UplinkServer(args)
    async with serve(server.handle, args.host, args.port, process_request=server.process_request,
                     select_subprotocol=server.select_subprotocol,
                     subprotocols=[args.subprotocol] if args.subprotocol else None,
                     max_size=4096, ssl=tls) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        say("listening on %s://%s:%d%s" % ("wss" if tls else "ws", args.host, port, args.path))
        beat = asyncio.ensure_future(server.heartbeat())
        await server.keys()
        beat.cancel()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
