# The car's uplink (docs/protocol.md, "Uplink"): the car keeps one WebSocket
# open to a server of the user's own (no broker) and speaks its own protocol
# over it. It sends what a client of its /ws receives (hello first, then
# telemetry at uplink.telemetry_hz, the replies) and takes the client
# messages from the server. Imported only when config.json has `uplink`.
#
# The uplink is one more control client (car.remote.Remote: the token per
# message, the stale-command rule), with client id -1 (the fleet link is 0,
# /ws clients count from 1). When the connection ends, whatever it drove
# stops at once, as when a /ws driver leaves.
#
# Nothing here can delay the control loop or the local clients: the car's
# side only appends to a bounded queue (the oldest telemetry is dropped
# first); a sender task waits on the socket, nobody waits on it. That task
# runs while there is something to send and ends when the queue is empty
# (no task parked between texts, and no asyncio.Event: asyncio.event, a
# module a plain car never loads, would be ~0.5 KB more).
import json
from asyncio import create_task, sleep_ms
from random import getrandbits
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

from car import protocol
from car.remote import Remote
from wsclient.dialled import dial

_MAX_QUEUE = const(4)  # messages waiting for a slow server
_BACKOFF_MIN_MS = const(500)
_BACKOFF_MAX_MS = const(8000)
_OPEN_TIMEOUT_MS = const(5000)  # TCP + handshake together
# A quiet server is pinged after this long; no pong within _PONG_MS means
# the link is dead (a server or a WiFi that vanished without a FIN).
_QUIET_MS = const(10000)
_PONG_MS = const(5000)


def backoff_ms(failures):
    """Doubling per failed attempt from 0.5 s up to 8 s, each wait a random
    50-100 % of its step (the fleet link's session does the same), so cars
    that lost one server together do not come back in one burst."""
    full = min(_BACKOFF_MAX_MS, _BACKOFF_MIN_MS << min(failures - 1, 5))
    return full // 2 + (getrandbits(16) * (full - full // 2)) // 65536


class Link(Remote):
    id = -1
    over = "the uplink"

    def __init__(self, car, cfg, folder=""):
        """folder: the config file's folder, for a relative uplink.ca."""
        Remote.__init__(self, car)
        self.url = cfg["url"]
        # wss:// has uplink.ca (the config check asks for it); read on each
        # connect, so an unreadable one is named in the log and retried.
        self.ca = (cfg, folder) if self.url.startswith("wss:") else None
        self.headers = cfg["headers"]
        self.subprotocols = [cfg["subprotocol"]] if cfg["subprotocol"] else None
        self.period_ms = 1000 // cfg["telemetry_hz"]
        self.ws = None  # the open connection, or None while the server is away
        self.queue = []  # texts for the sender task
        self.sender = None  # the task sending the queue, while it has texts
        self.seq = 0  # the uplink's own telemetry count (no gaps for /ws clients)
        self.failures = 0  # connection attempts since the last success
        self.dropped = 0

    def send_nowait(self, text):
        """Queue a text for the server (telemetry, role changes);
        returns at once. Dropped while the server is away; when the queue is
        full the oldest telemetry goes first."""
        if self.ws is None:
            return
        queue = self.queue
        if len(queue) >= _MAX_QUEUE:
            victim = 0
            for i in range(len(queue)):
                if queue[i].startswith('{"type":"telemetry"'):
                    victim = i
                    break
            queue.pop(victim)
            self.dropped += 1
        queue.append(text)
        if self.sender is None:
            self.sender = create_task(self.send_queue(self.ws))

    def message(self, message):
        """The reply to one message from the server, or None."""
        msg = None
        if type(message) is str and len(message) <= protocol.MAX_TEXT:
            try:
                msg = json.loads(message)
            except ValueError:
                pass  # car.handle names the fault
        return self.act(message, msg)

    # --- tasks ----------------------------------------------------------

    async def run(self):
        create_task(self.telemetry_loop())
        while True:
            why = await self.serve_once()
            self.ws = None
            self.queue = []
            # Whatever the uplink drove stops now; after a reconnect only
            # fresh commands act.
            self.car.disconnected(self)
            self.failures += 1
            delay = backoff_ms(self.failures)
            print("uplink %s: %s; retrying in %d ms" % (self.url, why, delay))
            await sleep_ms(delay)

    async def serve_once(self):
        """One connection, from dialling to its end; returns why it ended."""
        try:
            ssl = None
            if self.ca:
                from car import broker_tls

                ssl = broker_tls.context(self.ca[0], self.ca[1], "uplink.ca")
            # Served by the car's own server code and buffer (wsclient/dialled.py).
            ws = await dial(self.car.server, self.url, self.subprotocols, self.headers, ssl, _OPEN_TIMEOUT_MS,
                            2 * protocol.MAX_TEXT)  # as the car's own /ws: longer messages close with 1009
        except Exception as e:  # HandshakeError, OSError (refused), ValueError
            return describe(e)
        self.failures = 0
        print("uplink: connected to %s%s" % (self.url, " (%s)" % ws.subprotocol if ws.subprotocol else ""))
        watch = None
        try:
            await ws.send(self.car.hello(self))  # first, as on /ws
            self.ws = ws  # telemetry and role changes from now on
            self.queue = []
            watch = create_task(self.watch(ws))
            while True:
                message = await ws.recv()
                if message is None:
                    break
                reply = self.message(message)
                if reply:
                    # Awaited, as /ws's handler does: a server that sends
                    # faster than it reads waits for its own answers (none
                    # is dropped), and only this task waits.
                    await ws.send(reply)
        except Exception as e:  # ConnectionClosed from a send, MemoryError
            ws.abort()  # the socket is closed whatever happened
            return describe(e)
        finally:
            if watch:
                watch.cancel()
            if self.sender:
                self.sender.cancel()
                self.sender = None
        if ws.close_code == 1006:
            return "connection lost (no close frame)"
        return "connection closed (%d%s)" % (ws.close_code, " " + ws.close_reason if ws.close_reason else "")

    async def send_queue(self, ws):
        # Started by send_nowait when no sender runs; ends with the queue
        # empty (or cancelled by serve_once when the connection ends).
        queue = self.queue
        try:
            while queue:
                await ws.send(queue.pop(0))
        except Exception:
            pass  # the reader sees the connection end
        self.sender = None

    async def watch(self, ws):
        # A server that vanished without closing TCP sends nothing ever
        # again; the deadman stops the car, this ends the connection: the
        # server's idle rule (ws.watch), pinged after _QUIET_MS of silence,
        # dropped _PONG_MS later when nothing came (the reader's recv() then
        # returns None). It wakes when one of those is due, not later.
        while ws.close_code is None:
            now = ticks_ms()
            ws.watch(now, _QUIET_MS, _PONG_MS)
            if ws.close_code is not None:
                print("uplink %s: no pong within %d ms" % (self.url, _PONG_MS))
                return
            await sleep_ms((_QUIET_MS + _PONG_MS if ws.pinged else _QUIET_MS) + 1 - ticks_diff(now, ws.last_seen))

    async def telemetry_loop(self):
        due = ticks_ms()
        while True:
            if self.ws is not None:
                self.seq += 1
                self.send_nowait(self.car.telemetry(ticks_ms(), self.seq))
            due = ticks_add(due, self.period_ms)
            wait = ticks_diff(due, ticks_ms())
            if wait < 0:
                due, wait = ticks_ms(), 0
            await sleep_ms(wait)

    def stop(self):
        """The app is exiting: close with 1001 (going away), best effort."""
        ws = self.ws
        if ws is not None:
            import asyncio

            try:
                asyncio.run(ws.close(1001, "car stopping"))
            except Exception:
                pass


def describe(e):
    name = type(e).__name__
    if name == "HandshakeError":
        return "handshake refused: " + e.message
    if isinstance(e, OSError):
        return "network error: %s" % (e,)
    return "%s: %s" % (name, str(e).strip())  # mbedTLS's verdicts come wrapped in newlines
