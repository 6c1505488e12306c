# An MQTT 3.1.1 client session on asyncio, over any transport (transport.py:
# recv/send/close). It connects, keeps the link alive, and reconnects with
# exponential backoff and jitter, for as long as it runs.
#
# The caller is never blocked: publish() only puts the message in a bounded
# queue and returns; one writer task sends. A slow broker fills the queue and
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
        self.wake = asyncio.Event()  # something to send
        self.ended = asyncio.Event()  # this connection is over
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
        self.wake.set()
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
        self.ended.set()

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
            self.ended.clear()
            await self._wait_ms(delay)

    def backoff(self):
        """Exponential, doubling per failed attempt up to backoff_max_ms, with
        jitter (a random 50-100 % of it) so a fleet that lost its broker
        together does not come back in one burst."""
        n = min(self.failures - 1, 16)
        full = min(self.backoff_max_ms, self.backoff_min_ms << n)
        return full // 2 + (getrandbits(16) * (full - full // 2)) // 65536

    async def _wait_ms(self, ms):
        # Sleep, but return early when close() is called.
        try:
            await asyncio.wait_for(self.ended.wait(), ms / 1000)
        except asyncio.TimeoutError:
            pass

    async def _serve_once(self):
        self.ended.clear()
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
        t = self.transport
        tasks = [asyncio.create_task(self._reader(t, parser)),
                 asyncio.create_task(self._writer(t)),
                 asyncio.create_task(self._keepalive())]
        try:
            await self.ended.wait()
        finally:
            for task in tasks:
                task.cancel()
            self.connected = False

    def _end(self, why):
        if self.error is None:
            self.error = why
        self.ended.set()

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
                self.wake.set()
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
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                await t.send(wire)
                self.last_tx = ticks_ms()
        except Exception as e:
            self._end(describe(e))

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
                self.wake.set()
