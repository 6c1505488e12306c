# An MQTT 3.1.1 client session on asyncio, over any transport (transport.py:
# recv/send/close). It connects, keeps the link alive, and reconnects with
# exponential backoff and jitter, for as long as it runs.
#
# The caller is never blocked: publish() only puts the message in a bounded
# queue and returns; a writer task sends, started when there is something to
# send and ended when there is nothing left (no task parked on an
# asyncio.Event: asyncio.event, which a plain car never loads, is ~0.5 KB). A slow broker fills the queue and
# the oldest QoS 0 messages (telemetry) are dropped, never the caller delayed.
# QoS 0 messages published while offline are dropped (they would be stale);
# QoS 1 ones wait, and unacknowledged ones are sent again (DUP) after a
# reconnect.
import asyncio
from random import getrandbits

from mqtt import codec
from mqtt.codec import MQTTError, _drop, _fail, _load, _text

try:
    from asyncio import sleep_ms
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython (tests and tools use the same session)
    from wsserver.connection import ticks_diff, ticks_ms

    async def sleep_ms(ms):
        await asyncio.sleep(ms / 1000)


def describe(e):
    if isinstance(e, MQTTError):
        return str(e)
    if isinstance(e, asyncio.TimeoutError):
        return "timed out"
    if isinstance(e, OSError):  # refused, reset, TLS (certificate) failures
        return "network error: %s" % (e,)
    return "%s: %s" % (type(e).__name__, e)


class Session:
    def __init__(self, open_transport, client_id, keepalive_s=15, username=None, password=None,
                 will=None, subscriptions=None, on_message=None, on_connect=None,
                 on_disconnect=None, max_queue=8, max_packet=4096, connect_timeout_ms=5000,
                 backoff_min_ms=500, backoff_max_ms=30000, log=print, silent_ms=None):
        """will: (topic, payload, qos, retain) or None; subscriptions: list of
        (topic filter, qos), subscribed on every connect; on_message(topic,
        payload bytes, retain) is called synchronously, in the reader task.
        keepalive_s is what CONNECT announces (the broker drops us after 1.5 x
        it in silence); silent_ms is how long a silent broker is borne
        (default: the keepalive)."""
        self.open_transport = open_transport
        self.client_id = client_id
        self.keepalive_ms = silent_ms or keepalive_s * 1000
        self.keepalive_s = keepalive_s
        self.username = username
        self.password = password
        self.will = will
        self.subscriptions = subscriptions or []
        self.on_message = on_message
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.max_queue = max_queue
        self.max_packet = max_packet
        self.connect_timeout_ms = connect_timeout_ms
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.log = log
        self.queue = []  # [topic, payload, qos, retain] waiting to be sent
        self.urgent = []  # encoded control packets, sent before the queue
        self.inflight = {}  # packet id -> [topic, payload, qos, retain], QoS 1 not yet acked
        self.next_id = 0
        self.connected = False
        self.closing = False
        self.dropped = 0  # messages dropped: queue full, or QoS 0 while offline
        self.connects = 0
        self.error = None  # why the last connection ended (text)
        self.failures = 0  # connection attempts since the last CONNACK
        self.transport = None
        self.reader = self.writer = None  # this connection's reader and writer tasks
        self.over = False  # this connection is over (_end)
        self.last_rx = self.last_tx = ticks_ms()
        self.ping_sent = False

    # --- the caller's side: never waits ---------------------------------

    def publish(self, topic, payload, qos=0, retain=False):
        """Queue a message; returns at once. False if it was dropped."""
        codec.check_topic(topic)
        if not self.connected and not qos:
            self.dropped += 1
            return False
        queue = self.queue
        if len(queue) >= self.max_queue:
            # Drop the oldest QoS 0 message (telemetry); only when the queue
            # holds nothing else, the oldest message of all.
            victim = 0
            for i in range(len(queue)):
                if not queue[i][2]:
                    victim = i
                    break
            queue.pop(victim)
            self.dropped += 1
        queue.append([topic, payload, qos, retain])
        self._send_soon()
        return True

    async def close(self, topic=None, payload=None):
        """Publish a last retained message (QoS 1, if connected), send
        DISCONNECT (the broker then drops the will) and stop the session."""
        self.closing = True
        t = self.transport
        if t is not None and self.connected:
            try:
                if topic is not None:
                    await t.send(codec.publish(topic, payload, qos=0, retain=True))
                await t.send(codec.disconnect())
            except Exception:
                pass
        self._end(None)

    # --- the connection ------------------------------------------------

    async def run(self):
        """Connect, serve, reconnect; returns only after close()."""
        while not self.closing:
            try:
                await self._serve_once()
            except Exception as e:
                self.error = describe(e)
            self.connected = False
            t, self.transport = self.transport, None
            if t is not None:
                await t.close()
            if self.on_disconnect:
                self.on_disconnect()
            if self.closing:
                break
            self.failures += 1
            delay = self.backoff()
            self.log("mqtt %s: %s; reconnecting in %d ms" % (self.client_id, self.error, delay))
            await self._wait_ms(delay)

    def backoff(self):
        """Exponential, doubling per failed attempt up to backoff_max_ms, with
        jitter (a random 50-100 % of it) so a fleet that lost its broker
        together does not come back in one burst."""
        n = min(self.failures - 1, 16)
        full = min(self.backoff_max_ms, self.backoff_min_ms << n)
        return full // 2 + (getrandbits(16) * (full - full // 2)) // 65536

    async def _wait_ms(self, ms):
        # Sleep, but return early (within 50 ms) when close() is called.
        while ms > 0 and not self.closing:
            await sleep_ms(min(ms, 50))
            ms -= 50

    async def _serve_once(self):
        self.over = False
        self.error = None
        # The connect's code (dial.py: TCP, TLS, CONNECT, CONNACK, SUBSCRIBE)
        # is loaded for it and dropped after it; a TCP opener loads it first,
        # and the CONNECT uses that copy.
        try:
            self.transport = await asyncio.wait_for(self.open_transport(), self.connect_timeout_ms / 1000)
            parser, packets = await _load("dial", True).handshake(self)
        finally:
            _drop("dial")
        self.connected = True
        self.failures = 0
        self.connects += 1
        self.last_rx = self.last_tx = ticks_ms()
        self.ping_sent = False
        if self.on_connect:
            self.on_connect()
        for p in packets:
            self._handle(p)
        reader = self.reader = asyncio.create_task(self._reader(self.transport, parser))
        keepalive = asyncio.create_task(self._keepalive())
        self._send_soon()  # the SUBSCRIBE and what waited for the connection
        try:
            if not self.over:  # close() came during the connect
                await reader  # until the connection is over (_end)
        except asyncio.CancelledError:
            if not self.over:
                raise  # the session's own task was cancelled
        finally:
            keepalive.cancel()
            reader.cancel()
            if self.writer is not None:
                self.writer.cancel()
            self.reader = self.writer = None
            self.connected = False

    def _end(self, why):
        # This connection is over: its reader task (which _serve_once waits
        # for) is cancelled, unless it is the one ending it.
        if self.error is None:
            self.error = why
        self.over = True
        reader = self.reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()

    def _send_soon(self):
        # A writer task for what is queued, unless one runs (or no connection).
        if self.writer is None and self.connected and (self.urgent or self.queue):
            self.writer = asyncio.create_task(self._writer(self.transport))

    def new_id(self):
        self.next_id = self.next_id % 65535 + 1
        return self.next_id

    async def _reader(self, t, parser):
        data = b""  # first: an error the parser holds from CONNACK's read
        try:
            while True:
                for p in parser.feed(data):
                    self._handle(p)
                data = await t.recv()
                if not data:
                    raise _fail(35)  # broker closed the connection
                self.last_rx = ticks_ms()
        except Exception as e:
            self._end(describe(e))

    def _handle(self, p):
        kind = p.type
        self.ping_sent = False  # any packet shows the broker is alive
        if kind == codec.PUBLISH:
            if p.qos:
                self.urgent.append(codec.puback(p.packet_id))
                self._send_soon()
            if self.on_message:
                self.on_message(p.topic, p.payload, p.retain)
        elif kind == codec.PUBACK:
            self.inflight.pop(p.packet_id, None)
        elif kind == codec.SUBACK:
            if 0x80 in p.codes:
                self.log("mqtt %s: the broker refused a subscription (SUBACK 0x80)" % self.client_id)
        elif kind == codec.CONNACK:
            raise _fail(36)  # a second CONNACK

    async def _writer(self, t):
        # Started by _send_soon; ends when nothing is left to send.
        try:
            while True:
                if self.urgent:
                    wire = self.urgent.pop(0)
                elif self.queue:
                    topic, payload, qos, retain = item = self.queue.pop(0)
                    pid = None
                    if qos:
                        pid = self.new_id()
                        self.inflight[pid] = item
                        if len(self.inflight) > self.max_queue:  # never acked: bounded too
                            self.inflight.pop(min(self.inflight))
                            self.dropped += 1
                    wire = codec.publish(topic, payload, qos, retain, pid)
                else:
                    break
                await t.send(wire)
                self.last_tx = ticks_ms()
        except Exception as e:
            self._end(describe(e))
        self.writer = None

    async def _keepalive(self):
        # PINGREQ when nothing was received for half of silent_ms or nothing
        # sent for half the announced keepalive (the broker waits 1.5 x it
        # before it gives up on us); the link is dead when nothing at all
        # came back for silent_ms.
        period = self.keepalive_ms
        quiet_tx = self.keepalive_s * 500
        if not period:
            return
        while True:
            await sleep_ms(period // 4)
            now = ticks_ms()
            quiet = ticks_diff(now, self.last_rx)
            if quiet >= period:
                # no packet from the broker for %d ms (keepalive %d s)
                self._end(_text(37, quiet, period // 1000))  # fleet.keepalive_s, for the car
                return
            if not self.ping_sent and (quiet >= period // 2
                                       or ticks_diff(now, self.last_tx) >= quiet_tx):
                self.ping_sent = True
                self.urgent.append(codec.pingreq())
                self._send_soon()
