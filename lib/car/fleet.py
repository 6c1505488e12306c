# The car's fleet link (docs/protocol.md, "Fleet link over MQTT"): the car
# dials out to an MQTT broker, announces itself on tether/<id>/status,
# publishes telemetry on tether/<id>/telemetry and takes the WebSocket
# protocol's client messages from tether/<id>/cmd, answering on
# tether/<id>/reply. Imported only when config.json has a `fleet` section.
#
# The link is one more client of the car's control, exactly like a WebSocket
# connection: car.handle() decides, so the driver lock, the deadman, the stop
# rules and the access token are the same. It has client id 0 (WebSocket
# clients count from 1). What the broker adds is delay, so a drive command
# carries `at`, the car's own uptime when it was sent (a sender learns the
# car's clock from a `ping` over the link: the pong carries `uptime_ms`);
# one older than limits.deadman_ms is refused as stale, because by then the
# deadman would have stopped the car anyway.
#
# Nothing here can delay the control loop: the session only queues (bounded,
# oldest telemetry dropped first) and its tasks wait on the socket, never the
# control loop on them. A broker that is slow, full or gone costs telemetry,
# not control.
import json
from asyncio import sleep_ms
from time import ticks_add, ticks_diff, ticks_ms

from car import VERSION, protocol
from car.access import equal
from mqtt.session import Session
from mqtt.transport import opener

OFFLINE = b'{"online": false}'


class Link:
    id = 0  # the control client id telemetry's `driver` shows for the link

    def __init__(self, car, cfg, base=""):
        """base: the config file's folder, for a relative fleet.ca."""
        self.car = car
        # Access.authorized(client) reads client.request.authorized: set per
        # message from the message's own "token" (a WebSocket client brings
        # it once, in the URL; over MQTT every command carries it).
        self.request = self
        self.authorized = False
        self.token = car.access.token if car.access else None
        self.base = base = "tether/" + cfg["id"] + "/"
        self.period_ms = 1000 // cfg["telemetry_hz"]
        self.max_age_ms = car.limits["deadman_ms"]
        self.seq = 0
        self.errors = 0  # commands refused (bad JSON, stale, ...), for tests and logs
        url = cfg["url"]
        ssl_context = None
        if url.startswith("mqtts:") or url.startswith("wss:"):
            from car import broker_tls  # only for a TLS broker
            ssl_context = broker_tls.context(cfg, base)
        # A WebSocket message may hold several MQTT packets: room for a few.
        open_transport = opener(url, ssl_context, ws_options={"max_message": 4096, "buffer_size": 1024})
        if ssl_context is not None:
            from mqtt.transport import split_url
            open_transport = broker_tls.checked(open_transport, split_url(url)[1])
        car.server.route("/fleet")(self.status)
        self.session = Session(
            open_transport,
            "tether-" + cfg["id"], cfg["keepalive_s"], cfg["username"], cfg["password"],
            will=(base + "status", OFFLINE, 1, True), subscriptions=[(base + "cmd", 0)], on_message=self.message,
            on_connect=self.connected, on_disconnect=self.lost, max_packet=2 * protocol.MAX_TEXT,
            # Retries at most ~8 s apart (4-8 s with jitter): a car is back
            # within 10 s of its broker's return, and 20 cars do not all
            # knock in the same second.
            backoff_max_ms=8000)

    def status(self, request):
        """GET /fleet: the link's state, and why it is not connected."""
        s = self.session
        return 200, json.dumps({"connected": s.connected, "error": s.error, "connects": s.connects}), \
            "application/json"

    # --- the session's callbacks (synchronous, in its reader task) -------

    def connected(self):
        car = self.car
        print("fleet: connected to the broker as", self.session.client_id)
        self.session.publish(self.base + "status", json.dumps({
            "online": True, "device": car.device, "firmware": VERSION,
            "simulated": bool(car.hw.simulated)}), qos=1, retain=True)

    def lost(self):
        # Whatever the link was driving stops now, as when a WebSocket
        # driver's connection closes; after a reconnect only fresh commands act.
        self.car.disconnected(self)

    def message(self, topic, payload, retain):
        reply = self.command(payload, retain)
        if reply:
            self.send_nowait(reply)

    def send_nowait(self, text):
        """What the car sends this client (replies, role changes) goes to
        tether/<id>/reply; dropped while the broker is away."""
        self.session.publish(self.base + "reply", text)

    # --- commands ---------------------------------------------------------

    def command(self, payload, retain):
        """The reply (JSON text) to one message from tether/<id>/cmd, or None."""
        car = self.car
        if retain:
            # A retained command was published at some unknown time before:
            # never acted on, whatever it says.
            return self.refuse("stale", None, "retained commands are ignored; publish cmd "
                               "with retain false")
        try:
            text = bytes(payload).decode()
            msg = json.loads(text)
        except (UnicodeError, ValueError):
            msg = None  # car.handle names the fault (not valid JSON, ...)
            text = payload if type(payload) is str else "\x00"  # not valid JSON either way
        kind = None
        if type(msg) is dict:
            kind = msg.get("type")
            token = msg.get("token")
            self.authorized = self.token is None or (type(token) is str and equal(token, self.token))
            if kind == "drive":
                stale = self.stale(msg.get("at"))
                if stale:
                    return stale
        reply = car.handle(self, text)
        if reply and kind == "ping" and '"pong"' in reply:
            # The car's clock for the sender's `at` (see above).
            reply = reply[:-1] + ', "uptime_ms": %d}' % car.uptime_ms(ticks_ms())
        elif reply and '"error"' in reply:
            self.errors += 1
        return reply

    def stale(self, at):
        if not protocol.is_number(at):
            return self.refuse("bad_field", "at", "at: missing or not a number; a drive over MQTT "
                               "carries the car's uptime_ms when it was sent (ping gives it)")
        age = self.car.uptime_ms(ticks_ms()) - at
        if age > self.max_age_ms:
            return self.refuse("stale", "at", "at: command is %d ms old (limit %d ms, the deadman); "
                               "not acted on" % (age, self.max_age_ms))
        if age < -self.max_age_ms:
            return self.refuse("stale", "at", "at: %d ms ahead of the car's clock; ping to learn "
                               "it again (the car may have restarted)" % -age)
        return None

    def refuse(self, code, field, message):
        self.errors += 1
        return protocol.error(code, field, message)

    # --- tasks ----------------------------------------------------------

    async def run(self):
        import asyncio

        asyncio.create_task(self.telemetry_loop())
        await self.session.run()

    async def telemetry_loop(self):
        due = ticks_ms()
        session = self.session
        topic = self.base + "telemetry"
        while True:
            if session.connected:
                self.seq += 1
                try:
                    session.publish(topic, self.car.telemetry(ticks_ms(), self.seq))
                except Exception as e:  # never the car's problem
                    print("fleet: telemetry:", e)
            due = ticks_add(due, self.period_ms)
            wait = ticks_diff(due, ticks_ms())
            if wait < 0:
                due, wait = ticks_ms(), 0
            await sleep_ms(wait)

    def stop(self):
        """A clean stop (the app is exiting): {"online": false} retained,
        then DISCONNECT. Best effort, in a loop of its own."""
        import asyncio

        try:
            asyncio.run(self.session.close(self.base + "status", OFFLINE))
        except Exception:
            pass
