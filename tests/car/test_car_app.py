"""The car firmware end to end: `micropython main.py` with the simulated car,
driven over real WebSockets on loopback."""
import asyncio
import json
import time
import urllib.request

import pytest

from support import ROOT
from support.car import Client, moving, raw_websocket, run, stopped, write_config
from support.tcp import send_queue

CONTROL_TICK_S = 0.020  # lib/car/app.py TICK_MS
TELEMETRY_S = 0.020  # FAST_LIMITS telemetry_hz 50


def start_car(start_micropython, tmp_path, **kw):
    return start_micropython("main.py", args=["--host", "127.0.0.1", "--config", write_config(tmp_path, **kw)])


def test_prints_url_and_serves_the_page(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path)
    with urllib.request.urlopen(car.url + "/") as r:
        assert r.status == 200 and b"<html" in r.read().lower()
    assert "Tether running at http://127.0.0.1:%d/" % car.port in car.output()


def test_hello_and_telemetry_follow_the_protocol(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path, limits={"deadman_ms": 300})

    async def main():
        c = await Client.connect(car)
        t = await c.latest()
        await c.close()
        return c.hello, t

    hello, t = run(main())
    assert hello["firmware"] == "0.1.0" and hello["device"] == "tether-car"
    assert hello["role"] == "viewer" and isinstance(hello["id"], int)
    assert hello["limits"] == {"max_speed": 1.0, "deadman_ms": 300, "telemetry_hz": 50,
                               "stop_distance_cm": 20}
    assert hello["simulated"] is True and hello["room"] == {"width": 4.0, "height": 3.0}
    assert hello["config_errors"] == []
    assert set(t) == {"type", "seq", "uptime_ms", "motor", "applied", "distance_cm", "battery_v",
                      "rssi", "heap_free", "heap_alloc", "driver", "stopped_by", "speed_limit", "light",
                      "horn", "pose"}
    assert t["motor"] == {"left": 0, "right": 0} and t["applied"] == {"left": 0, "right": 0}
    assert t["driver"] is None and t["stopped_by"] is None and t["speed_limit"] == 1.0
    assert t["heap_free"] > 0 and t["heap_alloc"] > 0 and isinstance(t["rssi"], int)
    assert t["pose"] == {"x": 2.0, "y": 1.5, "heading": 0.0}
    assert 180 < t["distance_cm"] < 200  # nose 0.1 m ahead of the centre, wall at 4 m


@pytest.mark.slow
def test_forward_increases_x_and_positive_steer_turns_right(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path)

    async def main():
        c = await Client.connect(car)
        start = (await c.latest())["pose"]
        await c.drive(0.5, 0)
        assert await c.reply() == {"type": "role", "role": "driver"}
        await c.hold(0.5, 0, 0.5)
        after_forward = (await c.latest())["pose"]
        await c.hold(0, 0.5, 0.5)  # turn in place, right
        after_turn = (await c.latest())["pose"]
        await c.close()
        return start, after_forward, after_turn

    start, fwd, turn = run(main())
    assert fwd["x"] > start["x"] + 0.05, (start, fwd)
    assert abs(fwd["y"] - start["y"]) < 0.01 and abs(fwd["heading"]) < 0.01
    # Heading is counter-clockwise positive: a right turn makes it negative.
    assert turn["heading"] < -0.3, turn


def test_deadman_stops_and_releases_control(start_micropython, tmp_path):
    deadman_ms = 200
    car = start_car(start_micropython, tmp_path, limits={"deadman_ms": deadman_ms})

    async def main():
        c = await Client.connect(car)
        last_sent = await c.drive(0.5, 0)
        await c.reply()  # role: driver
        while not moving(c.telemetry[-1][1] if c.telemetry else {"applied": {"left": 0, "right": 0}}):
            last_sent = await c.drive(0.5, 0)
            await asyncio.sleep(0.02)
        stopped_at, t = await c.wait_for(stopped, timeout=2, since=last_sent)
        role = await c.reply()
        await c.close()
        return (stopped_at - last_sent) * 1000, t, role

    elapsed_ms, t, role = run(main())
    print("deadman %d ms: stop seen %.0f ms after the last drive" % (deadman_ms, elapsed_ms))
    # Not before the deadman; at most one control tick + one telemetry period
    # + 60 ms of scheduling/loopback slack after it (typically 204-218 ms
    # measured in total; the slack is for a loaded 2-core CI machine).
    assert deadman_ms * 0.95 <= elapsed_ms <= deadman_ms + (CONTROL_TICK_S + TELEMETRY_S) * 1000 + 60
    assert t["motor"] == {"left": 0, "right": 0} and t["driver"] is None
    assert role == {"type": "role", "role": "viewer"}


async def drive_until_viewer_sees_motion(driver, viewer):
    await driver.drive(0.6, 0)
    await driver.reply()  # role: driver
    await driver.hold(0.6, 0, 0.1, every=0.03)
    await viewer.wait_for(moving)


def test_driver_close_stops_motors_within_100ms(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path)

    async def one(how):
        viewer = await Client.connect(car)
        driver = await Client.connect(car)
        await drive_until_viewer_sees_motion(driver, viewer)
        started = time.monotonic()
        if how == "close":
            await driver.ws.close()
        else:  # the phone vanishes: TCP connection dropped, no close frame
            driver.ws.transport.abort()
        stopped_at, t = await viewer.wait_for(stopped, timeout=2, since=started)
        await viewer.close()
        return (stopped_at - started) * 1000, t

    for how in ("close", "abort"):
        elapsed_ms, t = run(one(how))
        print("driver %s: viewer saw the motors stop after %.0f ms" % (how, elapsed_ms))
        assert elapsed_ms < 100, how
        assert t["driver"] is None


def test_anyone_can_stop(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path, limits={"deadman_ms": 2000})

    async def main():
        viewer = await Client.connect(car)
        driver = await Client.connect(car)
        await drive_until_viewer_sees_motion(driver, viewer)
        sent = await viewer.send({"type": "stop"})
        stopped_at, t = await viewer.wait_for(stopped, since=sent)
        await viewer.close()
        await driver.close()
        return (stopped_at - sent) * 1000, t

    elapsed_ms, t = run(main())
    assert elapsed_ms < 100
    assert t["motor"] == {"left": 0, "right": 0}


@pytest.mark.slow
def test_a_stop_latches_until_the_driver_resumes(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path, limits={"deadman_ms": 2000})

    async def main():
        viewer = await Client.connect(car)
        driver = await Client.connect(car)
        vid, did = viewer.hello["id"], driver.hello["id"]
        await drive_until_viewer_sees_motion(driver, viewer)
        sent = await viewer.send({"type": "stop"})
        _, t = await viewer.wait_for(lambda m: stopped(m) and m["stopped_by"] == vid, since=sent, timeout=0.2)
        assert t["driver"] == did  # the driver lock is unchanged: still the driver
        # The driver's heartbeat keeps coming for a second: every drive is refused, nothing moves.
        await driver.hold(0.8, 0.2, 1.0, every=0.05)
        refusals = []
        while not driver.replies.empty():
            refusals.append(driver.replies.get_nowait())
        assert len(refusals) >= 15 and all(r["code"] == "stopped" for r in refusals), refusals
        assert "stopped by client %d" % vid in refusals[0]["message"] and "resume" in refusals[0]["message"]
        held = [m for arrived, m in viewer.telemetry if arrived > sent + 0.05]
        assert len(held) >= 40 and all(stopped(m) and m["stopped_by"] == vid for m in held)
        # Only the driver re-arms while it drives: the viewer's resume is refused.
        await viewer.send({"type": "resume"})
        assert (await viewer.reply())["code"] == "not_driver"
        await driver.send({"type": "resume"})
        await viewer.wait_for(lambda m: m["stopped_by"] is None)
        await driver.hold(0.6, 0, 0.1, every=0.03)
        await viewer.wait_for(moving)
        # latch:false does not let a viewer stop the driver without latching.
        await viewer.send({"type": "stop", "latch": False})
        await viewer.wait_for(lambda m: stopped(m) and m["stopped_by"] == vid)
        await driver.send({"type": "resume"})
        await viewer.wait_for(lambda m: m["stopped_by"] is None)
        # The driver letting go of its own controls (latch: false) stops without latching.
        await driver.hold(0.6, 0, 0.1, every=0.03)
        await viewer.wait_for(moving)
        await driver.send({"type": "stop", "latch": False})
        await viewer.wait_for(stopped)
        await driver.hold(0.6, 0, 0.1, every=0.03)
        t = (await viewer.wait_for(moving))[1]
        assert t["stopped_by"] is None and driver.replies.empty()
        # The latch outlives both the stopper and the driver: a newcomer finds it held.
        await viewer.send({"type": "stop"})
        await viewer.wait_for(lambda m: stopped(m) and m["stopped_by"] == vid)
        await viewer.close()
        await driver.close()
        fresh = await Client.connect(car)
        t = await fresh.latest()
        assert t["stopped_by"] == vid and t["driver"] is None and stopped(t)
        await fresh.drive(0.5)
        assert (await fresh.reply())["code"] == "stopped"
        await fresh.send({"type": "resume"})     # nobody drives: anyone may re-arm
        await fresh.wait_for(lambda m: m["stopped_by"] is None)
        await fresh.drive(0.5)
        assert await fresh.reply() == {"type": "role", "role": "driver"}
        await fresh.hold(0.5, 0, 0.2, every=0.05)
        await fresh.wait_for(moving)
        await fresh.close()

    run(main())


def test_second_client_cannot_drive(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path, limits={"deadman_ms": 2000})

    async def main():
        a = await Client.connect(car)
        b = await Client.connect(car)
        await a.drive(0.5, 0)
        await a.reply()
        await a.wait_for(lambda m: m["applied"]["left"] == 0.5)
        await b.drive(-1, 1)
        err = await b.reply()
        speed_err = (await b.send({"type": "speed_limit", "value": 0.2})) and await b.reply()
        # Several telemetry frames later the motors still follow a.
        await b.latest()
        await b.latest()
        t = await b.latest()
        await a.close()
        await b.close()
        return a.hello["id"], err, speed_err, t

    a_id, err, speed_err, t = run(main())
    assert err["type"] == "error" and err["code"] == "not_driver"
    assert str(a_id) in err["message"]
    assert speed_err["code"] == "not_driver"
    assert t["driver"] == a_id and t["speed_limit"] == 1.0
    assert t["motor"] == {"left": 0.5, "right": 0.5} and t["applied"] == {"left": 0.5, "right": 0.5}


BAD_MESSAGES = [
    ("not json", "bad_json", None),
    ('{"type":"fly"}', "unknown_type", "type"),
    ('{"type":"drive","steer":0}', "bad_field", "throttle"),
    ('{"type":"drive","throttle":2,"steer":0}', "bad_field", "throttle"),
    ('{"type":"drive","throttle":0.1,"steer":"x"}', "bad_field", "steer"),
    ('{"type":"drive","throttle":NaN,"steer":0}', "bad_field", "throttle"),
    ('{"type":"drive","throttle":true,"steer":0}', "bad_field", "throttle"),
    ('{"type":"actuator","name":"laser","value":true}', "bad_field", "name"),
    ('{"type":"actuator","name":"pan","value":"left"}', "bad_field", "value"),
    ('{"type":"speed_limit","value":5}', "bad_field", "value"),
    (b'\x01\x02', "bad_json", None),
    ('{"type":"ping","id":"%s"}' % ("x" * 600), "too_large", None),
]


def test_bad_messages_get_errors_and_change_nothing(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path, limits={"deadman_ms": 3000})

    async def main():
        c = await Client.connect(car)
        await c.drive(0.4, 0.1)
        await c.reply()
        before = (await c.wait_for(lambda m: m["applied"]["left"] > 0))[1]
        replies = []
        for text, _, _ in BAD_MESSAGES:
            await c.send(text)
            replies.append(await c.reply())
        rtt = await c.ping(42)  # still open, still answering
        after = await c.latest()
        await c.close()
        return before, replies, after, rtt

    before, replies, after, _ = run(main())
    for (text, code, field), reply in zip(BAD_MESSAGES, replies):
        assert reply["type"] == "error" and reply["code"] == code and reply["field"] == field, (text, reply)
        assert reply["message"]
        if field:
            assert field in reply["message"]
    for key in ("motor", "applied", "speed_limit", "light", "horn", "driver"):
        assert after[key] == before[key], key


def test_actuators_and_speed_limit(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path, limits={"deadman_ms": 2000})

    async def main():
        a = await Client.connect(car)
        b = await Client.connect(car)
        await b.send({"type": "actuator", "name": "light", "value": True})
        await b.send({"type": "actuator", "name": "horn", "value": True})
        await b.send({"type": "actuator", "name": "pan", "value": -45})
        lit = (await a.wait_for(lambda m: m["light"] and m["horn"]))[1]
        await b.close()  # whoever sounded the horn left: it stops
        quiet = (await a.wait_for(lambda m: not m["horn"]))[1]
        await a.drive(1, 0)
        await a.reply()
        await a.send({"type": "speed_limit", "value": 0.5})
        limited = (await a.wait_for(lambda m: m["applied"]["left"] == 0.5))[1]
        await a.close()
        return lit, quiet, limited

    lit, quiet, limited = run(main())
    assert lit["light"] and lit["horn"]
    assert quiet["light"] and not quiet["horn"]
    assert limited["speed_limit"] == 0.5 and limited["motor"] == {"left": 0.5, "right": 0.5}


@pytest.mark.slow
def test_obstacle_guard_refuses_forward_near_a_wall(start_micropython, tmp_path):
    # A 1.2 m room: the wall ahead is 0.5 m from the car's nose.
    car = start_car(start_micropython, tmp_path, limits={"deadman_ms": 2000, "stop_distance_cm": 20},
                    hardware={"width": 1.2, "height": 1.2})

    async def main():
        c = await Client.connect(car)
        await c.drive(1, 0)
        await c.reply()
        blocked = (await c.wait_for(lambda m: (m["distance_cm"] or 999) < 20 and stopped(m), timeout=3))[1]
        await c.hold(1, 0, 0.5)  # keep asking for forward: still refused
        held = await c.latest()
        await c.drive(0, 1)  # turning in place is allowed
        spin = (await c.wait_for(lambda m: m["applied"]["left"] > 0 > m["applied"]["right"]))[1]
        await c.drive(0, 0)
        await c.wait_for(stopped)
        await c.drive(-1, 0)  # so is reversing (facing the wall again after a stop)
        back = (await c.wait_for(lambda m: m["applied"]["left"] < 0 and m["applied"]["right"] < 0))[1]
        await c.close()
        return blocked, held, spin, back

    blocked, held, spin, back = run(main())
    assert blocked["motor"] == {"left": 1, "right": 1}  # commanded, but not applied
    assert held["applied"] == {"left": 0, "right": 0}
    assert held["pose"]["x"] < 1.2 - 0.1 - 0.01  # never reached the wall
    assert held["distance_cm"] > 3
    assert spin["applied"]["left"] > 0
    assert back["applied"]["left"] < 0


def test_bad_config_names_the_key_and_runs_on_defaults(start_micropython, tmp_path):
    bad = {"limits": {"deadman_ms": 10, "telemetry_hz": "fast", "max_speed": 3},
           "wifi": {"ap": {"password": "short"}}, "server": {"max_clients": 99},
           "hardware": {"mode": "sim", "driver": "warp"}}
    path = write_config(tmp_path, raw=json.dumps(bad))
    car = start_micropython("main.py", args=["--config", path])

    async def main():
        c = await Client.connect(car)
        await c.drive(0.3, 0)
        await c.reply()
        t = (await c.wait_for(moving))[1]
        await c.close()
        return c.hello, t

    hello, t = run(main())
    out = car.output()
    assert "config error: limits.deadman_ms: must be an int between 50 and 5000" in out
    assert "config error: limits.telemetry_hz: must be an int between 1 and 50" in out
    assert "config error: limits.max_speed: must be a number between 0 and 1" in out
    assert "config error: wifi.ap.password:" in out
    assert "config error: server.max_clients: must be an int between 1 and 8" in out
    assert "config error: hardware.driver:" in out
    assert hello["limits"] == {"max_speed": 1.0, "deadman_ms": 500, "telemetry_hz": 20,
                               "stop_distance_cm": 20}
    assert t["applied"]["left"] > 0


def test_unreadable_config_runs_on_defaults(start_micropython, tmp_path):
    path = write_config(tmp_path, raw="{ this is not json")
    car = start_micropython("main.py", args=["--config", path])

    async def main():
        c = await Client.connect(car)
        await c.close()
        return c.hello

    assert run(main())["limits"]["deadman_ms"] == 500
    assert "config error: %s: not valid JSON, using defaults" % path in car.output()


@pytest.mark.slow
def test_telemetry_rate_with_four_clients(start_micropython, tmp_path):
    hz = 20
    car = start_car(start_micropython, tmp_path, limits={"telemetry_hz": hz})

    async def main():
        clients = [await Client.connect(car) for _ in range(4)]
        await asyncio.sleep(0.2)
        start = time.monotonic()
        counts = [len(c.telemetry) for c in clients]
        await asyncio.sleep(3)
        counts = [len(c.telemetry) - n for c, n in zip(clients, counts)]
        elapsed = time.monotonic() - start
        for c in clients:
            await c.close()
        return [n / elapsed for n in counts]

    rates = run(main())
    print("telemetry at %d Hz configured, 4 clients: %s Hz" % (hz, ", ".join("%.1f" % r for r in rates)))
    for rate in rates:
        assert hz * 0.8 <= rate <= hz * 1.2


@pytest.mark.slow
def test_client_that_never_reads_delays_nobody(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path, limits={"deadman_ms": 2000})

    async def main():
        viewer = await Client.connect(car)
        driver = await Client.connect(car)
        # Connected, then never reads a byte again (tiny receive buffer), and
        # keeps asking for pongs it will never read.
        stuck = raw_websocket(car.port, rcvbuf=1024)
        await driver.drive(0.2, 0)
        await driver.reply()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # let its socket buffers fill
            stuck.send_text('{"type":"ping","id":1}')
            await driver.drive(0.2, 0)
            await asyncio.sleep(0.01)
        # Proof that it is stuck: its receive buffer is full and the car's
        # kernel send buffer towards it has backed up.
        unread = stuck.unread_bytes()
        backlog = send_queue(car.port, stuck.sock.getsockname()[1])
        # Now measure the others.
        start = time.monotonic()
        n0 = len(viewer.telemetry)
        latencies = []
        for i in range(10):
            throttle = 0.3 + 0.05 * i
            sent = await driver.drive(throttle, 0)
            arrived, _ = await viewer.wait_for(
                lambda m: abs(m["motor"]["left"] - throttle) < 1e-3, since=sent)
            latencies.append((arrived - sent) * 1000)
            stuck.send_text('{"type":"ping","id":1}')
            await asyncio.sleep(0.1)
        rate = (len(viewer.telemetry) - n0) / (time.monotonic() - start)
        rtt = await driver.ping("after") * 1000
        stuck.close()
        await viewer.close()
        await driver.close()
        return unread, backlog, latencies, rate, rtt

    unread, backlog, latencies, rate, rtt = run(main())
    print("stuck client: %d bytes unread, %d bytes backed up in the car's socket; "
          "drive->telemetry latency max %.0f ms; viewer telemetry %.1f Hz; ping %.0f ms"
          % (unread, backlog, max(latencies), rate, rtt))
    assert unread >= 1000 and backlog >= 8000
    assert max(latencies) < 100
    assert rate >= 50 * 0.8
    assert rtt < 100


CRASH_SCRIPT = """
import hardware
from car import app

made = []
real_create = hardware.create

def create(cfg, checked=False):
    hw = real_create(cfg, checked)
    made.append(hw)
    real_tick = hw.tick
    count = [0]
    def tick(now):
        count[0] += 1
        if count[0] == 5:
            hw.set_motors(0.5, 0.5)   # the motors are running...
        if count[0] == 10:
            print("before crash", hw.applied())
            raise RuntimeError("boom")  # ...when the control loop crashes
        real_tick(now)
    hw.tick = tick
    return hw

hardware.create = create
try:
    app.run(config_path="config.json", host="127.0.0.1", port=%d, static_dir="web")
except RuntimeError as e:
    print("run raised", e, "motors", made[0].applied())
"""


def test_a_crash_propagates_with_the_motors_stopped():
    from support.micropython import run_micropython
    from support.processes import free_port

    result = run_micropython(CRASH_SCRIPT % free_port(), timeout=10)
    assert "before crash (0.625, 0.625)" in result.stdout, result.stdout + result.stderr
    assert "run raised boom motors (0.0, 0.0)" in result.stdout, result.stdout + result.stderr


SKIPPED_TELEMETRY_SCRIPT = """
import sys
sys.path.insert(0, "lib")
from car import app

real_telemetry = app.Car.telemetry
calls = [0]

def telemetry(self, now):
    calls[0] += 1
    if 3 <= calls[0] <= 5:  # as when a client's request code is loading into a full heap
        raise MemoryError("memory allocation failed, allocating 160 bytes")
    return real_telemetry(self, now)

app.Car.telemetry = telemetry
port = int(sys.argv[sys.argv.index("--port") + 1])
app.run(config_path=sys.argv[sys.argv.index("--config") + 1], host="127.0.0.1", port=port, static_dir="web")
"""


def test_telemetry_that_finds_no_room_is_skipped_and_the_car_keeps_running(start_micropython, tmp_path):
    script = tmp_path / "skipped_telemetry.py"
    script.write_text(SKIPPED_TELEMETRY_SCRIPT)
    car = start_micropython(str(script), args=["--config", write_config(tmp_path)])

    async def main():
        c = await Client.connect(car)
        await asyncio.sleep(0.5)  # 25 periods at 50 Hz: three of them fail
        await c.send({"type": "drive", "throttle": 0.5, "steer": 0})
        moved = await c.wait_for(lambda m: m["motor"]["left"] > 0)
        await c.close()
        return c.telemetry, moved

    telemetry, moved = run(main())
    seqs = [m["seq"] for _, m in telemetry]
    assert len(seqs) >= 10 and moved, seqs  # still sending, and still driving
    assert car.proc.poll() is None and "Traceback" not in car.output() and "MemoryError" not in car.output()


def test_bad_command_line_prints_usage():
    from support.micropython import run_micropython

    result = run_micropython("main.py", "--port", "http")
    assert result.returncode == 2
    assert "usage: micropython main.py --port N" in result.stdout


# --- a maker's mistakes on a computer: a sentence, not a traceback ---------------

def run_main(tmp_path, *args, config=None, timeout=10):
    import subprocess
    from support.micropython import MICROPYTHON, ROOT
    cfg = tmp_path / "mistake.json"
    cfg.write_text(json.dumps(config or {}))
    return subprocess.run([MICROPYTHON, "main.py", "--config", str(cfg)] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_real_hardware_on_a_computer_says_it_needs_a_board(tmp_path):
    from support.processes import free_port
    r = run_main(tmp_path, "--port", str(free_port()), config={"hardware": {"mode": "real"}})
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "Traceback" not in out, out
    assert 'hardware.mode is "real" but this is a computer' in out and '"auto"' in out


def test_port_in_use_names_it(tmp_path):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = run_main(tmp_path, "--port", str(port), "--host", "127.0.0.1")
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    assert "port %d is in use" % port in out


def test_ctrl_c_stops_quietly_with_motors_off(start_micropython, tmp_path):
    import signal
    car = start_car(start_micropython, tmp_path, limits={"deadman_ms": 5000})

    async def drive():
        c = await Client.connect(car)
        await c.drive(0.8)
        await c.reply()
        await c.wait_for(moving)
        return c

    async def main():
        c = await drive()
        car.proc.send_signal(signal.SIGINT)  # what Ctrl-C in `make sim` delivers
        await c.closed.wait()
        return car.proc.wait(5)

    code = run(main())
    out = car.output()
    assert code == 0 and "Traceback" not in out, out
    assert out.rstrip().endswith("stopped; motors are off")


def own_lan_address():
    """This computer's address on its LAN, as the kernel would pick it for outside
    traffic (a UDP connect sends nothing), or None without a route."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 9))
        except OSError:
            return None
        ip = s.getsockname()[0]
    return None if ip.startswith("127.") else ip


def test_all_addresses_prints_urls_a_phone_can_open_and_accepts_their_origin(start_micropython, tmp_path):
    """make sim HOST=0.0.0.0: the printed URLs are this computer's own addresses (not
    0.0.0.0), and a page loaded from one of them may connect. Only loopback is used."""
    from support.wsraw import request, upgrade_headers
    lan = own_lan_address()
    if lan is None:
        import pytest
        pytest.skip("no LAN address on this machine")
    car = start_micropython("main.py", args=["--host", "0.0.0.0", "--config", write_config(tmp_path)])
    out = car.output()
    assert "http://%s:%d/" % (lan, car.port) in out and "0.0.0.0" not in out, out

    def status(origin):
        return request(car.port, "/ws", dict(upgrade_headers(), Origin=origin))[0]

    assert status("http://%s:%d" % (lan, car.port)) == 101
    assert status("http://127.0.0.1:%d" % car.port) == 101
    assert status("http://203.0.113.7:%d" % car.port) == 403      # not one of ours


def test_hello_carries_the_config_errors_the_car_started_with(start_micropython, tmp_path):
    path = write_config(tmp_path, limits={"deadman_ms": 10, "deadmen_ms": 1})
    car = start_micropython("main.py", args=["--host", "127.0.0.1", "--config", path])

    async def main():
        c = await Client.connect(car)
        await c.close()
        return c.hello

    hello = run(main())
    assert sorted(hello["config_errors"]) == ["limits.deadman_ms: must be an int between 50 and 5000",
                                              "limits.deadmen_ms: unknown key (ignored)"], hello
    assert "config error: limits.deadman_ms: must be an int between 50 and 5000" in car.output()


def _bench():
    import sys

    sys.path.insert(0, ROOT)
    from tools.measure import bench

    return bench


def test_drive_reaches_the_motors_without_waiting_for_a_tick():
    # The control tick slowed to 1 s: a command that waited for a tick would
    # take 500 ms on average (and the 500 ms deadman would stop it first).
    from support.micropython import MICROPYTHON

    bench = _bench()
    proc, port, _ = bench.start_car(MICROPYTHON, tick_ms=1000)
    try:
        samples = bench.motor_latency(proc, port, 20)
    finally:
        proc.kill()
        proc.wait()
    print("command-to-motor latency with a 1 s tick: p50 %d us, max %d us" % (samples[10], samples[-1]))
    assert samples[10] < 50_000 and samples[-1] < 400_000, samples


def test_an_immediate_motor_write_is_still_ramped():
    # slew 1/s: the write a command causes at once is the ramp's step for the
    # time since the last motor update (<= MAX_DT_MS 100 ms -> <= 0.1), not
    # the full command.
    import os
    import selectors

    from support.micropython import MICROPYTHON

    bench = _bench()
    proc, port, _ = bench.start_car(MICROPYTHON, limits={"slew": 1.0})
    proto = bench.WSProto()
    conn = proto.open(port, "/ws")
    try:
        conn.sock.sendall(bench.ws_frame(b'{"type":"drive","throttle":1.0,"steer":0}'))
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout.fileno(), selectors.EVENT_READ)
        out = b""
        deadline = time.monotonic() + 5
        while b"motor" not in out or not out.split(b"motor", 1)[1].count(b"\n"):
            assert time.monotonic() < deadline, out
            if sel.select(0.5):
                out += os.read(proc.stdout.fileno(), 4096)
        first = float(out.split(b"motor", 1)[1].split(b"\n")[0].split()[1])
    finally:
        proto.close(conn, wait=False)
        proc.kill()
        proc.wait()
    assert 0 < first <= 0.1 + 1e-9, out
