"""A real mosquitto for the tests (Debian's /usr/sbin/mosquitto), on a free
loopback port, and an MQTT client for the test side built on lib/mqtt's
session (CPython)."""
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time

from support import ROOT
from support.processes import free_port, kill, wait_listening

sys.path.insert(0, os.path.join(ROOT, "lib"))
from mqtt.session import Session  # noqa: E402
from mqtt.transport import opener  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
TEST_CONF = os.path.join(ROOT, "tools", "fleet", "mosquitto-test.conf")


def have_mosquitto():
    return os.path.exists(MOSQUITTO)


def have_wsclient():
    return os.path.exists(os.path.join(ROOT, "lib", "wsclient", "bytestream.py"))


IN_NETNS = os.environ.get("TETHER_IN_NETNS") == "1"


def can_unshare():
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_in_netns(test_path, timeout=240):
    """Run a pytest file inside a private network namespace (loopback only:
    nothing a listener there binds is reachable from outside)."""
    env = dict(os.environ, TETHER_IN_NETNS="1")
    script = "ip link set lo up && exec %s -m pytest -q -s -p no:cacheprovider %s" % (sys.executable, test_path)
    return subprocess.run(["unshare", "-n", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


class Broker:
    """mosquitto on 127.0.0.1:port; stop() kills it, start() brings it back
    on the same port."""

    def __init__(self, directory, port=None, extra="", ws_port=None, http_dir=None):
        self.dir = str(directory)
        self.port = port or free_port()
        self.ws_port = ws_port
        if ws_port:
            # mosquitto 2.0.11 binds this to every interface: only inside a
            # private network namespace (tests/fleet/netns/).
            extra += "listener %d 127.0.0.1\nprotocol websockets\n" % ws_port
            if http_dir:
                extra += "http_dir %s\n" % http_dir
        self.conf = os.path.join(self.dir, "mosquitto-%d.conf" % self.port)
        with open(TEST_CONF) as f:
            text = f.read().replace("PORT", str(self.port)).replace("DIR", self.dir)
        with open(self.conf, "w") as f:
            f.write(text + extra)
        self.proc = None
        self.start()

    @property
    def url(self):
        return "mqtt://127.0.0.1:%d" % self.port

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d/mqtt" % self.ws_port

    def start(self, timeout=10):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        wait_listening(self.port, self.proc, timeout, what="mosquitto")

    def kill(self):
        kill(self.proc)

    stop = kill

    def log(self):
        try:
            with open(os.path.join(self.dir, "mosquitto.log")) as f:
                return f.read()
        except OSError:
            return ""


class Client:
    """A test-side MQTT client: every message lands in `messages` (topic,
    payload, retain, arrival time) and in a queue per topic filter match."""

    def __init__(self, url, client_id, subscriptions=(), keepalive_s=10, **kw):
        self.messages = []
        self.changed = asyncio.Event()
        self.session = Session(opener(url), client_id, keepalive_s=keepalive_s,
                               subscriptions=list(subscriptions), on_message=self._got,
                               backoff_min_ms=100, backoff_max_ms=1000, log=lambda *a: None,
                               max_queue=64, **kw)
        self.task = None

    def _got(self, topic, payload, retain):
        self.messages.append((topic, bytes(payload), retain, time.monotonic()))
        self.changed.set()

    async def start(self, timeout=5):
        self.task = asyncio.ensure_future(self.session.run())
        await self.wait(lambda: self.session.connected, timeout, "connected")
        return self

    async def wait(self, condition, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.05))
            except asyncio.TimeoutError:
                pass

    def on(self, topic):
        return [m for m in self.messages if m[0] == topic]

    def json_on(self, topic):
        return [json.loads(m[1]) for m in self.on(topic)]

    async def wait_for_message(self, topic, predicate=lambda msg: True, timeout=5, after=0):
        def found():
            for m in self.messages[after:]:
                if m[0] == topic:
                    try:
                        msg = json.loads(m[1])
                    except ValueError:
                        msg = m[1]
                    if predicate(msg):
                        return msg
            return None
        return await self.wait(found, timeout, "a message on %s" % topic)

    def publish(self, topic, payload, qos=0, retain=False):
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        return self.session.publish(topic, payload, qos, retain)

    async def stop(self):
        await self.session.close()
        if self.task:
            try:
                await asyncio.wait_for(self.task, 2)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self.task.cancel()


async def run_until(session, done, timeout=5.0):
    """Run a Session until done() holds (its first log lines, its first
    messages) or `timeout` s pass, then close it."""
    task = asyncio.ensure_future(session.run())
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await session.close()
    await task
