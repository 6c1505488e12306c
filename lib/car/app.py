# The car application: WebSocket handler, control loop, telemetry loop.
# Safety rules live here, in order of importance:
# - a `stop` from anyone latches: nothing drives until a `resume` (docs/protocol.md);
# - the driver's connection closing stops the motors at once (handler finally);
# - no drive command for deadman_ms stops them and releases control;
# - the control loop never awaits network I/O, so a slow client cannot delay it;
# - a drive command reaches the motors as soon as it is parsed (apply()), with
#   the ramp and guard for the time since the last motor update: the 20 ms
#   tick adds no latency;
# - any crash stops the motors (run()'s finally) before it propagates.
import asyncio
import gc
from micropython import const
from time import ticks_add, ticks_diff, ticks_ms, ticks_us

from wsserver.errors import HTTPError

from car import VERSION, drop, protocol
from car.control import Control
from car.drive import Drive

_TICK_MS = const(20)  # control loop: 50 Hz
# Distance is read every 3rd tick (60 ms): an HC-SR04 needs >= 60 ms between
# pings, and each read blocks for the echo (up to timeout_us), so reading it
# every tick would eat the loop's time on a real car.
_SENSE_EVERY = const(3)
_MAX_DT_MS = const(100)  # a stalled loop must not turn into one huge ramp step
# Constant tuples (`x in ("a", "b")`) are avoided in resident modules: each
# is an object that stays in the heap while the module is loaded, even when
# the code itself is in ROMFS (docs/memory.md).


# A function called with the car as serve() begins, before it listens; None on
# a car. tools/measure/heap_report.py's probe (tools/measure/probes/firmware.py)
# measures the built car through it.
on_serve = None


class Car:
    # The version an update over the air is installing (car/ota.py), else
    # None: nobody drives until the reboot. (`update` is one of the
    # firmware's built-in names: a new name would cost the qstr pool.)
    update = None

    def __init__(self, cfg, hw, server, watchdog=None, access=None, errors=None):
        # Only what is used after boot is kept: the rest of the config
        # (WiFi passwords, pins, ...) is freed once run() has started.
        self.limits = limits = cfg["limits"]
        self.device = cfg["wifi"]["hostname"]
        self.hw = hw
        self.server = server
        self.watchdog = watchdog
        self.access = access  # None: everyone may drive
        self.drive = Drive(limits["max_speed"], limits["slew"], limits["stop_distance_cm"])
        self.control = Control(limits["deadman_ms"])
        # Client id whose `stop` latched the car, None when not latched. An id, not
        # the connection: the latch outlives the client that set it.
        self.stopped_by = None
        self.light = self.horn = False
        self.horn_owner = None  # the horn stops when whoever sounded it leaves
        self.distance = None  # last reading, shared by control and telemetry
        self.seq = 0
        self.ticks_to_sense = 1  # the first tick reads the distance sensor
        self.last_motor_us = ticks_us()  # µs: two updates may fall in one ms
        # Uptime in whole seconds: up_s of them had passed at ticks_ms()
        # up_s_at, which moves up a second at a time. Not now - start: ticks
        # wrap every 2^30 ms on a board, so that difference goes negative after
        # 6.2 days. Small ints: no heap per tick.
        self.up_s = 0
        self.up_s_at = ticks_ms()
        self.failed = None
        self.room = hw.room() if hw.simulated else None
        self.links = []  # control clients that dial out (car.fleet, car.uplink), started by serve()
        # What was wrong in config.json at start-up, for every page's hello
        # (usually empty; the console printed them too).
        self.errors = errors or []

    # --- messages -------------------------------------------------------

    def hello(self, ws):
        limits = self.limits
        return protocol.hello(
            VERSION, self.device, ws.id,
            "driver" if self.control.is_driver(ws) else "viewer",
            {"max_speed": limits["max_speed"], "deadman_ms": limits["deadman_ms"],
             "telemetry_hz": limits["telemetry_hz"], "stop_distance_cm": limits["stop_distance_cm"]},
            bool(self.hw.simulated), self.room, self.errors)

    def handle(self, ws, text):
        """Act on one client message at once; returns the reply or None."""
        msg, err = protocol.parse(text)
        if err:
            return protocol.error(*err)
        kind = msg["type"]
        # These need the access token (when one is configured); `stop` and
        # `ping` never do.
        if (kind == "drive" or kind == "resume" or kind == "speed_limit" or kind == "actuator") \
                and self.access and not self.access.authorized(ws):
            return protocol.error(
                "forbidden", "token", "token: %s needs the access token; open the page as "
                "http://<car>/?token=..." % kind)
        control = self.control
        # Only the driver may drive or re-arm; with nobody driving, anyone may.
        other_drives = control.driver is not None and not control.is_driver(ws)
        if kind == "drive":
            if self.update:
                return protocol.error("updating", None, "update %s is being installed; the car "
                                      "restarts with it in a few seconds" % self.update)
            if other_drives:
                return self.not_driver()
            if self.stopped_by is not None:  # refused: not a deadman heartbeat either
                return protocol.error(
                    "stopped", None, "stopped by client %d; send {\"type\":\"resume\"} to drive "
                    "again" % self.stopped_by)
            was_driver = control.is_driver(ws)
            control.claim(ws)
            control.heartbeat(ticks_ms())
            self.drive.command(msg["throttle"], msg["steer"])
            self.apply()  # to the motors now, not on the next tick
            return None if was_driver else protocol.role("driver")
        if kind == "stop":
            self.stop_motors()  # anyone may stop, never refused
            # It latches, except for the driver letting go of its own
            # controls (latch: false), or anyone's latch: false while nobody
            # drives (nothing moves then). While somebody drives, another
            # client's stop always latches. The first stopper is named.
            if self.stopped_by is None and (msg.get("latch", True) or other_drives):
                self.stopped_by = ws.id
        elif kind == "resume":
            if other_drives:
                return self.not_driver()
            self.stopped_by = None
        elif kind == "actuator":
            self.actuate(ws, msg["name"], msg["value"])
        elif kind == "speed_limit":
            # The driver sets it; with nobody driving anyone may.
            if other_drives:
                return self.not_driver()
            self.drive.set_speed_limit(msg["value"])
        elif kind == "ping":
            return protocol.pong(msg.get("id"))
        return None

    def not_driver(self):
        return protocol.error(
            "not_driver", None, "client %d is driving; wait until it stops or disconnects"
            % self.control.driver_id())

    def actuate(self, ws, name, value):
        if name == "light":
            self.light = value
            self.hw.set_light(value)
        elif name == "horn":
            self.horn = value
            self.horn_owner = ws if value else None
            self.hw.set_horn(value)
        else:
            self.hw.set_pan(value)

    def stop_motors(self):
        """Immediate stop: no ramp, straight to the hardware."""
        self.drive.stop()
        self.hw.stop()

    def disconnected(self, ws):
        if self.control.release(ws) is not None:
            self.stop_motors()
        if self.horn_owner is ws:
            self.actuate(ws, "horn", False)

    # --- loops ----------------------------------------------------------

    def tick(self, now):
        """One control step. Synchronous: nothing here waits on a client."""
        self.hw.tick(now)
        if self.control.expired(now):
            former = self.control.release()
            self.stop_motors()
            former.send_nowait(protocol.role("viewer"))
        while ticks_diff(now, self.up_s_at) >= 1000:
            self.up_s_at = ticks_add(self.up_s_at, 1000)
            self.up_s += 1
        self.ticks_to_sense -= 1
        if self.ticks_to_sense == 0:
            self.ticks_to_sense = _SENSE_EVERY
            self.distance = self.hw.distance_cm()
        self.apply()
        if self.watchdog:
            self.watchdog.feed()

    def apply(self):
        """Ramp and guard the command for the time since the last motor
        update, and write the motors if that changes them. Called by every
        tick and by every drive command as it is parsed."""
        now = ticks_us()
        dt = ticks_diff(now, self.last_motor_us)
        if dt <= 0:
            return
        self.last_motor_us = now
        if dt > _MAX_DT_MS * 1000:
            dt = _MAX_DT_MS * 1000
        # The motors have the drive's output: they start stopped (run() and
        # stop_motors() stop them with it), and each change is written here.
        before = self.drive.output
        out = self.drive.step(dt / 1000, self.distance)
        if out != before:
            self.hw.set_motors(out[0], out[1])

    def uptime_ms(self, now):
        """ms since the app started (telemetry's uptime_ms; the fleet link's clock)."""
        return self.up_s * 1000 + ticks_diff(now, self.up_s_at)

    def telemetry(self, now, seq=None):
        # seq: a link with its own count (the fleet link) passes it, so the
        # WebSocket clients' seq has no gaps the link made.
        if seq is None:
            self.seq += 1
            seq = self.seq
        d = self.drive
        hw = self.hw
        return protocol.telemetry(
            seq=seq, uptime_ms=self.uptime_ms(now), motor=d.target,
            applied=hw.applied(), distance_cm=self.distance, battery_v=hw.battery_v(), rssi=hw.rssi(),
            heap_free=gc.mem_free(), heap_alloc=gc.mem_alloc(), driver=self.control.driver_id(),
            stopped_by=self.stopped_by, speed_limit=d.speed_limit, light=self.light, horn=self.horn,
            pose=hw.pose())

    async def control_loop(self):
        due = ticks_ms()
        while self.failed is None:
            now = ticks_ms()
            self.tick(now)
            due = ticks_add(due, _TICK_MS)
            wait = ticks_diff(due, ticks_ms())
            if wait < 0:  # fell behind: resynchronise rather than burst
                due, wait = ticks_ms(), 0
            await asyncio.sleep_ms(wait)
        raise self.failed

    async def telemetry_loop(self):
        period = 1000 // self.limits["telemetry_hz"]
        due = ticks_ms()
        try:
            while True:
                if self.server.clients:
                    # One string for everyone; broadcast never blocks and a
                    # slow client loses its oldest frames, not the newest.
                    try:
                        self.server.broadcast(self.telemetry(ticks_ms()), path="/ws")
                    except MemoryError:
                        # A client connecting at this moment (its request's
                        # code loading) can leave no room for one message:
                        # that one is skipped, a gap of one period on the
                        # pages, rather than the car stopped and reset for
                        # it. A heap that stays full fails the control tick,
                        # which stops the car.
                        pass
                due = ticks_add(due, period)
                wait = ticks_diff(due, ticks_ms())
                if wait < 0:
                    due, wait = ticks_ms(), 0
                await asyncio.sleep_ms(wait)
        except Exception as e:  # hand it to the control loop, which stops the car
            self.failed = e

    async def serve(self, host, port, tls=None, names=None):
        if on_serve:
            on_serve(self)
        await self.server.start(host, port, ssl=tls)
        for name in names or [host]:  # all addresses (0.0.0.0): the ones a phone can open
            print("Tether running at %s://%s:%d/" % ("https" if tls else "http", name, port))
        asyncio.create_task(self.telemetry_loop())
        for link in self.links:
            asyncio.create_task(link.run())
        await self.control_loop()


def attach(server, car):
    @server.websocket("/ws", accept=car.access.accept if car.access else None)
    async def car_socket(ws):
        try:
            await ws.send(car.hello(ws))
            async for text in ws:
                reply = car.handle(ws, text)
                if reply:
                    await ws.send(reply)
        finally:
            # Synchronous, before this task ends: a vanished driver's motors
            # stop now, not on the next control tick.
            car.disconnected(ws)

    # The HTTP API (docs/protocol.md): one small handler for three routes
    # (each name and string a plain car keeps costs heap). A stop is
    # answered here, never waiting on an import; status and updates by
    # car/rest.py, imported by the first such request.
    def handler(request):
        if request.path != "/api/stop":
            from car import rest
            return rest.handle(car, request)
        verdict = car.access.origin_ok(request) if car.access else None  # anyone may stop
        if verdict is not None:
            raise HTTPError(verdict[0], verdict[1])
        request.id = 0  # stands in for a client: the same code and latch as a WebSocket stop
        car.handle(request, '{"type":"stop"}')
        return [200, '{"stopped":true}', "application/json"]  # a list: built per call

    server.route("/api/status")(handler)
    server.route("/api/stop", methods="POST", max_body=256)(handler)
    # 413 past 4 MiB; the flash decides the rest.
    server.route("/api/update", methods="GET, HEAD, PUT", max_body=4 << 20, timeout_ms=120000)(handler)


def run(config_path="config.json", host="0.0.0.0", port=None, static_dir="web", watchdog=None):
    """Start the car and serve until a crash (which propagates, motors off).
    watchdog: optional factory, watchdog(timeout_ms) -> object with feed()
    (called every control tick; a new app on trial confirms itself through
    it, car/update.py)."""
    from car import boot

    try:
        car, port, tls, urls = boot.build(config_path, host, port, static_dir, watchdog)
    finally:
        boot = None
        # Start-up code, run once: car.boot (and car.lan, which it loads on
        # a computer) go now, and the heap they took with them.
        drop("boot")
        drop("lan")
    try:
        gc.collect()
        # Collect after a quarter of the free heap has been allocated, not
        # when it is all gone: telemetry and the control tick make ~40 KB/s
        # of garbage, and objects that outlive a late collection (the car's
        # floats) are left scattered across the top of the heap, where no
        # block of a few hundred bytes is then free (docs/memory.md: 64K runs
        # with it; without it, 62K failed).
        gc.threshold(max(2048, gc.mem_free() // 4))
        asyncio.run(car.serve(host, port, tls, urls))
    finally:
        car.hw.stop()
        for link in car.links:
            link.stop()  # fleet: {"online": false}; uplink: close 1001
