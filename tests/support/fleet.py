"""Simulated cars with the fleet link, and a commanding MQTT client that
speaks the fleet topic contract (docs/protocol.md)."""
import asyncio
import json
import os
import time
import urllib.request

from support import ROOT, unavailable
from support.car import FAST_LIMITS
from support.mqtt import Client


def need_dashboard_packages():
    """The dashboard's MQTT.js is set-up (`make node-deps`, which make test
    runs), never installed by a test: skip without it, fail under CI."""
    if not os.path.exists(os.path.join(ROOT, "fleet", "node_modules", "mqtt", "package.json")):
        unavailable("no fleet/node_modules: make node-deps (needs npm)")


def car_config(tmp_path, car_id, broker_url, fleet=None, limits=None, access=None, hostname=None):
    cfg = {"limits": dict(FAST_LIMITS, **(limits or {})), "server": {"max_clients": 6},
           "hardware": {"mode": "sim", "min_duty": 0.0, "sim": {"noise_cm": 0.0}},
           "wifi": {"hostname": hostname or car_id},
           "fleet": dict({"url": broker_url, "id": car_id, "keepalive_s": 5}, **(fleet or {}))}
    if access:
        cfg["access"] = access
    path = tmp_path / ("%s.json" % car_id)
    path.write_text(json.dumps(cfg))
    return str(path)


def start_car(start_micropython, tmp_path, car_id, broker_url, **kw):
    return start_micropython("main.py", ["--config", car_config(tmp_path, car_id, broker_url, **kw)])


def now_ms():
    return time.monotonic() * 1000


class Commander(Client):
    """A fleet client: watches every car's status, talks to one car's cmd/reply."""

    def __init__(self, url, client_id="commander", **kw):
        super().__init__(url, client_id, [("tether/+/status", 1), ("tether/+/reply", 0),
                                          ("tether/+/telemetry", 0)], **kw)
        self.offsets = {}  # car id -> car uptime_ms minus our now_ms()

    def status(self, car_id):
        found = self.json_on("tether/%s/status" % car_id)
        return found[-1] if found else None

    def online(self):
        cars = {m[0].split("/")[1] for m in self.messages if m[0].endswith("/status")}
        return {car for car in cars if self.status(car).get("online")}

    def telemetry(self, car_id):
        return [(m[3], json.loads(m[1])) for m in self.on("tether/%s/telemetry" % car_id)]

    def replies(self, car_id):
        return self.json_on("tether/%s/reply" % car_id)

    def send(self, car_id, message):
        self.publish("tether/%s/cmd" % car_id, message)

    async def sync(self, car_id, timeout=5):
        """Learn the car's clock from a ping: offset = uptime - midpoint."""
        ident = "sync-%f" % time.monotonic()
        t0 = now_ms()
        self.send(car_id, {"type": "ping", "id": ident})
        pong = await self.wait_for_message("tether/%s/reply" % car_id,
                                           lambda m: isinstance(m, dict) and m.get("id") == ident, timeout)
        t1 = now_ms()
        self.offsets[car_id] = pong["uptime_ms"] - (t0 + t1) / 2
        return pong, t1 - t0

    def drive(self, car_id, throttle, steer=0.0, token=None, age_ms=0):
        msg = {"type": "drive", "throttle": throttle, "steer": steer,
               "at": int(now_ms() + self.offsets[car_id] - age_ms)}
        if token:
            msg["token"] = token
        self.send(car_id, msg)
        return time.monotonic()

    async def hold(self, car_id, throttle, seconds, every=0.1, **kw):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.drive(car_id, throttle, **kw)
            await asyncio.sleep(every)


def fleet_status(proc):
    with urllib.request.urlopen("http://127.0.0.1:%d/fleet" % proc.port, timeout=5) as r:
        return json.loads(r.read())


def wait_status(proc, predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = fleet_status(proc)
        if predicate(s):
            return s
        time.sleep(0.1)
    raise AssertionError("fleet status never matched; last %s; console:\n%s" % (s, proc.output()))
