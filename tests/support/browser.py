"""The page tests' browser side: finding Chromium (skip locally, fail under CI),
touch and mouse input through Chrome's pipeline, the frames the page sends, and
an Observer, a second WebSocket client that reads the car's own telemetry."""
import json
import os
import shutil
import time

from support import ROOT, unavailable

ARTIFACTS = os.path.join(ROOT, "test-artifacts")
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


def find_chromium():
    """$CHROMIUM if set (and only it), else Debian's chromium."""
    forced = os.environ.get("CHROMIUM")
    candidates = [forced] if forced else ["/usr/bin/chromium", shutil.which("chromium"),
                                          shutil.which("chromium-browser")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    return None


def missing(why):
    unavailable(why + " (install it with: apt-get install chromium)")


class SentFrames:
    """Every message the page sends the car, as the browser put it on the wire
    (Playwright's WebSocket framesent events), parsed from JSON."""

    def __init__(self, page):
        self.page = page
        self.frames = []
        page.on("websocket", lambda ws: ws.on("framesent", self._sent))

    def _sent(self, payload):
        try:
            self.frames.append(json.loads(payload))
        except (TypeError, ValueError):
            self.frames.append({"type": "(not JSON)", "raw": payload})

    def mark(self):
        return len(self.frames)

    def since(self, mark, kind=None):
        # The sync API delivers events only while it is called: one round trip delivers
        # every frame sent so far.
        self.page.evaluate("0")
        return [m for m in self.frames[mark:] if kind is None or m.get("type") == kind]


class Observer:
    """A second client that only listens: the car's own account of what it does."""

    def __init__(self, url):
        from websockets.sync.client import connect
        # legacy=True: a plain object rather than a context manager; no proxy from the
        # environment; an unbounded queue so the reader never lags behind the car.
        self.ws = connect(url, open_timeout=5, legacy=True, proxy=None, compression=None, max_queue=None)
        self.hello = json.loads(self.ws.recv(timeout=5))
        assert self.hello["type"] == "hello"
        self.last = None

    def wait(self, predicate, timeout=5.0, what="condition"):
        """Read telemetry until predicate(t) holds; returns that telemetry."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("car never showed %s; last telemetry: %s" % (what, self.last))
            try:
                msg = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                continue
            if msg.get("type") != "telemetry":
                continue
            self.last = msg
            if predicate(msg):
                return msg

    def latest(self):
        """Newest telemetry, skipping whatever queued up meanwhile."""
        self.wait(lambda t: True, what="any telemetry")
        while True:
            try:
                msg = json.loads(self.ws.recv(timeout=0))
            except TimeoutError:
                return self.last
            if msg.get("type") == "telemetry":
                self.last = msg

    def drain(self):
        """Every telemetry frame already received and not yet read."""
        frames = []
        while True:
            try:
                msg = json.loads(self.ws.recv(timeout=0))
            except TimeoutError:
                break
            if msg.get("type") == "telemetry":
                frames.append(msg)
        if frames:
            self.last = frames[-1]
        return frames

    def collect(self, seconds):
        """Every telemetry frame for the next `seconds`."""
        self.latest()
        frames, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                msg = json.loads(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                break
            if msg.get("type") == "telemetry":
                frames.append(msg)
        assert frames, "no telemetry for %.1f s" % seconds
        self.last = frames[-1]
        return frames

    def close(self):
        self.ws.close()


def moving_forward(t):
    return t["applied"]["left"] > 0.3 and t["applied"]["right"] > 0.3


def stopped(t):
    return t["motor"] == {"left": 0, "right": 0} and t["applied"] == {"left": 0, "right": 0}


class Fingers:
    """Multi-touch through Chrome's input pipeline (what a phone's touchscreen feeds)."""

    def __init__(self, page):
        self.cdp = page.context.new_cdp_session(page)
        self.points = {}

    def _send(self, kind, points):
        self.cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    def _all(self):
        return [{"x": x, "y": y, "id": i} for i, (x, y) in self.points.items()]

    def down(self, finger, x, y):
        self.points[finger] = (x, y)
        self._send("touchStart", self._all())

    def move(self, finger, x, y):
        self.points[finger] = (x, y)
        self._send("touchMove", self._all())

    def up(self, finger):
        x, y = self.points.pop(finger)
        self._send("touchEnd", [{"x": x, "y": y, "id": finger}])


class Mouse:
    """The same calls as Fingers, for a desktop page driven with the mouse (one pointer)."""

    def __init__(self, page):
        self.mouse = page.mouse

    def down(self, finger, x, y):
        self.mouse.move(x, y)
        self.mouse.down()

    def move(self, finger, x, y):
        self.mouse.move(x, y, steps=3)

    def up(self, finger):
        self.mouse.up()


def stick_geometry(page):
    """Centre of the drawn ring and the knob's full travel, in CSS pixels."""
    box = page.locator("#base").bounding_box()
    travel = box["width"] / 2 * 0.82
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, travel


def centre(page, selector):
    box = page.locator(selector).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def push_stick(page, fingers, finger=1, throttle=0.9, steer=0.0):
    cx, cy, r = stick_geometry(page)
    fingers.down(finger, cx, cy)
    fingers.move(finger, cx + steer * r, cy - throttle * r)


def wait_online(page, timeout=10000):
    page.wait_for_selector("body[data-conn=online]", timeout=timeout)


def text(page, selector):
    return page.locator(selector).inner_text()


def chart_signature(page):
    return page.evaluate("""() => {
        const c = document.getElementById('chart');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let h = 0, ink = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 3]) { ink++; h = (h * 31 + d[i] + 7 * d[i + 1] + 13 * i) | 0; }
        return [h, ink];
    }""")


def screenshot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    page.screenshot(path=path)
    return path
