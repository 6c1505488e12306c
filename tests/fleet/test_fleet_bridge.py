"""Past one broker (docs/fleet.md): two mosquittos on loopback, B bridged to
A for tether/#. A car on broker A is seen and driven by a client on broker B."""
import asyncio

import pytest

from support.car import Client as WsClient
from support.car import moving, stopped
from support.fleet import Commander, start_car
from support.mqtt import Broker, have_mosquitto

pytestmark = pytest.mark.skipif(not have_mosquitto(), reason="needs mosquitto (apt install mosquitto)")


@pytest.mark.slow
def test_a_client_on_broker_b_drives_a_car_on_broker_a(tmp_path, start_micropython):
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    a = Broker(a_dir)
    # The site broker (B) dials the central one (A): status/telemetry/reply flow
    # in from A, cmd flows out to A (topic tether/# both, at QoS 1).
    b = Broker(b_dir, extra="connection to-a\naddress 127.0.0.1:%d\ntopic tether/# both 1\n"
                            "cleansession true\nrestart_timeout 1\n" % a.port)
    try:
        car = start_car(start_micropython, tmp_path, "car-a", a.url)

        async def main():
            c = await Commander(b.url, "on-b").start()
            await c.wait(lambda: "car-a" in c.online(), 10, "car-a seen through the bridge")
            w = await WsClient.connect(car)
            pong, rtt = await c.sync("car-a")
            driving = asyncio.ensure_future(c.hold("car-a", 0.5, 1.0))
            await w.wait_for(moving, 3)
            await driving
            c.send("car-a", {"type": "stop"})
            await w.wait_for(stopped, 2)
            assert any(m["driver"] == 0 for _, m in w.telemetry)
            await w.close()
            await c.stop()
            return rtt
        rtt = asyncio.run(asyncio.wait_for(main(), 40))
        print("ping through two brokers and a bridge: %.1f ms" % rtt)
    finally:
        b.kill()
        a.kill()
