# The car's fleet link (docs/protocol.md, "Fleet link over MQTT"): the car
# dials out to an MQTT broker, announces itself on tether/<id>/status,
# publishes telemetry on tether/<id>/telemetry and takes the WebSocket
# protocol's client messages from tether/<id>/cmd, answering on
# tether/<id>/reply. Imported only when config.json has a `fleet` section.
#
# The link is one more client of the car's control, with client id 0
# (WebSocket clients count from 1); car.remote.Remote holds what every link
# shares: the token per message and the stale-command rule (`at`).
#
# Nothing here can delay the control loop: the session only queues (bounded,
# oldest telemetry dropped first) and its tasks wait on the socket, never the
# control loop on them. A broker that is slow, full or gone costs telemetry,
# not control.
import json
from asyncio import sleep_ms
from time import ticks_add, ticks_diff, ticks_ms

from car import VERSION, protocol
from car.remote import Remote
from mqtt.session import Session
from mqtt.transport import opener

OFFLINE = b'{"online": false}'


class Link(Remote):
    id = 0  # the control client id telemetry's `driver` shows for the link
    over = "MQTT"

    def __init__(self, car, cfg, folder=""):
        """folder: the config file's folder, for a relative fleet.ca."""
        Remote.__init__(self, car)
        self.base = base = "tether/" + cfg["id"] + "/"
        self.period_ms = 1000 // cfg["telemetry_hz"]
        self.seq = 0
        url = cfg["url"]
        ssl_context = None
        if url.startswith("mqtts:") or url.startswith("wss:"):
            from car import broker_tls  # only for a TLS broker
            ssl_context = broker_tls.context(cfg, folder)
        # A WebSocket message may hold several MQTT packets: room for a few.
        # Over WebSocket the car's own server code serves the connection
        # (wsclient/dialled.py, as the uplink's), reading into its buffer.
        open_transport = opener(url, ssl_context, ws_options={"max_message": 4096, "server": car.server})
        if ssl_context is not None:
            from mqtt.codec import _load
            open_transport = broker_tls.checked(open_transport, _load("dial").split_url(url)[1])
        car.server.route("/fleet")(self.status)
        self.session = Session(
            open_transport,
            # CONNECT announces half of fleet.keepalive_s: a broker that
            # checks keepalives coarsely (mosquitto 2.0.11 looks once every
            # 6 s, in whole seconds) has the other 0.75 x keepalive_s for it,
            # so a silent car is offline within 1.5 x keepalive_s (for
            # keepalive_s >= 9 on mosquitto). The car bears a silent broker
            # for the whole keepalive_s.
            "tether-" + cfg["id"], cfg["keepalive_s"] // 2, cfg["username"], cfg["password"],
            silent_ms=cfg["keepalive_s"] * 1000,
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
        if retain:
            # A retained command was published at some unknown time before:
            # never acted on, whatever it says.
            return self.refuse("stale", 3)
        try:
            text = bytes(payload).decode()
            msg = json.loads(text)
        except (UnicodeError, ValueError):
            msg = None  # car.handle names the fault (not valid JSON, ...)
            text = payload if type(payload) is str else "\x00"  # not valid JSON either way
        return self.act(text, msg)

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
