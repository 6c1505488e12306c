"""The car's fleet link (lib/car/fleet.py) against a real mosquitto: the real
firmware under the MicroPython Unix port, simulated cars, clients over MQTT
(and the car's own WebSocket, to watch its motors at 50 Hz)."""
import asyncio
import json
import signal
import time

import pytest

from support.micropython import run_micropython
from support.car import Client as WsClient
from support.car import moving, page_ok, stopped
from support.fleet import Commander, start_car
from support.mqtt import have_mosquitto

pytestmark = pytest.mark.skipif(not have_mosquitto(), reason="needs mosquitto (apt install mosquitto)")


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.mark.slow
def test_status_telemetry_at_its_rate_and_ping(broker, tmp_path, start_micropython):
    car = start_car(start_micropython, tmp_path, "car-a", broker.url, fleet={"telemetry_hz": 5})

    async def main():
        c = await Commander(broker.url).start()
        await c.wait(lambda: "car-a" in c.online(), 5, "car-a online")
        status = c.status("car-a")
        assert status == {"online": True, "device": "car-a", "firmware": status["firmware"], "simulated": True}
        # Retained: a client subscribing after the car came online gets it at once, flagged retained.
        # (c itself may have subscribed before the car published, and then got it live.)
        late = await Commander(broker.url, client_id="late").start()
        await late.wait(lambda: "car-a" in late.online(), 5, "car-a's retained status")
        assert [m[2] for m in late.on("tether/car-a/status")] == [True]
        await late.stop()
        pong, rtt = await c.sync("car-a")
        assert pong["type"] == "pong" and pong["uptime_ms"] > 0, pong
        t0 = time.monotonic()
        n0 = len(c.telemetry("car-a"))
        await asyncio.sleep(3)
        got = c.telemetry("car-a")[n0:]
        rate = len(got) / (time.monotonic() - t0)
        seqs = [m["seq"] for _, m in got]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # the link's own count, no gaps
        assert got[-1][1]["type"] == "telemetry" and "pose" in got[-1][1]
        await c.stop()
        return rate, rtt
    rate, rtt = run(main())
    print("fleet telemetry %.2f Hz (configured 5); ping through the broker %.1f ms" % (rate, rtt * 1))
    assert 4.0 <= rate <= 6.0, rate
    assert "fleet: connected" in car.output()


@pytest.mark.slow
def test_drive_moves_only_its_car_stop_stops_it_and_the_link_is_a_control_client(broker, tmp_path,
                                                                                 start_micropython):
    a = start_car(start_micropython, tmp_path, "car-a", broker.url)
    b = start_car(start_micropython, tmp_path, "car-b", broker.url)

    async def main():
        c = await Commander(broker.url).start()
        await c.wait(lambda: {"car-a", "car-b"} <= c.online(), 5, "both online")
        wa, wb = await WsClient.connect(a), await WsClient.connect(b)
        await c.sync("car-a")
        c.drive("car-a", 0.6)
        await wa.wait_for(moving, 2)
        driving = asyncio.ensure_future(c.hold("car-a", 0.6, 1.0))
        await asyncio.sleep(0.5)
        # A local client is refused while the fleet link drives (client id 0).
        await wa.drive(0.3)
        refused = await wa.reply()
        assert refused["code"] == "not_driver" and "client 0" in refused["message"], refused
        assert (await wa.latest())["driver"] == 0
        await driving
        assert all(stopped(m) for _, m in wb.telemetry)  # the other car never moved
        c.send("car-a", {"type": "stop"})
        await wa.wait_for(stopped, 1)
        assert c.replies("car-a")[1] == {"type": "role", "role": "driver"}  # after the pong
        # the deadman then releases the link, which is told so on reply
        await c.wait(lambda: {"type": "role", "role": "viewer"} in c.replies("car-a"), 3, "released")
        for w in (wa, wb):
            await w.close()
        await c.stop()
    run(main())


@pytest.mark.slow
def test_commanding_client_killed_stops_the_car_within_the_deadman(broker, tmp_path, start_micropython):
    deadman = 300
    car = start_car(start_micropython, tmp_path, "car-a", broker.url, limits={"deadman_ms": deadman})

    async def main():
        c = await Commander(broker.url).start()
        await c.wait(lambda: "car-a" in c.online(), 5, "online")
        w = await WsClient.connect(car)
        await c.sync("car-a")
        driving = asyncio.ensure_future(c.hold("car-a", 0.5, 5.0, every=0.05))
        await w.wait_for(moving, 2)
        await asyncio.sleep(0.5)
        # Kill the commander's connection: no DISCONNECT, the socket just dies.
        driving.cancel()
        c.task.cancel()
        c.session.transport.writer.transport.abort()
        killed = time.monotonic()
        arrived, _ = await w.wait_for(stopped, 2, since=killed - 0.2)
        await w.close()
        return arrived - killed
    took = run(main())
    print("commander killed -> motors stopped %.0f ms later (deadman %d ms)" % (took * 1000, deadman))
    # deadman + one control tick (20 ms) + one 50 Hz telemetry period + scheduling slack;
    # measured from the kill, which is at most one 50 ms heartbeat after the last drive.
    assert took <= (deadman + 20 + 20 + 80) / 1000, took


@pytest.mark.slow
def test_car_killed_or_frozen_leaves_online_false_retained(broker, tmp_path, start_micropython):
    # A killed process's socket closes, so the will goes out at once. A frozen
    # car (SIGSTOP: a board that hangs or loses power sends no FIN) is found only
    # by the broker's keepalive check. mosquitto 2.0.11 (src/keepalive.c) runs
    # that check when `last_check + 5 < now` in whole seconds, i.e. every 6 s
    # (its loop wakes every 100 ms), and drops a client once
    # `now - last_msg_in > keepalive * 3 / 2` (integer seconds): up to 1.5 x the
    # announced keepalive + 6.1 s after the last packet. The car announces half
    # of fleet.keepalive_s (lib/car/fleet.py), so with keepalive_s 10 it
    # announces 5: dropped by 7 + 6.1 = 13.1 s after the freeze, inside
    # 1.5 x 10 = 15 s. (At keepalive_s 8 the worst case, 12.1 s, is over 12.)
    keepalive = 10
    killed = start_car(start_micropython, tmp_path, "car-k", broker.url, fleet={"keepalive_s": keepalive})
    frozen = start_car(start_micropython, tmp_path, "car-f", broker.url, fleet={"keepalive_s": keepalive})

    async def main():
        c = await Commander(broker.url).start()
        await c.wait(lambda: {"car-k", "car-f"} <= c.online(), 5, "online")
        killed.proc.kill()
        t0 = time.monotonic()
        await c.wait(lambda: c.status("car-k") == {"online": False}, 1.5 * keepalive, "car-k offline")
        t_killed = time.monotonic() - t0
        frozen.proc.send_signal(signal.SIGSTOP)  # no FIN: only the keepalive can tell
        t0 = time.monotonic()
        await c.wait(lambda: c.status("car-f") == {"online": False}, 1.5 * keepalive, "car-f offline")
        t_frozen = time.monotonic() - t0
        frozen.proc.send_signal(signal.SIGCONT)
        late = await Commander(broker.url, "late").start()
        await late.wait(lambda: late.status("car-k") is not None, 3, "retained status")
        assert late.status("car-k") == {"online": False}
        assert [m[2] for m in late.on("tether/car-k/status")] == [True]
        await c.stop()
        await late.stop()
        return t_killed, t_frozen
    t_killed, t_frozen = run(main())
    print("will retained: killed car %.2f s, frozen car %.2f s (keepalive_s %d, bound %.1f s)"
          % (t_killed, t_frozen, keepalive, 1.5 * keepalive))
    assert t_killed < 1.0, t_killed  # the socket's FIN, not the keepalive
    assert t_frozen <= 1.5 * keepalive, t_frozen
    log = broker.log()
    # What the car announced, in mosquitto's words, and why it was dropped.
    assert "as tether-car-f (p2, c1, k%d" % (keepalive // 2) in log, log[-2000:]
    assert "Client tether-car-f has exceeded timeout, disconnecting." in log, log[-2000:]


@pytest.mark.slow
def test_stale_burst_of_drive_commands_does_not_move_the_car(broker, tmp_path, start_micropython):
    car = start_car(start_micropython, tmp_path, "car-a", broker.url, limits={"deadman_ms": 300})

    async def main():
        c = await Commander(broker.url).start()
        await c.wait(lambda: "car-a" in c.online(), 5, "online")
        w = await WsClient.connect(car)
        await c.sync("car-a")
        # The broker stalls; the commander keeps driving into its socket for 1 s.
        broker.proc.send_signal(signal.SIGSTOP)
        await c.hold("car-a", 0.8, 1.0, every=0.05)
        await asyncio.sleep(0.5)  # every held command is now older than the deadman
        since = time.monotonic()
        broker.proc.send_signal(signal.SIGCONT)  # the whole burst arrives at once
        # ~20 refusals; the car's outgoing queue (8) keeps the newest when they come at once
        await c.wait(lambda: sum(r.get("code") == "stale" for r in c.replies("car-a")) >= 6, 5,
                     "stale refusals")
        await asyncio.sleep(0.3)
        seen = [m for t, m in w.telemetry if t >= since]
        assert seen and all(stopped(m) for m in seen)
        stale = [r for r in c.replies("car-a") if r.get("code") == "stale"]
        assert stale[0]["field"] == "at" and "ms old (limit 300 ms" in stale[0]["message"], stale[0]
        # A fresh command right after acts; a retained one never does; one without `at` is refused.
        c.drive("car-a", 0.5)
        await w.wait_for(moving, 2)
        c.send("car-a", {"type": "stop"})
        await w.wait_for(stopped, 2)
        c.send("car-a", {"type": "drive", "throttle": 0.5, "steer": 0})
        await c.wait(lambda: any(r.get("field") == "at" and "missing" in r["message"]
                                 for r in c.replies("car-a")), 3, "missing at")
        t = time.monotonic()
        await asyncio.sleep(0.5)
        assert all(stopped(m) for tt, m in w.telemetry if tt >= t)
        await w.close()
        await c.stop()
    run(main())


def test_retained_commands_and_commands_stamped_for_an_old_clock_do_not_act(broker, tmp_path,
                                                                              start_micropython):
    async def main():
        c = await Commander(broker.url).start()
        # Left on the broker before the car starts: `at` 0 would even look fresh to a
        # car that has just booted, but a retained command is never acted on.
        c.publish("tether/car-a/cmd", {"type": "drive", "throttle": 0.5, "steer": 0, "at": 0},
                  qos=1, retain=True)
        await c.wait(lambda: not c.session.inflight and not c.session.queue, 3, "published")
        car = start_car(start_micropython, tmp_path, "car-a", broker.url)
        w = await WsClient.connect(car)
        await c.wait(lambda: "car-a" in c.online(), 5, "online")
        await c.wait(lambda: any("retained" in r.get("message", "") for r in c.replies("car-a")), 3,
                     "retained refusal")
        c.publish("tether/car-a/cmd", b"", qos=1, retain=True)  # clear it from the broker
        # `at` is the car's uptime: after a reboot an old stamp lies ahead of its clock.
        await c.sync("car-a")
        c.offsets["car-a"] += 5000  # as if the car had been up 5 s longer
        c.drive("car-a", 0.5)
        await c.wait(lambda: any(r.get("code") == "stale" and "ahead" in r["message"]
                                 for r in c.replies("car-a")), 3, "refusal")
        assert all(stopped(m) for _, m in w.telemetry)
        await w.close()
        await c.stop()
    run(main())


def test_access_token_is_needed_to_drive_over_mqtt_but_not_to_stop(broker, tmp_path, start_micropython):
    token = "fleet-secret-1"
    car = start_car(start_micropython, tmp_path, "car-a", broker.url, access={"token": token})

    async def main():
        c = await Commander(broker.url).start()
        await c.wait(lambda: "car-a" in c.online(), 5, "online")
        w = await WsClient.connect(car)
        await c.sync("car-a")
        c.drive("car-a", 0.5)
        c.drive("car-a", 0.5, token="wrong-token")
        await c.wait(lambda: sum(r.get("code") == "forbidden" for r in c.replies("car-a")) >= 2, 3,
                     "two refusals")
        c.drive("car-a", 0.5, token=token)
        await w.wait_for(moving, 2)
        c.send("car-a", {"type": "stop"})  # no token
        await w.wait_for(stopped, 1)
        await w.close()
        await c.stop()
    run(main())


def test_bad_json_and_bad_utf8_on_cmd_get_clear_errors_and_the_car_keeps_serving(broker, tmp_path,
                                                                                start_micropython):
    car = start_car(start_micropython, tmp_path, "car-a", broker.url)

    async def main():
        c = await Commander(broker.url).start()
        await c.wait(lambda: "car-a" in c.online(), 5, "online")
        for payload in (b"{not json", b"\xff\xfe", b"[1,2]", b'{"type":"fly"}',
                        b'{"type":"drive","throttle":7,"steer":0,"at":1}', b"x" * 3000):
            c.publish("tether/car-a/cmd", payload)
        await c.wait(lambda: len(c.replies("car-a")) >= 5, 5, "five errors")
        got = c.replies("car-a")
        assert [r["code"] for r in got[:4]] == ["bad_json", "bad_json", "bad_json", "unknown_type"], got
        assert got[0]["message"] == "not valid JSON"
        assert got[4]["code"] in ("bad_field", "stale")
        pong, _ = await c.sync("car-a")  # the link is still up after the oversized message
        assert page_ok(car)
        await c.stop()
    run(main())
    assert car.poll() is None


@pytest.mark.slow
def test_malformed_mqtt_from_the_broker_is_a_clear_error_and_the_car_keeps_running(tmp_path,
                                                                                   start_micropython):
    # A scripted broker on loopback: CONNACK, then a PUBLISH with the reserved QoS 3.
    connects = []

    async def main():
        async def handle(reader, writer):
            connects.append(await reader.read(200))
            writer.write(b"\x20\x02\x00\x00\x36\x05\x00\x03a/b")
            await writer.drain()
            await asyncio.sleep(0.5)
            writer.close()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        car = start_car(start_micropython, tmp_path, "car-m", "mqtt://127.0.0.1:%d" % port)
        w = await WsClient.connect(car)
        deadline = time.monotonic() + 8
        while len(connects) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        rtt = await w.ping(1)
        assert await asyncio.get_running_loop().run_in_executor(None, page_ok, car)
        await w.close()
        server.close()
        return car, rtt
    car, rtt = run(main())
    assert len(connects) >= 2  # it reconnected after the error
    assert connects[0][0] == 0x10 and b"tether-car-m" in connects[0]
    assert "PUBLISH with QoS 3" in car.output(), car.output()
    assert car.poll() is None


@pytest.mark.slow
def test_a_dead_broker_never_delays_the_control_loop_or_the_page(tmp_path, start_micropython):
    # Nothing listens at the broker's address: the link retries with backoff while
    # the car drives and serves as usual; its telemetry keeps 50 Hz without gaps.
    from support.processes import free_port
    car = start_car(start_micropython, tmp_path, "car-d", "mqtt://127.0.0.1:%d" % free_port())

    async def main():
        w = await WsClient.connect(car)
        await w.hold(0.5, 0.0, 2.0)
        await asyncio.sleep(1)
        times = [t for t, _ in w.telemetry]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert page_ok(car)
        await w.close()
        return len(times), max(gaps)
    count, worst = run(main())
    assert count >= 120, count  # 3 s at 50 Hz
    assert worst < 0.15, worst
    assert "reconnecting in" in car.output()


def test_fleet_config_errors_name_the_key():
    code = """
import json
from car.config import validate
cfg, errors = validate({"wifi": {"hostname": "rover"}, "limits": {"telemetry_hz": 10},
    "fleet": {"url": "mqtt://b:1884", "telemetry_hz": 20, "keepalive_s": 1, "colour": 1, "password": "p"}})
print(json.dumps([cfg["fleet"], errors]))
cfg, errors = validate({"fleet": {"url": "http://b"}})
print(json.dumps([cfg["fleet"], errors]))
cfg, errors = validate({})
print(json.dumps(cfg["fleet"]))
"""
    result = run_micropython("import sys; sys.path.insert(0, 'lib')\n" + code)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    fleet, errors = lines[0]
    assert fleet == {"url": "mqtt://b:1884", "id": "rover", "username": None, "password": None,
                     "telemetry_hz": 2, "keepalive_s": 15}
    assert "fleet.colour: unknown key (ignored)" in errors
    assert "fleet.telemetry_hz: must be an int between 1 and 10 (at most limits.telemetry_hz)" in errors
    assert "fleet.keepalive_s: must be an int between 2 and 600" in errors
    assert any(e.startswith("fleet.password: needs fleet.username") for e in errors)
    assert lines[1][0] is None and lines[1][1][0].startswith("fleet.url: scheme http: must be mqtt")
    assert lines[2] is None


def test_a_plain_car_does_not_import_the_fleet_link():
    result = run_micropython("import sys; sys.path.insert(0, 'lib')\nfrom car import app\n"
                             "print(sorted(m for m in sys.modules if 'mqtt' in m or 'fleet' in m))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_clean_stop_publishes_offline_and_disconnects(broker, tmp_path, start_micropython):
    car = start_car(start_micropython, tmp_path, "car-c", broker.url)

    async def main():
        c = await Commander(broker.url).start()
        await c.wait(lambda: "car-c" in c.online(), 5, "online")
        car.proc.send_signal(signal.SIGINT)  # Ctrl-C: the app's clean exit
        await c.wait(lambda: c.status("car-c") == {"online": False}, 3, "offline")
        await c.stop()
    run(main())
    car.proc.wait(5)
    log = broker.log()
    # mosquitto's words for a DISCONNECT packet; a dropped socket reads "closed its connection"
    assert "Client tether-car-c disconnected." in log, log[-1000:]
