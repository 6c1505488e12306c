"""Over-the-air updates (docs/updates.md), fault by fault. Every test ends with
the car booting and serving its page. The car is the real firmware on the Unix
port in its own folder; updates are built and sent by the real tools/board/ota.py."""
import asyncio
import concurrent.futures
import json
import os
import random
import shutil
import socket
import subprocess
import time

import pytest

from support.car import Client, kept_driving, run, stopped
from support.ota import Car, install_app, ota, put, tree_hashes, update_body
from support.processes import stopped_after
from support.wsraw import request

TOKEN = "s3cret-Token_42"


@pytest.fixture(scope="module")
def update():
    """The staged app for the Unix port (x64 .mpy), labelled as a new version."""
    files = ota.build("x64", version_label="test.1", log=lambda m: None)
    return files, ota.version_of(files)


@pytest.fixture(scope="module")
def broken_update():
    """A new app whose car/app.py raises as it is imported."""
    files = ota.build("x64", version_label="broken.1", patch=break_app, log=lambda m: None)
    return files, ota.version_of(files)


@pytest.fixture
def cars():
    yield from stopped_after(Car)


def cut_at_every_step(golden, tmp_path, cars, micropython, recovered, workers=2):
    """Power-cut tests: for step = 1, 2, ..., a copy of the `golden` tree boots with
    the power cut at that step (its own folder and port); with the power back it
    must boot again and pass `recovered(car, folder)`. Steps run `workers` at a
    time until one boot ends before its cut; every step before that one must have
    been cut and recovered. Returns how many steps were cut."""
    def cut_at(step):
        work = str(tmp_path / ("app-%d" % step))
        shutil.copytree(golden, work)
        car = cars(work, micropython=micropython)
        rc = car.run_once(env={"TETHER_OTA_CUT": str(step)})
        if rc == 75:  # the work finished before the cut
            return False
        assert rc == 9, (step, rc, car.output()[-2000:])
        car.boot()  # power back: the work resumes, reboots, the app runs
        try:
            recovered(car, work)
        except AssertionError as e:
            raise AssertionError("power cut at step %d: %s" % (step, e)) from e
        car.stop()
        shutil.rmtree(work)
        return True

    finished = None  # the first step whose work ended before its cut
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        running = {}
        step = 0
        while running or finished is None:
            while finished is None and len(running) < workers:
                step += 1
                running[pool.submit(cut_at, step)] = step
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                n = running.pop(future)
                if not future.result() and (finished is None or n < finished):  # raises a failed check
                    finished = n
    return finished - 1

def fast_micropython():
    """The ESP32 board proxy when it is built: a native binary that starts in
    2 ms (the venv's micropython is a CPython wrapper, ~60 ms). The every-step
    tests start the car ~250 times."""
    from support.micropython import PROXY_DIR
    path = os.path.join(PROXY_DIR, "micropython-esp32")
    return path if os.path.exists(path) else None


def for_car(car, files, version, patch=None):
    """The update staged for the architecture `car` reports (the proxy's x86)."""
    march = ota.march_for(car.info())
    if march == "x64":
        return files, version
    files = ota.build(march, version_label=version.split("+")[1], patch=patch, log=lambda m: None)
    return files, ota.version_of(files)


def break_app(src):
    path = os.path.join(src, "lib", "car", "app.py")
    text = open(path).read()
    open(path, "w").write('raise ImportError("broken on purpose")\n' + text)


def check_old_app(car, before):
    """The old app is whole, running, and nothing of the update is left."""
    assert car.version() == "0.1.0"
    assert car.serves_page()
    assert tree_hashes(car.root) == before
    assert car.ota_state() is None


@pytest.mark.slow
def test_update_switches_confirms_and_shows_the_new_version(cars, tmp_path, update):
    files, version = update
    car = cars(install_app(str(tmp_path / "app"))).boot()
    old_sources = [p for p in tree_hashes(car.root) if p.endswith(".py") and p.startswith("lib/")]
    assert old_sources

    async def hello_version():
        client = await Client.connect(car)
        v = client.hello["firmware"]
        await client.close()
        return v
    assert run(hello_version()) == "0.1.0"
    status, answer = put(car.port, *update_body(files, version)[:2])
    assert status == 200, answer
    assert json.loads(answer)["files"] == len(files)
    car.follow()
    assert car.version() == version and run(hello_version()) == version
    assert car.info()["state"] == "trial"
    assert car.serves_page()
    # Confirmed after confirm_s (2 s here): the trial marker is gone, and the
    # old .py sources (which would shadow the new .mpy) are gone too.
    deadline = time.monotonic() + 10
    while "trial" in car.ota_state() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert car.ota_state() == ["booted", "old", "plan"], car.ota_state()
    assert car.info()["state"] == "idle"
    assert "new app confirmed after 2 s" in car.output()
    now = tree_hashes(car.root)
    assert not [p for p in old_sources if p in now]
    assert now == {rel: ota.hashlib.sha256(data).hexdigest() for rel, data in files}
    assert car.exits == [75, 75]  # received -> reboot, switched -> reboot
    # A confirmed app survives the next boot, which clears the leftovers.
    car.stop()
    car = cars(car.root).boot()
    assert car.version() == version and car.ota_state() is None
    assert tree_hashes(car.root) == now


@pytest.mark.slow
def test_make_ota_tool_against_the_simulated_car(cars, tmp_path):
    car = cars(install_app(str(tmp_path / "app"))).boot()
    supervisor = [True]

    def keep_running():  # what make sim's loop does while the tool waits
        import threading

        def loop():
            while supervisor[0]:
                rc = car.proc.poll()
                if rc is not None and supervisor[0]:
                    car.exits.append(rc)
                    if rc == 75:
                        car.spawn()
                time.sleep(0.02)
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        return t
    t = keep_running()
    out = subprocess.run([ota.sys.executable, os.path.join(ota.ROOT, "tools", "board", "ota.py"),
                          "127.0.0.1:%d" % car.port, "--confirm-s", "1"], capture_output=True, text=True, timeout=120)
    supervisor[0] = False
    t.join()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "update took" in out.stdout and "confirmed after" in out.stdout, out.stdout
    new = car.version()
    assert new.startswith("0.1.0+") and new in out.stdout
    assert car.serves_page()


@pytest.mark.slow
def test_upload_cut_at_many_offsets_keeps_the_old_app(cars, tmp_path, update):
    files, version = update
    car = cars(install_app(str(tmp_path / "app"))).boot()
    before = tree_hashes(car.root)
    man, body, starts = update_body(files, version)
    rng = random.Random(15)
    offsets = sorted(set([0, 1, len(man) // 2] + starts[:-1] + [s + 1 for s in starts[1:12]]
                         + [rng.randrange(len(body)) for _ in range(12)] + [len(body) - 1]))
    assert len(offsets) >= 20
    for cut in offsets:
        status, answer = put(car.port, man, body, send=cut)
        assert status == 400, (cut, status, answer)
        assert "body ended after %d of %d bytes" % (cut, len(body)) in answer, answer
        assert car.ota_state() is None, (cut, car.ota_state())
    check_old_app(car, before)
    assert car.proc.poll() is None  # never rebooted
    # A power cut mid-upload (the process killed), at file boundaries and
    # anywhere: the next boot throws the half-received files away.
    for cut in [starts[3], starts[len(starts) // 2] + 7, len(body) - 1]:
        s = socket.create_connection(car.target)
        s.sendall(("PUT /api/update HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nX-Tether-Manifest: %d\r\n\r\n"
                   % (len(body), len(man))).encode() + body[:cut])
        deadline = time.monotonic() + 5
        while not os.path.isdir(os.path.join(car.root, ".ota", "new")) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        car.kill()
        s.close()
        assert car.ota_state() == ["new"]
        car.boot()
        check_old_app(car, before)


def test_one_corrupted_byte_is_refused(cars, tmp_path, update):
    files, version = update
    car = cars(install_app(str(tmp_path / "app"))).boot()
    before = tree_hashes(car.root)
    man, body, starts = update_body(files, version)
    for which in (0, len(files) // 2, len(files) - 1):
        spot = starts[which] + (starts[which + 1] - starts[which]) // 2
        bad = bytearray(body)
        bad[spot] ^= 0x01
        status, answer = put(car.port, man, bytes(bad))
        assert status == 400 and "sha256 of %s does not match" % files[which][0] in answer, answer
        check_old_app(car, before)
    # The manifest itself damaged: refused naming the field, nothing written.
    bad_man = man.replace(b'"files":[[', b'"files":[["../../etc/passwd",1,"' + b"0" * 64 + b'"],[', 1)
    status, answer = put(car.port, bad_man, bad_man + body[len(man):])
    assert status == 400 and "files[0] path" in answer, answer
    check_old_app(car, before)


@pytest.mark.slow
def test_power_cut_at_every_step_of_the_switch(cars, tmp_path, update):
    mp = fast_micropython()
    golden = install_app(str(tmp_path / "golden"))
    car = cars(golden, micropython=mp).boot()
    files, version = for_car(car, *update)
    status, answer = put(car.port, *update_body(files, version)[:2])
    assert status == 200, answer
    assert car.wait_exit() == 75
    assert car.ota_state() == ["new", "pending"]
    new_tree = {rel: ota.hashlib.sha256(data).hexdigest() for rel, data in files}

    def recovered(trial, work):  # the switch resumed: the new app runs on trial
        assert trial.version() == version
        assert trial.serves_page()
        assert trial.ota_state() == ["booted", "old", "plan", "trial"], trial.ota_state()
        tree = tree_hashes(work)
        assert tree == new_tree, set(tree) ^ set(new_tree)

    steps = cut_at_every_step(golden, tmp_path, cars, mp, recovered)
    print("switch: cut at each of %d steps" % steps)
    assert steps > 50, steps  # renames of every file, the plan, the marker


@pytest.mark.slow
def test_new_app_that_crashes_on_import_rolls_back(cars, tmp_path, broken_update):
    files, version = broken_update
    car = cars(install_app(str(tmp_path / "app"))).boot()
    before = tree_hashes(car.root)
    status, answer = put(car.port, *update_body(files, version)[:2])
    assert status == 200, answer
    car.follow()  # received, switched, crashed on trial, rolled back
    assert car.exits == [75, 75, 75, 75], car.exits
    out = car.output()
    assert "broken on purpose" in out and "rolled back to the previous app" in out
    check_old_app(car, before)


@pytest.mark.slow
def test_new_app_that_never_confirms_rolls_back(cars, tmp_path, update):
    # A power cut (or a hang the watchdog resets) before confirm_s: the next
    # boot does not keep the unconfirmed app.
    files, version = update
    car = cars(install_app(str(tmp_path / "app"))).boot()
    before = tree_hashes(car.root)
    assert put(car.port, *update_body(files, version, confirm_s=30)[:2])[0] == 200
    car.follow()
    assert car.version() == version
    car.kill()
    car.boot()
    check_old_app(car, before)
    assert "did not confirm itself" in car.output()


@pytest.mark.slow
def test_power_cut_at_every_step_of_the_rollback(cars, tmp_path, broken_update):
    mp = fast_micropython()
    golden = install_app(str(tmp_path / "golden"))
    car = cars(golden, micropython=mp).boot()
    files, version = for_car(car, *broken_update, patch=break_app)
    before = tree_hashes(golden)
    assert put(car.port, *update_body(files, version)[:2])[0] == 200
    assert car.wait_exit() == 75  # received
    assert car.run_once() == 75  # switched
    assert car.run_once() == 75  # crashed on trial: the next boot rolls back
    assert car.ota_state() == ["booted", "old", "plan", "trial"], car.ota_state()
    shutil.copytree(golden, str(tmp_path / "saved"))
    assert car.run_once() == 75  # (measured once whole: rolled back, reboots)
    assert car.ota_state() is None and tree_hashes(golden) == before
    shutil.rmtree(golden)
    shutil.copytree(str(tmp_path / "saved"), golden)

    def recovered(again, work):  # the rollback resumed: the old app runs
        check_old_app(again, before)

    steps = cut_at_every_step(golden, tmp_path, cars, mp, recovered)
    print("rollback: cut at each of %d steps" % steps)
    assert steps > 40, steps


def test_disk_full_mid_upload_refused_cleanly(cars, tmp_path, update):
    # The car's folder on its own tmpfs (a user + mount namespace: no root
    # needed), so the flash really fills up: first too small for the
    # update (refused by the statvfs check before writing), then filled by
    # another writer after the check passed (ENOSPC in the middle).
    files, version = update
    src = install_app(str(tmp_path / "src"))
    size_kb = sum((os.path.getsize(os.path.join(d, f)) + 4095) // 4096 * 4 for d, _, fs in os.walk(src) for f in fs)
    # Room for the app, and for an update of it: its new files and a copy of
    # each file they replace (car/ota.py's statvfs check), whatever the app's size.
    mnt = str(tmp_path / "flash")
    os.makedirs(mnt)
    wrap = ["unshare", "-Urm", "sh", "-c", 'mount -t tmpfs -o size=%dk tmpfs "%s" && cp -r "%s"/. "%s" '
            '&& cd "%s" && exec "$0" "$@"' % (size_kb * 3 + 128, mnt, src, mnt, mnt)]
    if subprocess.run(["unshare", "-Urm", "true"]).returncode != 0:
        pytest.skip("no user namespaces here (unshare -Urm)")
    car = Car(mnt, prefix=wrap)
    try:
        car.boot()
        assert car.serves_page()
        # The car's view of its own flash, from outside its mount namespace.
        flash = "/proc/%d/root%s" % (car.proc.pid, mnt)
        before = tree_hashes(flash)
        free = car.info()["free"]
        man, body, starts = update_body(files, version)
        # 1. Too little room: refused before a byte is written.
        filler = os.path.join(flash, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (free - len(body) // 2))
        status, answer = put(car.port, man, body)
        assert status == 507 and "needs" in answer and "free" in answer, answer
        assert not os.path.exists(os.path.join(flash, ".ota"))
        os.remove(filler)
        # 2. Room at the check, none a moment later.
        s = socket.create_connection(car.target, timeout=10)
        s.sendall(("PUT /api/update HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nX-Tether-Manifest: %d\r\n\r\n"
                   % (len(body), len(man))).encode() + body[:starts[2]])
        deadline = time.monotonic() + 5
        while not os.path.isdir(os.path.join(flash, ".ota", "new")) and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            with open(filler, "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:  # full: ENOSPC
            pass
        assert os.statvfs(flash).f_bavail == 0
        s.sendall(body[starts[2]:])
        from support.wsraw import read_response
        status, _, answer = read_response(s)
        s.close()
        assert status == 507 and b"flash full after" in answer and b"nothing was changed" in answer, answer
        assert not os.path.exists(os.path.join(flash, ".ota"))
        os.remove(filler)
        assert tree_hashes(flash) == before
        assert car.version() == "0.1.0" and car.serves_page()
    finally:
        car.stop()


@pytest.mark.slow
def test_bad_update_requests_answered_at_once_and_the_driver_undisturbed(cars, tmp_path, update):
    files, version = update
    car = cars(install_app(str(tmp_path / "app"), access={"token": TOKEN},
                           limits={"deadman_ms": 1000})).boot()
    before = tree_hashes(car.root)
    man, body, _ = update_body(files, version)
    results = {}

    async def scenario():
        driver = await Client.connect(car, "/ws?token=" + TOKEN)
        loop = asyncio.get_running_loop()

        def timed(fn):
            t = time.monotonic()
            r = fn()
            return r, time.monotonic() - t

        async def bad(name, fn):
            r, took = await loop.run_in_executor(None, timed, fn)
            results[name] = (r, max(took, results.get(name, (None, 0))[1]))

        async with kept_driving(driver) as start:  # the motors never stop meanwhile
            while time.monotonic() - start < 1.0:
                await bad_round(bad)
        await driver.close()

    async def bad_round(bad):
        await bad("no token", lambda: put(car.port, man, body))
        await bad("wrong token", lambda: put(car.port, man, body, token=TOKEN + "x"))
        await bad("driving", lambda: put(car.port, man, body, token=TOKEN))
        await bad("huge", lambda: put(car.port, man, b"", token=TOKEN, headers={"Content-Length": str(10 ** 12)}))
        await bad("no length", lambda: put(car.port, man, b"", token=TOKEN, headers={"Content-Length": None}))
        await bad("chunked", lambda: put(car.port, man, b"", token=TOKEN,
                                         headers={"Content-Length": None, "Transfer-Encoding": "chunked"}))
        await bad("post", lambda: request(car.port, "/api/update?token=" + TOKEN, method="POST")[:1])
    run(scenario())
    (status, answer), took = results["no token"]
    assert status == 403 and "token" in answer
    assert results["wrong token"][0][0] == 403
    (status, answer), took = results["driving"]
    assert status == 409 and "driving" in answer, answer
    assert results["huge"][0][0] == 413
    (status, answer), _ = results["no length"]
    assert status == 411 and "Content-Length" in answer
    assert results["chunked"][0][0] == 411
    assert results["post"][0][0] == 405
    for name, (_, took) in results.items():
        assert took < 0.5, (name, took)  # at once
    # Lengths that do not add up, and a slow body (request_timeout_ms, 5 s).
    status, answer = put(car.port, man, body + b"x", token=TOKEN)
    assert status == 400 and "does not match the manifest" in answer
    t = time.monotonic()
    s = socket.create_connection(car.target, timeout=15)
    s.sendall(("PUT /api/update?token=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nX-Tether-Manifest: %d\r\n\r\n"
               % (TOKEN, len(body), len(man))).encode() + body[:5000])
    from support.wsraw import read_response
    status, _, answer = read_response(s)
    s.close()
    assert status == 408 and 4.5 < time.monotonic() - t < 7, (status, time.monotonic() - t)
    check_old_app(car, before)


@pytest.mark.slow
def test_driving_refused_while_an_update_is_received(cars, tmp_path, update):
    files, version = update
    car = cars(install_app(str(tmp_path / "app"))).boot()
    man, body, starts = update_body(files, version)

    async def scenario():
        viewer = await Client.connect(car)
        s = socket.create_connection(car.target, timeout=10)
        s.sendall(("PUT /api/update HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nX-Tether-Manifest: %d\r\n\r\n"
                   % (len(body), len(man))).encode() + body[:starts[3]])
        _, msg = await viewer.wait_for(lambda m: True)  # telemetry keeps flowing
        update_msg = None
        while update_msg is None:
            m = await viewer.reply()
            if m["type"] == "update":
                update_msg = m
        assert update_msg["state"] == "receiving" and update_msg["version"] == version
        await viewer.drive(0.5)
        err = await viewer.reply()
        while err["type"] == "update":
            err = await viewer.reply()
        assert err["type"] == "error" and err["code"] == "updating", err
        _, msg = await viewer.wait_for(lambda m: True)
        assert stopped(msg)
        s.sendall(body[starts[3]:])
        from support.wsraw import read_response
        status, _, answer = await asyncio.get_running_loop().run_in_executor(None, read_response, s)
        s.close()
        assert status == 200, answer
        await viewer.closed.wait()  # the car restarts into the new app
    run(scenario())
    car.follow()
    assert car.version() == version and car.serves_page()


@pytest.mark.browser
def test_page_shows_the_update_and_reconnects_on_the_new_version(cars, tmp_path, update):
    """In real headless Chromium: the page shows the version, the update in
    progress while it is received, and the new version after the restart."""
    from support.browser import CHROME_ARGS, find_chromium, missing, wait_online
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright Python package is not installed")
    path = find_chromium()
    if not path:
        missing("no Chromium found")
    files, version = update
    subprocess.run([ota.sys.executable, os.path.join(ota.ROOT, "tools", "web", "build_web.py")], check=True,
                   capture_output=True)
    car = cars(install_app(str(tmp_path / "app"))).boot()
    man, body, starts = update_body(files, version)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROME_ARGS)
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto("http://127.0.0.1:%d/" % car.port)
            wait_online(page)
            assert page.locator("#version").inner_text() == "0.1.0"
            s = socket.create_connection(car.target, timeout=10)
            s.sendall(("PUT /api/update HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nX-Tether-Manifest: %d\r\n\r\n"
                       % (len(body), len(man))).encode() + body[:starts[len(starts) // 2]])
            page.wait_for_function("document.getElementById('banner').textContent.startsWith("
                                   "'Updating to %s: ')" % version, timeout=5000)
            assert page.locator("#banner").is_visible()
            s.sendall(body[starts[len(starts) // 2]:])
            s.close()
            car.follow()
            page.wait_for_function("document.getElementById('version').textContent === '%s'"
                                   % version, timeout=15000)
            wait_online(page)
            assert not page.locator("#banner").is_visible()
            assert not errors, errors
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.parametrize("chip", ["esp32", "esp8266"])
def test_update_on_a_board_proxy(cars, tmp_path, chip):
    """The whole update on the 32-bit board proxies (the ESP8266's has no
    __file__, str.partition, ...): staged for the architecture the car
    reports, switched, confirmed."""
    from support.micropython import board_proxy
    exe = board_proxy(chip)
    car = cars(install_app(str(tmp_path / "app")), micropython=exe).boot()
    march = ota.march_for(car.info())
    files = ota.build(march, version_label=chip, log=lambda m: None)
    version = ota.version_of(files)
    status, answer = put(car.port, *update_body(files, version, confirm_s=1)[:2])
    assert status == 200, answer
    car.follow()
    assert car.version() == version and car.serves_page()
    deadline = time.monotonic() + 10
    while "trial" in car.ota_state() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert car.info()["state"] == "idle"
    assert all(p.endswith(".mpy") for p in tree_hashes(car.root) if p.startswith("lib/"))


def test_a_plain_car_never_imports_the_update_code(tmp_path):
    """A car that has no update in flight boots without car.update,
    car.ota, car.rest or wsserver.body (their names and code stay out of
    its heap)."""
    from support.micropython import run_micropython
    from support.processes import free_port
    root = install_app(str(tmp_path / "app"))
    probe = os.path.join(root, "probe.py")
    with open(probe, "w") as f:
        f.write("""
import sys
sys.path.insert(0, "lib")
import asyncio
from car import app
serve = app.Car.serve

async def probed(self, *args):
    async def report():
        await asyncio.sleep_ms(300)
        print("MODULES", " ".join(sorted(sys.modules)))
        self.failed = SystemExit(0)
    asyncio.create_task(report())
    await serve(self, *args)

app.Car.serve = probed
sys.argv.clear()
sys.argv.extend(["main.py", "--port", "%d"])
from car.main import main
main(".")
""" % free_port())
    out = run_micropython("probe.py", cwd=root, timeout=30)
    line = [l for l in out.stdout.splitlines() if l.startswith("MODULES")]
    assert line, out.stdout + out.stderr
    modules = set(line[0].split()[1:])
    assert {"car.app", "car.main", "wsserver.server"} <= modules
    assert not modules & {"car.ota", "car.update", "car.rest", "wsserver.body"}, modules


@pytest.mark.slow
def test_app_in_romfs_is_refused_and_the_tool_says_usb(tmp_path):
    """lib/ in a ROMFS image (mounted at /rom, as MicroPython does on a board
    with a ROMFS partition; tools/measure/heap_report.py's layout): the car refuses
    an update over the air and the tool says the board needs USB."""
    sys_path = ota.ROOT
    import sys
    sys.path.insert(0, sys_path)
    from tools.measure import heap_report
    from support.micropython import MicroPythonProcess
    build = build_tree(str(tmp_path / "build"))
    dest = str(tmp_path / "car")
    os.makedirs(dest)
    heap_report.romfs_tree(build, dest)
    car = MicroPythonProcess("romfs_boot.py", cwd=dest)
    try:
        info = ota.info("127.0.0.1", car.port)
        assert info["romfs"] is True
        files = ota.build("x64", version_label="romfs.1", log=lambda m: None)
        version = ota.version_of(files)
        status, answer = put(car.port, *update_body(files, version)[:2])
        assert status == 409 and "ROMFS" in answer and "USB" in answer, answer
        out = subprocess.run([ota.sys.executable, os.path.join(ota.ROOT, "tools", "board", "ota.py"),
                              "127.0.0.1:%d" % car.port], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and "ROMFS" in out.stderr and "USB" in out.stderr, out.stderr
        assert car.poll() is None
        assert request(car.port, "/api/status")[0] == 200
    finally:
        car.stop()


def build_tree(dest):
    """tools/board/stage.py's x64 tree (lib/ as .mpy) with a config, in dest."""
    sys_path = ota.ROOT
    import sys
    if sys_path not in sys.path:
        sys.path.insert(0, sys_path)
    from tools.board import stage
    stage.stage("x64", out_dir=dest, log=lambda m: None)
    return dest
