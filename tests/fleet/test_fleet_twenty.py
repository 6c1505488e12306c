"""Twenty simulated cars (twenty MicroPython processes running the real
firmware) on one real mosquitto: all online within 10 s of start, each
one's telemetry at its rate, and the broker killed and restarted: every car
back within 10 s, none moved while it was away, the one that was driving
stopped at once."""
import asyncio
import time

import pytest

from support.car import Client as WsClient
from support.car import stopped
from support.fleet import Commander, start_car
from support.mqtt import Broker, have_mosquitto

pytestmark = pytest.mark.skipif(not have_mosquitto(), reason="needs mosquitto (apt install mosquitto)")
CARS = ["car-%02d" % i for i in range(1, 21)]
TELEMETRY_S = 30  # the must-show: each one's telemetry at its rate for 30 s
RATE_HZ = 2


@pytest.mark.slow
def test_twenty_cars_online_telemetry_and_a_broker_restart(tmp_path, start_micropython):
    broker = Broker(tmp_path)
    try:
        asyncio.run(asyncio.wait_for(main(broker, tmp_path, start_micropython), 150))
    finally:
        broker.kill()


async def main(broker, tmp_path, start_micropython):
    watcher = await Commander(broker.url, "watcher").start()
    t0 = time.monotonic()
    cars = {}
    for car_id in CARS:
        # Local telemetry at 10 Hz (nobody watches it) keeps twenty cars light on 2 cores.
        cars[car_id] = start_car(start_micropython, tmp_path, car_id, broker.url,
                                 limits={"telemetry_hz": 10}, fleet={"telemetry_hz": RATE_HZ})
    await watcher.wait(lambda: set(CARS) <= watcher.online(), 10, "all 20 cars online")
    online_s = time.monotonic() - t0
    print("20 cars online %.2f s after the first was started" % online_s)
    assert online_s < 10

    start = time.monotonic()
    await asyncio.sleep(TELEMETRY_S)
    end = time.monotonic()
    rates, gaps = [], []
    for car_id in CARS:
        arrivals = [(t, m) for t, m in watcher.telemetry(car_id) if start <= t < end]
        # 60 messages expected in 30 s; the window's two ends cut at most one each.
        rate = len(arrivals) / (end - start)
        assert RATE_HZ - 0.1 <= rate <= RATE_HZ + 0.1, (car_id, rate)
        seqs = [m["seq"] for t, m in arrivals]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (car_id, seqs)  # none dropped
        # At its rate all along, not on average: no stretch of three periods without one.
        gap = max(b[0] - a[0] for a, b in zip([(start, None)] + arrivals, arrivals + [(end, None)]))
        assert gap < 3 / RATE_HZ, (car_id, gap)
        rates.append(rate)
        gaps.append(gap)
    print("telemetry over %d s: %.3f-%.3f Hz per car (configured %d), longest gap %.2f s"
          % (TELEMETRY_S, min(rates), max(rates), RATE_HZ, max(gaps)))

    # car-01 is being driven over the broker when the broker dies.
    ws = await WsClient.connect(cars["car-01"])
    await watcher.sync("car-01")
    driving = asyncio.ensure_future(watcher.hold("car-01", 0.5, 30, every=0.1))
    await ws.wait_for(lambda m: m["applied"]["left"] > 0, 3)
    before = {car_id: watcher.telemetry(car_id)[-1][1]["pose"] for car_id in CARS[1:]}
    broker.kill()
    killed = time.monotonic()
    driving.cancel()  # the dashboard gives up too; nothing it sent before may act later
    arrived, _ = await ws.wait_for(stopped, 2, since=killed)
    print("driving car stopped %.0f ms after the broker was killed" % ((arrived - killed) * 1000))
    assert arrived - killed < 0.6
    await asyncio.sleep(2)
    broker.start()
    restarted = time.monotonic()
    n = len(watcher.messages)
    back = lambda: {m[0].split("/")[1] for m in watcher.messages[n:]
                    if m[0].endswith("/status") and b'"online": true' in m[1]}
    await watcher.wait(lambda: set(CARS) <= back(), 10, "all 20 cars back online")
    back_s = time.monotonic() - restarted
    print("20 cars back online %.2f s after the broker restarted" % back_s)
    await asyncio.sleep(0.5)
    assert all(stopped(m) for t, m in ws.telemetry if t > arrived)  # nothing stale acted
    for car_id in CARS[1:]:
        await watcher.wait(lambda: [m for t, m in watcher.telemetry(car_id) if t > restarted], 3,
                           "telemetry of %s" % car_id)
        after = [m for t, m in watcher.telemetry(car_id) if t > restarted][0]
        assert after["pose"] == before[car_id], car_id
        assert stopped(after)
    await ws.close()
    await watcher.stop()
    for car in cars.values():
        assert car.poll() is None
