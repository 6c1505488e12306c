"""Access control against the real firmware (main.py, simulated car):
origin check at the handshake (DNS rebinding included), the driving token,
files outside web/ never served, config validation of the access keys and the
AP password, and the page passing its own ?token= in a real browser."""
import asyncio
import json
import os
import sys

import pytest
import websockets

from support.micropython import ROOT, run_micropython
from support.car import Client, moving, run, stopped, write_config
from support.wsraw import raw_request, request
from support.wsraw import upgrade as handshake

sys.path.insert(0, os.path.join(ROOT, "lib"))
from car import config as car_config  # noqa: E402
from car.access import equal  # noqa: E402
from wsserver import origin  # noqa: E402

pytestmark = [pytest.mark.hardening]

TOKEN = "s3cret-Token_42"


def car_config_file(tmp_path, access=None):
    path = write_config(tmp_path)
    cfg = json.loads(open(path).read())
    if access is not None:
        cfg["access"] = access
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


@pytest.fixture
def open_car(start_micropython, tmp_path):
    def start(access=None, args=()):
        return start_micropython("main.py", args=["--config", car_config_file(tmp_path, access)] + list(args))
    return start


# ------------------------------------------------------------ pure logic

def test_constant_time_equal_is_correct():
    assert equal(TOKEN, TOKEN) and equal(TOKEN.encode(), TOKEN)
    assert not equal(TOKEN[:-1], TOKEN)          # a prefix
    assert not equal(TOKEN + "x", TOKEN)         # longer
    assert not equal(TOKEN * 2, TOKEN)           # the secret repeated (index wraps)
    assert not equal("", TOKEN)
    assert not equal("x", "") and not equal("", "")  # no secret matches nothing
    assert not equal(TOKEN[:-1] + "X", TOKEN)


def test_constant_time_equal_runs_on_micropython():
    code = ("from car.access import equal\n"
            "print(equal('abcdefgh','abcdefgh'), equal('abcdefgX','abcdefgh'), equal('abc','abcdefgh'),"
            " equal(b'abcdefgh', 'abcdefgh'), equal('', 'abcdefgh'))")
    out = run_micropython(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "False", "True", "False"]


@pytest.mark.parametrize("value,expected", [
    ("http://127.0.0.1:8080", ("http", "127.0.0.1", 8080)),
    ("HTTP://Tether-Car.LOCAL", ("http", "tether-car.local", 80)),
    ("https://car", ("https", "car", 443)),
    ("http://[::1]:9000", ("http", "::1", 9000)),
    ("null", None), ("", None), ("http://", None), ("file:///x", None), ("http://a/b", None),
    ("http://a:b", None), ("http://a:123456", None), ("http://u@car", None), ("http://[::1", None),
])
def test_origin_parse(value, expected):
    assert origin.parse(value) == expected


def test_origin_is_compared_with_our_names_not_with_host():
    hosts, ports = ("tether-car", "tether-car.local", "192.168.4.1"), (80,)
    assert origin.allowed_origin("http://192.168.4.1", hosts, ports)
    assert origin.allowed_origin("http://tether-car.local:80", hosts, ports)
    assert not origin.allowed_origin("http://192.168.4.1:8080", hosts, ports)   # not our port
    assert not origin.allowed_origin("http://tether-car.evil.example", hosts, ports)
    assert not origin.allowed_origin("http://evil.example", hosts, ports)
    assert not origin.allowed_origin("null", hosts, ports)
    assert origin.allowed_origin("http://evil.example", hosts, ports, ("http://evil.example",))
    assert origin.allowed_origin("null", hosts, ports, ("*",))


def test_config_refuses_short_ap_password_and_bad_access_keys():
    cfg, errors = car_config.validate({"wifi": {"ap": {"password": "1234567"}}})
    assert any(e.startswith("wifi.ap.password: must be 8 to 63") for e in errors), errors
    assert cfg["wifi"]["ap"]["password"] == "tether-car"     # the default, never the short one
    cfg, errors = car_config.validate({"wifi": {"ap": {"password": "12345678"}}})
    assert not errors and cfg["wifi"]["ap"]["password"] == "12345678"
    cfg, errors = car_config.validate({"access": {
        "token": "short", "viewers_need_token": "yes", "allow_no_origin": 0,
        "origins": ["http://ok.example:8080", "ftp://x", "http://x/path", 7, "*"]}})
    assert cfg["access"] == {"token": None, "viewers_need_token": False, "allow_no_origin": True,
                             "origins": ["http://ok.example:8080", "*"]}
    for key in ("access.token:", "access.viewers_need_token:", "access.allow_no_origin:",
                "access.origins[1]:", "access.origins[2]:", "access.origins[3]:"):
        assert any(e.startswith(key) for e in errors), (key, errors)
    cfg, errors = car_config.validate({"access": {"token": "has space in it"}})
    assert cfg["access"]["token"] is None and "URL" in errors[0]
    cfg, errors = car_config.validate({"access": {"token": TOKEN, "viewers_need_token": True}})
    assert not errors and cfg["access"]["token"] == TOKEN


# ------------------------------------------------------------ origin, firmware

def test_origin_check_at_the_handshake(open_car):
    car = open_car()
    p = car.port
    own = "127.0.0.1:%d" % p
    assert handshake(p)[0] == 101                                   # no Origin: a script
    assert handshake(p, Origin="http://" + own)[0] == 101           # the page we served
    assert handshake(p, Origin="http://localhost:%d" % p)[0] == 101
    assert handshake(p, Origin="http://tether-car.local:%d" % p)[0] == 101   # mDNS name
    for bad in ("http://evil.example", "http://evil.example:%d" % p, "http://127.0.0.1:1",
                "null", "http://127.0.0.1.evil.example:%d" % p, "garbage"):
        status, _, body = handshake(p, Origin=bad)
        assert status == 403, bad
        assert b"origin" in body and b"not allowed" in body
    # DNS rebinding: evil.example now resolves to the car, so the browser sends
    # Host and Origin that agree with each other -- and is still refused.
    status, _, _ = handshake(p, host="evil.example:%d" % p, Origin="http://evil.example:%d" % p)
    assert status == 403
    # A refused browser never became a client: the car still has every slot.
    async def check():
        clients = [await Client.connect(car) for _ in range(6)]
        for c in clients:
            await c.close()
    run(check())


def test_origin_allow_list_and_clients_without_origin(open_car):
    car = open_car({"origins": ["http://laptop.example:3000"], "allow_no_origin": False})
    p = car.port
    assert handshake(p, Origin="http://laptop.example:3000")[0] == 101
    assert handshake(p, Origin="http://LAPTOP.example:3000")[0] == 101
    assert handshake(p, Origin="http://laptop.example:3001")[0] == 403
    status, _, body = handshake(p)
    assert status == 403 and b"Origin header is required" in body


def test_listen_host_counts_as_our_name():
    # main.py --host H adds H to our names (the harness always listens on
    # 127.0.0.1, so this is checked on own_hosts itself, on the Unix port).
    code = ("import json\nfrom car.boot import own_hosts\nfrom car import lan\n"
            "print(json.dumps([own_hosts('192.168.1.7'), own_hosts('0.0.0.0'), lan.addresses()]))")
    out = run_micropython(code)
    assert out.returncode == 0, out.stderr
    specific, every, lan = json.loads(out.stdout)
    assert specific == ["127.0.0.1", "localhost", "::1", "192.168.1.7"]
    # Listening on every address: the computer's own (non-loopback) addresses are ours too.
    assert every == ["127.0.0.1", "localhost", "::1"] + lan
    assert not any(a.startswith("127.") for a in lan)


# ------------------------------------------------------------- token, firmware

def test_token_needed_to_drive_stop_always_works(open_car):
    car = open_car({"token": TOKEN})

    async def scenario():
        anon = await Client.connect(car)
        wrong = await Client.connect(car, "/ws?token=" + TOKEN[:-1] + "x")
        driver = await Client.connect(car, "/ws?token=" + TOKEN)
        assert anon.hello["role"] == "viewer"
        for c in (anon, wrong):
            await c.drive(0.8)
            err = await c.reply()
            assert err["type"] == "error" and err["code"] == "forbidden" and err["field"] == "token", err
            assert "token" in err["message"]
            for msg in ({"type": "speed_limit", "value": 0.2},
                        {"type": "actuator", "name": "horn", "value": True}):
                await c.send(msg)
                assert (await c.reply())["code"] == "forbidden"
            await c.ping(5)                                   # ping is not refused
        t = await anon.latest()
        assert stopped(t) and t["driver"] is None and t["horn"] is False and t["speed_limit"] == 1.0
        # The token holder drives ...
        await driver.drive(0.6)
        assert (await driver.reply()) == {"type": "role", "role": "driver"}
        await anon.wait_for(moving)
        # ... and a client without the token can still stop it (never refused).
        await anon.send({"type": "stop"})
        arrived, t = await anon.wait_for(stopped, timeout=1.0)
        assert t["driver"] == driver.hello["id"] and t["stopped_by"] == anon.hello["id"]
        # The stop holds; re-arming needs the token too, like driving.
        await anon.send({"type": "resume"})
        assert (await anon.reply())["code"] == "forbidden"
        await driver.send({"type": "resume"})
        await driver.drive(0.5)
        await anon.wait_for(moving)
        for c in (anon, wrong, driver):
            await c.close()
    run(scenario())


def test_token_percent_escaped_in_url_is_accepted(open_car):
    car = open_car({"token": TOKEN})

    async def scenario():
        escaped = "".join("%%%02X" % ord(ch) for ch in TOKEN)
        c = await Client.connect(car, "/ws?x=1&token=" + escaped)
        await c.drive(0.3)
        assert (await c.reply())["role"] == "driver"
        await c.close()
    run(scenario())


def test_viewers_need_token(open_car):
    car = open_car({"token": TOKEN, "viewers_need_token": True})
    p = car.port
    status, _, body = handshake(p)
    assert status == 403 and b"token" in body
    assert handshake(p, "/ws?token=nope-nope")[0] == 403
    assert handshake(p, "/ws?token=" + TOKEN)[0] == 101
    # A token holder from a foreign page is still refused: both checks apply.
    assert handshake(p, "/ws?token=" + TOKEN, Origin="http://evil.example")[0] == 403

    async def refused():
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(car.ws_url + "/ws")
        assert info.value.response.status_code == 403
    asyncio.run(refused())


def test_files_outside_web_are_never_served(open_car):
    car = open_car({"token": TOKEN})
    p = car.port
    # real files next to web/ (config.json is there once made from the example)
    assert os.path.exists(os.path.join(ROOT, "config.example.json")) and os.path.exists(os.path.join(ROOT, "main.py"))
    assert request(p, "/index.html")[0] == 200
    for path in ("/config.json", "/../config.json", "/%2e%2e/config.json", "/..%2fconfig.json",
                 "/web/../config.json", "//config.json", "/./config.json", "/main.py",
                 "/config.example.json", "/lib/car/access.py", "/../lib/car/app.py",
                 "/%2E%2E/%2E%2E/etc/passwd", "/..\\config.json", "/.%2e/config.json",
                 "/index.html/../../config.json", "/.git/config", "/../config.example.json",
                 "/%2e%2e/config.example.json", "/../main.py", "/..%2fmain.py"):
        status, _, body = request(p, path)
        assert status in (400, 404), (path, status)
        assert TOKEN.encode() not in body
    # Absolute-form and odd targets are refused before any file lookup.
    status, _, _ = raw_request(p, b"GET http://127.0.0.1/config.json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400


# ------------------------------------------------------------- the page

@pytest.mark.slow
def test_page_passes_its_token_to_the_car(open_car):
    pytest.importorskip("playwright.sync_api")
    chromium = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
    if not os.access(chromium, os.X_OK):
        pytest.skip("no Chromium")
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, ROOT)
    try:
        from tools.web import build_web  # the car serves web/X.gz first: make them current
    finally:
        sys.path.pop(0)
    assert build_web.main([]) == 0
    car = open_car({"token": TOKEN})
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]

    def watch_drive(seconds):
        """The first telemetry showing motion within `seconds` (sync client:
        Playwright's sync API owns this thread's event loop)."""
        import time
        from websockets.sync.client import connect
        with connect(car.ws_url + "/ws", proxy=None, max_queue=None) as obs:
            deadline = time.monotonic() + seconds
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no motion within %.1f s" % seconds)
                try:
                    t = json.loads(obs.recv(timeout=left))
                except TimeoutError:
                    continue
                if t["type"] == "telemetry" and moving(t):
                    return t

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=args)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            errors = []
            # Without the token: connected (origin is ours) but view only.
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(car.url + "/")
            page.wait_for_selector("body[data-conn=online]", timeout=10000)
            page.keyboard.down("w")
            page.wait_for_selector("#toast:not([hidden])", timeout=5000)
            assert "token" in page.locator("#toast").inner_text()
            with pytest.raises(AssertionError):
                watch_drive(0.6)
            page.keyboard.up("w")
            page.close()
            # With ?token= in the page's URL: it drives.
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(car.url + "/?token=" + TOKEN)
            page.wait_for_selector("body[data-conn=online]", timeout=10000)
            page.keyboard.down("w")
            t = watch_drive(5)
            assert t["motor"]["left"] > 0
            page.keyboard.up("w")
            assert not errors, errors
        finally:
            browser.close()
