"""The phone control page in a real browser against the real firmware.

Each test starts `main.py` (simulated car, Unix port) and opens web/ in Debian's
Chromium through Playwright, in a phone profile with touch. Touches go through
Chrome's own input pipeline (CDP Input.dispatchTouchEvent), so the page sees the
same pointer events a phone produces. What the car really does is read by a
separate CPython WebSocket client that only listens to telemetry.

Locally, without Chromium, the module is skipped (apt-get install chromium);
under CI (CI=true) a missing browser is a failure.
"""
import json
import os
import re
import shutil
import sys
import time
import urllib.request

import pytest

from support import ROOT
from support.browser import (CHROME_ARGS, Fingers, Mouse, Observer, SentFrames, centre, chart_signature,
                             find_chromium, missing, moving_forward, push_stick, screenshot,
                             stick_geometry, stopped, text, wait_online)

pytestmark = [pytest.mark.browser]

# A long deadman: any stop seen within it was sent by the page, not the car's timeout.
CONFIG = {"limits": {"telemetry_hz": 20, "deadman_ms": 5000}}


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module", autouse=True)
def built_page():
    """The firmware serves web/X.gz in preference to X: they must be current."""
    sys.path.insert(0, ROOT)
    try:
        from tools.web import build_web
    finally:
        sys.path.pop(0)
    assert build_web.main([]) == 0, "tools/web/build_web.py failed (over budget?)"


@pytest.fixture(scope="module")
def playwright_api():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright Python package is not installed")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright_api):
    path = find_chromium()
    if not path:
        missing("no Chromium found (looked at $CHROMIUM, /usr/bin/chromium, PATH)")
    b = playwright_api.chromium.launch(executable_path=path, args=CHROME_ARGS)
    yield b
    b.close()


@pytest.fixture
def car(start_micropython, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    args = ["--config", str(cfg)]
    proc = start_micropython("main.py", args=args)
    proc.args = args
    return proc


@pytest.fixture
def open_page(browser, playwright_api):
    """open_page(url, profile='phone'|'landscape'|'desktop') -> Page, online and greeted."""
    contexts, errors = [], []
    phone = playwright_api.devices["Pixel 7"]
    profiles = {
        "phone": dict(phone),
        "landscape": dict(phone, viewport={"width": phone["viewport"]["height"],
                                           "height": phone["viewport"]["width"]}),
        "desktop": {"viewport": {"width": 1280, "height": 800}},
    }

    def opener(url, profile="phone"):
        ctx = browser.new_context(**profiles[profile])
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.sent = SentFrames(page)
        page.goto(url)
        wait_online(page)
        return page

    yield opener
    for ctx in contexts:
        ctx.close()
    assert not errors, "JavaScript errors on the page: %s" % errors


@pytest.fixture
def observer(car):
    obs = Observer(car.ws_url + "/ws")
    yield obs
    obs.close()


# --------------------------------------------------------------------- tests

def test_build_fits_budget_and_car_serves_it_gzipped(car, capsys):
    sys.path.insert(0, ROOT)
    try:
        from tools.web import build_web
    finally:
        sys.path.pop(0)
    assert build_web.main(["--check"]) == 0
    out = capsys.readouterr().out
    size = int(re.search(r"(\d+) B gzipped", out).group(1))
    assert 0 < size <= 16 * 1024
    for name in ("index.html", "app.js", "style.css"):
        req = urllib.request.Request("%s/%s" % (car.url, name), headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            with open(os.path.join(ROOT, "web", name + ".gz"), "rb") as f:
                assert resp.read() == f.read()
    print("page: %d bytes gzipped" % size)
    # The README states the figures make web prints.
    raw = int(re.search(r"web page: (\d+) B raw", out).group(1))
    with open(os.path.join(ROOT, "README.md")) as f:
        stated = re.search(r"\*\*([\d.]+) KB gzipped\*\* of the 16 KB allowed \(([\d.]+) KB raw\)", f.read())
    assert stated, "README no longer states the page size"
    assert stated.groups() == ("%.1f" % (size / 1024), "%.1f" % (raw / 1024)), \
        "README says %s / %s KB, make web prints %d B / %d B" % (stated.groups() + (size, raw))


def test_build_is_reproducible_and_enforces_the_budget(tmp_path, capsys):
    sys.path.insert(0, ROOT)
    try:
        from tools.web import build_web
    finally:
        sys.path.pop(0)
    web = tmp_path / "web"
    shutil.copytree(os.path.join(ROOT, "web"), web, ignore=shutil.ignore_patterns("*.gz"))
    (web / "old.js.gz").write_bytes(b"left over from a rename")
    assert build_web.main(["--web", str(web)]) == 0
    assert not (web / "old.js.gz").exists()
    first = (web / "app.js.gz").read_bytes()
    assert first[4:8] == b"\0\0\0\0"                  # gzip mtime field: 0
    assert build_web.main(["--web", str(web), "--check"]) == 0
    assert build_web.main(["--web", str(web)]) == 0
    assert (web / "app.js.gz").read_bytes() == first
    capsys.readouterr()
    assert build_web.main(["--web", str(web), "--budget", "4000"]) == 1
    assert "over the 4000 B budget" in capsys.readouterr().err
    (web / "app.js").write_text("// changed")
    assert build_web.main(["--web", str(web), "--check"]) == 1


def test_stick_drives_forward_and_release_stops(car, observer, open_page):
    page = open_page(car.url)
    start = observer.latest()
    assert stopped(start) and start["driver"] is None
    fingers = Fingers(page)
    push_stick(page, fingers)
    t = observer.wait(lambda t: moving_forward(t) and t["pose"]["x"] > start["pose"]["x"] + 0.05,
                      what="forward motion from the stick")
    assert abs(t["pose"]["y"] - start["pose"]["y"]) < 0.05       # straight ahead: no steering
    page.wait_for_selector("#role.driver")
    assert text(page, "#role") == "Driver"
    fingers.up(1)
    # Stop comes from the page at once (the car's deadman is 5 s here).
    observer.wait(stopped, timeout=2.0, what="a stop after release")
    time.sleep(0.5)                                     # the wheels spin down (sim accel 2 m/s^2)
    x = observer.latest()["pose"]["x"]
    time.sleep(0.3)
    assert observer.latest()["pose"]["x"] == pytest.approx(x, abs=0.002)


def test_second_finger_on_stick_is_ignored(car, observer, open_page):
    page = open_page(car.url)
    fingers = Fingers(page)
    push_stick(page, fingers, finger=1, throttle=0.8)
    observer.wait(moving_forward, what="forward motion")
    cx, cy, r = stick_geometry(page)
    fingers.down(2, cx - 0.8 * r, cy + 0.5 * r)          # a second finger: back-left
    fingers.move(2, cx - 0.9 * r, cy + 0.6 * r)
    time.sleep(0.4)
    t = observer.latest()
    assert t["motor"]["left"] > 0.5 and t["motor"]["left"] == pytest.approx(t["motor"]["right"], abs=0.01)
    fingers.up(1)                                        # the owning finger lifts: stop,
    observer.wait(stopped, timeout=2.0, what="a stop when the owning finger lifts")
    fingers.move(2, cx, cy - r)                          # and the other finger does not take over
    time.sleep(0.4)
    assert stopped(observer.latest())
    fingers.up(2)


def test_switching_away_stops_the_car(car, observer, open_page):
    page = open_page(car.url)
    page.bring_to_front()
    # Playwright pretends every page has focus; let this one lose it for real.
    page.context.new_cdp_session(page).send("Emulation.setFocusEmulationEnabled", {"enabled": False})
    fingers = Fingers(page)
    push_stick(page, fingers)
    observer.wait(moving_forward, what="forward motion")
    other = page.context.new_page()                      # another tab comes to the front
    other.bring_to_front()
    observer.wait(stopped, timeout=2.0, what="a stop when the page loses focus")
    page.bring_to_front()
    cx, cy, r = stick_geometry(page)
    fingers.move(1, cx, cy - r)                          # the old touch does not resume driving
    assert all(stopped(t) for t in observer.collect(0.4))
    fingers.up(1)


def test_emergency_stop_while_stick_held_latches(car, observer, open_page):
    page = open_page(car.url)
    fingers = Fingers(page)
    push_stick(page, fingers, finger=1)
    observer.wait(moving_forward, what="forward motion")
    ex, ey = centre(page, "#estop")
    fingers.down(2, ex, ey)                              # second finger hits STOP
    observer.wait(stopped, timeout=2.0, what="an emergency stop")
    fingers.up(2)
    time.sleep(0.5)                                     # the wheels spin down
    t = observer.latest()
    cx, cy, r = stick_geometry(page)
    for i in range(5):                                   # the stick finger keeps pushing
        fingers.move(1, cx, cy - r * (0.8 + i * 0.04))
        time.sleep(0.1)
    assert stopped(observer.latest())
    assert observer.latest()["pose"]["x"] == pytest.approx(t["pose"]["x"], abs=0.01)
    assert text(page, "#estop") == "STOPPED\nby you"
    assert page.get_attribute("#estop", "aria-pressed") == "true"
    assert "unlock" in text(page, "#hint")
    screenshot(page, "web-estop-latched.png")
    fingers.up(1)
    # A new touch while latched only unlocks: dragging it does not drive.
    push_stick(page, fingers, finger=1)
    assert all(stopped(t) for t in observer.collect(0.5))
    fingers.up(1)
    page.wait_for_function("document.getElementById('estop').innerText === 'STOP'")
    assert page.get_attribute("#estop", "aria-pressed") == "false"
    push_stick(page, fingers, finger=1)
    observer.wait(moving_forward, what="driving again after unlock")
    fingers.up(1)
    observer.wait(stopped, timeout=2.0, what="a stop after release")


def test_readouts_chart_and_room_view_update(car, observer, open_page):
    page = open_page(car.url)
    page.wait_for_function("document.getElementById('batt').textContent !== '—'")
    assert re.fullmatch(r"\d+\.\d\d", text(page, "#batt"))
    assert re.fullmatch(r"-\d+", text(page, "#rssi"))            # simulated RSSI is a number
    assert re.fullmatch(r"\d+(\.\d)?", text(page, "#heap"))
    page.wait_for_function("/^\\d+ ms$/.test(document.getElementById('rtt').textContent)")
    assert page.locator("#map").is_visible()                      # hello carried a room
    assert "(sim)" in text(page, "#device")
    dist0 = text(page, "#dist")
    sig0 = chart_signature(page)
    assert sig0[1] > 1000, "chart has no ink"
    fingers = Fingers(page)
    push_stick(page, fingers, throttle=1.0)
    observer.wait(lambda t: t["distance_cm"] is not None and t["distance_cm"] < float(dist0) - 15,
                  what="the distance to the wall shrinking")
    page.wait_for_function("(d) => document.getElementById('dist').textContent !== d", arg=dist0)
    assert float(text(page, "#dist")) < float(dist0)
    fingers.up(1)
    assert chart_signature(page) != sig0


def test_light_horn_and_speed_limit_controls(car, observer, open_page):
    page = open_page(car.url)
    fingers = Fingers(page)
    lx, ly = centre(page, "#light")
    fingers.down(1, lx, ly)
    fingers.up(1)
    observer.wait(lambda t: t["light"] is True, what="light on")
    page.wait_for_selector("#light[aria-pressed=true]")
    hx, hy = centre(page, "#horn")
    fingers.down(1, hx, hy)                             # horn sounds while held
    observer.wait(lambda t: t["horn"] is True, what="horn on")
    fingers.up(1)
    observer.wait(lambda t: t["horn"] is False, what="horn off on release")
    box = page.locator("#speed").bounding_box()         # slide the thumb from 100 % to the middle
    y = box["y"] + box["height"] / 2
    fingers.down(1, box["x"] + box["width"] - 8, y)
    for i in range(1, 6):
        fingers.move(1, box["x"] + box["width"] - 8 - i * (box["width"] / 2 - 8) / 5, y)
    fingers.up(1)
    shown = int(text(page, "#speed-val").rstrip("%"))
    assert 40 <= shown <= 65
    # The page sends at most every 100 ms plus the final value: the car ends on what the page shows.
    observer.wait(lambda t: round(t["speed_limit"] * 100) == shown, what="speed limit %d %%" % shown)
    page.focus("#speed")
    page.keyboard.press("End")
    for _ in range(4):                                  # 100 % -> 80 % in 5 % steps
        page.keyboard.press("ArrowLeft")
    observer.wait(lambda t: t["speed_limit"] == pytest.approx(0.8), what="speed limit 0.8")
    assert text(page, "#speed-val") == "80%"


def test_reconnects_by_itself_after_car_restart(car, start_micropython, observer, open_page):
    page = open_page(car.url)
    fingers = Fingers(page)
    push_stick(page, fingers, finger=1)
    observer.wait(moving_forward, what="forward motion")
    observer.close()
    car.stop()
    page.wait_for_selector("body[data-conn=offline]", timeout=5000)
    assert page.locator("#banner").is_visible()
    assert "Disconnected" in text(page, "#banner")
    page.wait_for_selector("#hint >> text=OFFLINE", timeout=5000)
    screenshot(page, "web-disconnected.png")
    cx, cy, r = stick_geometry(page)
    fingers.move(1, cx + 1, cy - r)                     # the finger is still down, still pushing
    again = start_micropython("main.py", args=car.args, port=car.port)
    wait_online(page, timeout=10000)                    # backoff stays well under 10 s here
    assert page.locator("#banner").is_hidden()
    obs = Observer(again.ws_url + "/ws")
    try:
        # No stale command is replayed and the held finger does not resume driving.
        for _ in range(3):
            fingers.move(1, cx, cy - r * 0.9)
            time.sleep(0.15)
        t = obs.latest()
        assert stopped(t) and t["driver"] is None
        fingers.up(1)
        push_stick(page, fingers, finger=1)             # a fresh touch drives
        obs.wait(moving_forward, what="driving after a fresh touch")
        fingers.up(1)
        obs.wait(stopped, timeout=2.0, what="a stop after release")
    finally:
        obs.close()


def test_mouse_and_keyboard_drive_on_desktop(car, observer, open_page):
    page = open_page(car.url, profile="desktop")
    cx, cy, r = stick_geometry(page)
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx, cy - 0.9 * r, steps=4)
    observer.wait(moving_forward, what="forward motion from a mouse drag")
    page.mouse.up()
    observer.wait(stopped, timeout=2.0, what="a stop on mouse release")
    time.sleep(0.5)                                     # the wheels spin down
    start = observer.latest()
    page.keyboard.down("w")
    observer.wait(lambda t: moving_forward(t) and t["pose"]["x"] > start["pose"]["x"] + 0.03,
                      what="forward motion from W")
    page.keyboard.up("w")
    observer.wait(stopped, timeout=2.0, what="a stop on key release")
    page.keyboard.down("ArrowUp")
    page.keyboard.down("ArrowRight")                    # forward + right: left wheel faster
    observer.wait(lambda t: t["motor"]["left"] > t["motor"]["right"] + 0.3, what="a right turn")
    page.keyboard.press("Space")                        # Space stops even with keys held
    observer.wait(stopped, timeout=2.0, what="a stop on Space")
    time.sleep(0.3)
    assert stopped(observer.latest())
    page.keyboard.up("ArrowUp")
    page.keyboard.up("ArrowRight")


# Chromium cannot plug in a gamepad for a test, so this one stands in for the
# Gamepad API (navigator.getGamepads and the connect event); the page's polling,
# dead zone, re-arming and STOP button run for real against the real car.
FAKE_PAD = """
window.testPad = { index: 0, id: 'test pad', mapping: 'standard', connected: true,
  axes: [0, 0, 0, 0], buttons: Array.from({ length: 16 }, () => ({ pressed: false, value: 0 })) };
navigator.getGamepads = () => [window.testPad];
"""


def test_gamepad_drives_and_b_button_stops(car, observer, open_page):
    page = open_page(car.url, profile="desktop")
    page.add_init_script(FAKE_PAD)
    page.reload()
    wait_online(page)
    page.evaluate("""() => { const e = new Event('gamepadconnected'); e.gamepad = window.testPad;
                             window.dispatchEvent(e); }""")
    page.wait_for_timeout(250)                           # polled each tick: sees the stick centred
    page.evaluate("window.testPad.axes[1] = -1")         # left stick fully forward
    observer.wait(moving_forward, what="forward motion from the gamepad")
    page.evaluate("window.testPad.axes[1] = 0")
    observer.wait(stopped, timeout=2.0, what="a stop when the stick recentres")
    page.evaluate("window.testPad.axes[1] = -1")
    observer.wait(moving_forward, what="forward motion again")
    page.evaluate("window.testPad.buttons[1].pressed = true")   # B: emergency stop
    observer.wait(stopped, timeout=2.0, what="a stop from the B button")
    assert all(stopped(t) for t in observer.collect(0.4))      # stick still forward: latched
    assert text(page, "#estop") == "STOPPED\nby you"


def test_second_page_is_viewer_and_cannot_drive(car, observer, open_page):
    driver = open_page(car.url)
    viewer = open_page(car.url)
    f1, f2 = Fingers(driver), Fingers(viewer)
    push_stick(driver, f1, throttle=0.7)
    t = observer.wait(moving_forward, what="the first page driving")
    viewer.wait_for_function("document.getElementById('role').textContent === 'Viewer'")
    driver.wait_for_selector("#role.driver")
    observer.latest()
    push_stick(viewer, f2, throttle=-0.9, steer=-0.9)    # the viewer pulls hard back-left
    viewer.wait_for_selector("#toast:not([hidden])")
    assert "driving" in text(viewer, "#toast")
    time.sleep(0.3)
    f2.up(1)                                             # and lets go
    time.sleep(0.5)
    frames = observer.drain()
    # Throughout, the car followed the driver only: the viewer's drive was refused
    # and its letting go did not stop somebody else's driving.
    assert len(frames) >= 10
    me, other = int(driver.get_attribute("body", "data-client")), int(viewer.get_attribute("body", "data-client"))
    for t in frames:
        assert t["driver"] == me != other
        assert t["motor"]["left"] > 0.3 and t["motor"]["left"] == pytest.approx(t["motor"]["right"], abs=0.01)
    assert "viewer" in text(viewer, "#role").lower()
    f1.up(1)
    observer.wait(stopped, timeout=2.0, what="the driver's stop")


@pytest.mark.parametrize("profile", ["phone", "landscape"])
def test_layout_fits_screen_and_screenshots(car, observer, open_page, profile):
    page = open_page(car.url, profile=profile)
    fingers = Fingers(page)
    push_stick(page, fingers, throttle=0.8, steer=0.3)
    observer.wait(lambda t: abs(t["pose"]["heading"]) > 0.3, what="a curve")
    time.sleep(1.0)                                     # a little history for the chart
    fingers.up(1)
    observer.wait(stopped, timeout=2.0, what="a stop")
    page.wait_for_timeout(200)
    vw, vh = page.viewport_size["width"], page.viewport_size["height"]
    # Nothing scrolls: the document is exactly the viewport.
    assert page.evaluate("document.scrollingElement.scrollHeight") <= vh
    assert page.evaluate("document.scrollingElement.scrollWidth") <= vw
    boxes = {}
    for sel in ("#top", "#read", "#chart", "#map", "#speed", "#stick", "#light", "#horn", "#estop"):
        b = page.locator(sel).bounding_box()
        assert b and b["x"] >= 0 and b["y"] >= 0, sel
        assert b["x"] + b["width"] <= vw + 0.5 and b["y"] + b["height"] <= vh + 0.5, sel + " off screen"
        boxes[sel] = b
    for sel in ("#light", "#horn", "#estop"):            # big enough for a thumb
        assert boxes[sel]["height"] >= 48 and boxes[sel]["width"] >= 48, sel
    stick = boxes["#stick"]
    assert min(stick["width"], stick["height"]) >= 200
    if profile == "phone":                               # one hand: stick at the bottom
        assert stick["y"] > vh / 2
    else:                                                # two hands: stick left, STOP right
        assert stick["x"] + stick["width"] <= vw / 2 + 1 and boxes["#estop"]["x"] > vw / 2
    assert page.get_attribute("#stick", "aria-label") and page.get_attribute("#estop", "aria-label")
    viewport = page.get_attribute("meta[name=viewport]", "content")
    assert "user-scalable" not in viewport and "maximum-scale" not in viewport   # zoom allowed
    assert page.evaluate("getComputedStyle(document.getElementById('stick')).touchAction") == "none"
    path = screenshot(page, "web-%s.png" % ("portrait" if profile == "phone" else "landscape"))
    assert os.path.getsize(path) > 10000


# The stick's zero is the knob as drawn and its full scale the drawn ring's edge, in every
# layout: portrait and landscape phones (touch), a desktop window and one resized after
# loading (mouse). Both what the page put on the wire and what the car's motors got count.
STICK_LAYOUTS = {"portrait": "phone", "landscape": "landscape", "desktop": "desktop", "resized": "desktop"}


@pytest.mark.parametrize("layout", list(STICK_LAYOUTS))
def test_knob_centre_is_zero_and_ring_edge_full_scale(car, observer, open_page, layout):
    page = open_page(car.url, profile=STICK_LAYOUTS[layout])
    if layout == "resized":                              # a desktop window made narrow and tall
        page.set_viewport_size({"width": 520, "height": 940})
        page.wait_for_function("innerWidth === 520 && innerHeight === 940")
    pointer = Fingers(page) if STICK_LAYOUTS[layout] != "desktop" else Mouse(page)
    kx, ky = centre(page, "#knob")
    ring = page.locator("#base").bounding_box()
    rx, ry = ring["x"] + ring["width"] / 2, ring["y"] + ring["height"] / 2
    assert (kx, ky) == (pytest.approx(rx, abs=1), pytest.approx(ry, abs=1)), "knob drawn off the ring's centre"

    mark = page.sent.mark()
    pointer.down(1, kx, ky)                              # press the knob and hold still
    held = observer.collect(0.6)
    drives = page.sent.since(mark, "drive")
    assert len(drives) >= 3, "no heartbeat while the knob is held: %s" % drives
    worst = max(max(abs(d["throttle"]), abs(d["steer"])) for d in drives)
    assert worst <= 0.05, "a plain touch on the knob sent %s" % drives
    motors = max(max(abs(t["motor"]["left"]), abs(t["motor"]["right"])) for t in held)
    assert motors <= 0.05, "the car moved on a plain touch: %s" % held[-1]

    top = (rx, ring["y"] + 1)                            # the ring's top edge: full forward
    for i in range(1, 6):
        pointer.move(1, kx + (top[0] - kx) * i / 5, ky + (top[1] - ky) * i / 5)
    observer.wait(lambda t: t["motor"]["left"] >= 0.95 and t["motor"]["right"] >= 0.95,
                  what="full forward at the ring's top edge")
    fwd = page.sent.since(mark, "drive")[-1]
    assert fwd["throttle"] >= 0.95 and abs(fwd["steer"]) <= 0.05, fwd
    screenshot(page, "web-stick-%s-top.png" % layout)

    right = (ring["x"] + ring["width"] - 1, ry)          # the ring's right edge: full right
    for i in range(1, 6):
        pointer.move(1, top[0] + (right[0] - top[0]) * i / 5, top[1] + (right[1] - top[1]) * i / 5)
    observer.wait(lambda t: t["motor"]["left"] >= 0.95 and t["motor"]["right"] <= -0.95,
                  what="a full right turn in place at the ring's right edge")
    turn = page.sent.since(mark, "drive")[-1]
    assert turn["steer"] >= 0.95 and abs(turn["throttle"]) <= 0.05, turn
    pointer.up(1)
    observer.wait(stopped, timeout=2.0, what="a stop on release")
    screenshot(page, "web-stick-%s.png" % layout)


def test_a_viewers_stop_holds_on_the_car_and_every_page_shows_it(car, observer, open_page):
    driver = open_page(car.url)
    viewer = open_page(car.url, profile="desktop")
    f1 = Fingers(driver)
    push_stick(driver, f1, throttle=0.8)
    observer.wait(moving_forward, what="the first page driving")
    me = int(driver.get_attribute("body", "data-client"))
    other = int(viewer.get_attribute("body", "data-client"))
    viewer.wait_for_selector("#stick.idle")                       # a viewer's stick reads as inactive
    assert text(viewer, "#hint") == "VIEWING" and viewer.get_attribute("#stick", "aria-disabled") == "true"
    viewer.click("#estop")                                        # a viewer's STOP (mouse)
    t = observer.wait(stopped, timeout=1.0, what="a stop from the viewer")
    # The driver's finger keeps pushing, the stick moving: for a whole second nothing moves.
    cx, cy, r = stick_geometry(driver)
    mark = driver.sent.mark()
    observer.drain()
    for i in range(10):
        f1.move(1, cx + (i % 3 - 1), cy - r * (0.8 + i * 0.02))
        time.sleep(0.1)
    frames = observer.drain()                                     # everything the car sent meanwhile
    assert all(stopped(f) and f["stopped_by"] == other and f["driver"] == me for f in frames), frames[-1]
    assert len(frames) >= 15
    assert not driver.sent.since(mark, "drive"), "the driver's page kept sending drive while stopped"
    for page, who in ((driver, "by client %d" % other), (viewer, "by you")):
        page.wait_for_function("(w) => document.getElementById('stop-by').textContent === w", arg=who)
        assert text(page, "#estop") == "STOPPED\n" + who
        assert page.get_attribute("#estop", "aria-pressed") == "true"
        assert page.locator("#say").text_content() == "Car stopped " + who
    assert text(driver, "#hint") == "Tap to unlock" and text(viewer, "#hint") == "Driver unlocks"
    # The viewer cannot re-arm while somebody drives (the 5 s deadman keeps the driver here).
    vbox = viewer.locator("#base").bounding_box()
    viewer.mouse.click(vbox["x"] + vbox["width"] / 2, vbox["y"] + vbox["height"] / 2)
    viewer.wait_for_selector("#toast:not([hidden])")
    assert "driver unlocks" in text(viewer, "#toast")
    t = observer.latest()
    assert t["stopped_by"] == other and t["driver"] == me
    f1.up(1)
    late = open_page(car.url)                                     # a page opened afterwards shows it too
    late.wait_for_function("document.getElementById('stop-by').textContent === 'by client %d'" % other)
    screenshot(driver, "web-stopped-by-viewer-driver.png")
    screenshot(viewer, "web-stopped-by-viewer-viewer.png")
    # The driver re-arms with a tap; the tap itself does not drive, a fresh touch does.
    mark = driver.sent.mark()
    push_stick(driver, f1, throttle=0.9)
    assert [m["type"] for m in driver.sent.since(mark) if m["type"] != "ping"] == ["resume"]
    observer.wait(lambda t: t["stopped_by"] is None, timeout=1.0, what="the stop released")
    assert all(stopped(f) for f in observer.collect(0.4))
    f1.up(1)
    for page in (driver, viewer, late):
        page.wait_for_function("document.getElementById('estop').innerText === 'STOP'")
        assert page.locator("#say").text_content() == "Stop released"
    push_stick(driver, f1, throttle=0.9)
    observer.wait(moving_forward, what="driving after re-arming and a fresh touch")
    mark = driver.sent.mark()
    f1.up(1)
    observer.wait(stopped, timeout=2.0, what="a stop on release")
    # Letting go stops without latching: the driver's own release is latch:false.
    assert {"type": "stop", "latch": False} in driver.sent.since(mark, "stop")
    assert observer.latest()["stopped_by"] is None


def test_keyboard_space_enter_escape_and_focused_buttons(car, observer, open_page):
    page = open_page(car.url, profile="desktop")
    sent = page.sent
    # Space on a focused button is that button's: Light toggles, nothing stops.
    mark = sent.mark()
    page.focus("#light")
    page.keyboard.press("Space")
    observer.wait(lambda t: t["light"] is True, what="light on from Space on Light")
    assert not sent.since(mark, "stop")
    # Horn from the keyboard: sounds while Space or Enter is held on it.
    for key in ("Space", "Enter"):
        page.focus("#horn")
        page.keyboard.down(key)
        observer.wait(lambda t: t["horn"] is True, what="horn on while %s is held" % key)
        time.sleep(0.3)
        assert observer.latest()["horn"] is True
        page.keyboard.up(key)
        observer.wait(lambda t: t["horn"] is False, what="horn off when %s is let go" % key)
    me = int(page.get_attribute("body", "data-client"))
    # Space and Enter on a focused STOP both give one latching stop, Escape anywhere too.
    for key, focus in (("Space", "#estop"), ("Enter", "#estop"), ("Escape", "#speed"), ("Space", "body")):
        page.focus("#stick")
        page.keyboard.down("w")
        observer.wait(moving_forward, what="forward motion from W")
        if focus == "body":
            page.evaluate("document.activeElement.blur()")
        else:
            page.focus(focus)
        mark = sent.mark()
        page.keyboard.press(key)
        observer.wait(lambda t: stopped(t) and t["stopped_by"] == me, timeout=1.0,
                      what="a latched stop from %s on %s" % (key, focus))
        page.keyboard.up("w")
        page.keyboard.down("w")                                  # pressed again: still stopped
        assert all(stopped(t) for t in observer.collect(0.4))
        page.keyboard.up("w")
        stops = sent.since(mark, "stop")
        assert stops == [{"type": "stop"}], "%s on %s sent %s" % (key, focus, stops)
        assert text(page, "#estop") == "STOPPED\nby you"
        screenshot(page, "web-keyboard-stopped.png")
        page.focus("#stick")                                     # Enter on the stick re-arms
        page.keyboard.press("Enter")
        observer.wait(lambda t: t["stopped_by"] is None, timeout=1.0, what="re-armed from the keyboard")
        page.wait_for_function("document.getElementById('estop').innerText === 'STOP'")


LIVE = "[aria-live]:not([aria-live=off]), [role=status], [role=alert], [role=log], output"


def test_screen_readers_hear_role_connection_and_stop_not_telemetry(car, observer, open_page):
    page = open_page(car.url)
    # No readout sits in a live region: 20 telemetry frames a second would be read out.
    for sel in ("#dist", "#batt", "#rssi", "#heap", "#rtt", "#speed-val", "#chart"):
        assert page.evaluate("(s) => document.querySelector(s).closest(%r)" % LIVE, sel) is None, sel
    page.evaluate("""(live) => {
        window.liveWrites = [];
        const mo = new MutationObserver((ms) => { for (const m of ms) {
            const el = m.target.nodeType === 1 ? m.target : m.target.parentNode;
            window.liveWrites.push(el.closest(live).id + ': ' + el.closest(live).textContent); } });
        for (const el of document.querySelectorAll(live))
            mo.observe(el, { childList: true, characterData: true, subtree: true });
    }""", LIVE)
    fingers = Fingers(page)
    push_stick(page, fingers)
    observer.wait(moving_forward, what="forward motion")
    observer.collect(1.0)                                 # 20 frames of changing readouts
    ex, ey = centre(page, "#estop")
    fingers.down(2, ex, ey)
    fingers.up(2)
    observer.wait(lambda t: t["stopped_by"] is not None, what="the stop latched")
    fingers.up(1)
    page.wait_for_function("document.getElementById('stop-by').textContent === 'by you'")
    assert page.get_attribute("#estop", "aria-pressed") == "true"
    push_stick(page, fingers)                              # the tap that re-arms
    fingers.up(1)
    observer.wait(lambda t: t["stopped_by"] is None, what="the stop released")
    page.wait_for_function("document.getElementById('say').textContent === 'Stop released'")
    page.wait_for_timeout(300)
    writes = page.evaluate("window.liveWrites")
    assert writes == ["role: Driver", "say: Car stopped by you", "say: Stop released"], writes
    assert page.get_attribute("#estop", "aria-pressed") == "false"


# Records what the page draws on its canvases, one frame per canvas (fit() clears each
# frame first): strokes and fills with their colour, width, dash and points, and texts.
CANVAS_LOG = """
(() => {
  const P = CanvasRenderingContext2D.prototype, log = window.canvasLog = { chart: [], map: [] };
  const path = new WeakMap();
  const cur = (g) => { let p = path.get(g); if (!p) path.set(g, p = []); return p; };
  const wrap = (name, f) => { const o = P[name]; P[name] = function (...a) { f(this, a); return o.apply(this, a); }; };
  const frame = (g) => log[g.canvas.id];
  const add = (g, e) => { if (frame(g)) frame(g).push(e); };
  wrap('beginPath', (g) => path.set(g, []));
  wrap('moveTo', (g, a) => cur(g).push(a));
  wrap('lineTo', (g, a) => cur(g).push(a));
  wrap('clearRect', (g) => { if (frame(g)) frame(g).length = 0; });
  wrap('stroke', (g) => add(g, { op: 'stroke', color: g.strokeStyle, width: g.lineWidth,
                                 dash: g.getLineDash().length > 0, points: cur(g).slice() }));
  wrap('fill', (g) => add(g, { op: 'fill', color: g.fillStyle, points: cur(g).slice() }));
  wrap('fillRect', (g, a) => add(g, { op: 'fillRect', color: g.fillStyle, rect: a }));
  wrap('strokeRect', (g, a) => add(g, { op: 'strokeRect', color: g.strokeStyle, rect: a }));
  wrap('fillText', (g, a) => add(g, { op: 'text', color: g.fillStyle, text: a[0] }));
})();
"""


def luminance(color):
    """Relative luminance (WCAG 2) of '#rrggbb' or 'rgb(r, g, b)'."""
    if color.startswith("#"):
        rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    else:
        rgb = [int(float(v)) for v in re.findall(r"[\d.]+", color)[:3]]
    lin = [(c / 255) / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a, b):
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_chart_map_and_readouts_a_driver_can_read(car, observer, open_page):
    page = open_page(car.url)
    page.add_init_script(CANVAS_LOG)
    page.reload()
    wait_online(page)
    fingers = Fingers(page)
    push_stick(page, fingers, throttle=0.6)                # straight ahead: both wheels equal
    start = observer.latest()["pose"]
    observer.wait(lambda t: t["pose"]["x"] > start["x"] + 0.3, what="0.3 m travelled")
    speed = float(text(page, "#spd"))
    assert 0.25 <= speed <= 0.45, speed                   # sim: 0.6 m/s x 0.6
    assert float(text(page, "#odo")) >= 0.3
    page.wait_for_timeout(300)
    log = page.evaluate("window.canvasLog")
    fingers.up(1)
    observer.wait(stopped, timeout=2.0, what="a stop")
    H = page.evaluate("document.getElementById('chart').clientHeight")
    panel = page.evaluate("getComputedStyle(document.getElementById('chart')).backgroundColor")
    strokes = {e["color"]: e for e in log["chart"] if e["op"] == "stroke" and len(e["points"]) > 3}
    left, right, dist = strokes["#d35400"], strokes["#8e24aa"], strokes["#0047ab"]
    # Equal wheel lines both show: the right wheel's is drawn on top, thinner and dashed.
    assert log["chart"].index(right) > log["chart"].index(left)
    assert right["width"] < left["width"] and right["dash"]
    # Separate scales: the distance pane lies wholly below the wheel pane, never under its zero.
    wheel_y = [p[1] for e in (left, right) for p in e["points"]]
    dist_y = [p[1] for p in dist["points"]]
    assert min(dist_y) > max(wheel_y) and max(dist_y) < H
    texts = {e["text"] for e in log["chart"] if e["op"] == "text"}
    assert {"+1", "−1", "now", "−10 s", "left wheel", "right wheel", "distance ahead, cm"} <= texts, texts
    # Every line, mark and label drawn has at least 3:1 contrast on the panel.
    for name in ("chart", "map"):
        for e in log[name]:
            assert contrast(e["color"], panel) >= 3, (name, e["op"], e["color"], contrast(e["color"], panel))
    for pseudo in ("::before", "::after"):                 # the stick's cross, on both ring colours
        mark = page.evaluate("(p) => getComputedStyle(document.getElementById('base'), p).backgroundColor", pseudo)
        for ground in ("#ffffff", "#dde1e7"):
            assert contrast(mark, ground) >= 3, (pseudo, mark, ground)
    # The room fills its panel and the car is big enough to see on a phone.
    mw, mh = page.evaluate("[document.getElementById('map').clientWidth, document.getElementById('map').clientHeight]")
    room = [e for e in log["map"] if e["op"] == "strokeRect"][0]["rect"]
    assert room[2] >= 0.9 * mw and room[3] >= 0.9 * mh, (room, mw, mh)
    car_mark = [e for e in log["map"] if e["op"] == "fill"][-1]["points"]
    xs, ys = [p[0] for p in car_mark], [p[1] for p in car_mark]
    assert max(xs) - min(xs) >= 12 or max(ys) - min(ys) >= 12, car_mark
    screenshot(page, "web-chart-and-map.png")


@pytest.fixture
def named_car(start_micropython, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(dict(CONFIG, wifi={"hostname": "tether-garage-car"})))
    return start_micropython("main.py", args=["--config", str(cfg)])


@pytest.mark.parametrize("profile", ["phone", "landscape", "small"])
def test_name_is_whole_and_toasts_never_cover_stop(named_car, browser, playwright_api, profile):
    phone = playwright_api.devices["Pixel 7"]
    view = {"phone": phone["viewport"], "landscape": {"width": 839, "height": 412},
            "small": {"width": 320, "height": 568}}[profile]
    ctx = browser.new_context(**dict(phone, viewport=view))
    try:
        page = ctx.new_page()
        page.goto(named_car.url)
        wait_online(page)
        assert text(page, "#device") == "tether-garage-car (sim)"
        version = re.search(r'VERSION = "([^"]+)"', open(os.path.join(ROOT, "lib", "car", "__init__.py")).read()).group(1)
        assert text(page, "#version") == version
        assert page.evaluate("(e => e.scrollWidth <= e.clientWidth)(document.getElementById('device'))"), \
            "the car's name is cut short"
        page.evaluate("() => { const e = new Event('gamepadconnected'); e.gamepad = { index: 0 }; dispatchEvent(e); }")
        page.wait_for_selector("#toast:not([hidden])")
        toast, stop = page.locator("#toast").bounding_box(), page.locator("#estop").bounding_box()
        apart = (toast["x"] + toast["width"] <= stop["x"] or stop["x"] + stop["width"] <= toast["x"] or
                 toast["y"] + toast["height"] <= stop["y"] or stop["y"] + stop["height"] <= toast["y"])
        assert apart, (toast, stop)
        cx, cy = toast["x"] + toast["width"] / 2, toast["y"] + toast["height"] / 2
        assert page.evaluate("([x, y]) => document.elementFromPoint(x, y).id", [cx, cy]) != "toast"
        screenshot(page, "web-toast-%s.png" % profile)
    finally:
        ctx.close()


def test_config_problems_reach_the_page(start_micropython, open_page, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text('{"limits": {"telemetry_hz": 20, "max_speed": 1.5},\n "wifi": {"ap": {"password": "x"}\n')
    car = start_micropython("main.py", args=["--config", str(cfg)])
    page = open_page(car.url)
    page.wait_for_selector("#cfg:not([hidden])")
    shown = text(page, "#cfg")
    # Not valid JSON: limits still parsed (and its bad value named); the WiFi section did
    # not, so the access point's default password is announced loudly.
    assert "not valid JSON, kept the sections that parse: limits" in shown
    assert "limits.max_speed: must be a number between 0 and 1" in shown
    assert "DEFAULT password" in shown and "loud" in page.get_attribute("#cfg", "class")
    assert page.get_attribute("#cfg", "role") == "alert"
    screenshot(page, "web-config-problems.png")
    page.click("#cfg")
    page.wait_for_selector("#cfg[hidden]", state="attached")
