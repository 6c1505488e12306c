"""Run by tests/fleet/test_fleet_websocket.py inside `unshare -n` (TETHER_IN_NETNS=1);
skipped anywhere else, because mosquitto's WebSocket listener binds every
interface. A car whose fleet.url is ws:// (MQTT over WebSocket, subprotocol
mqtt) comes online, is driven and stopped by a client on the TCP listener and
by one on the WebSocket listener."""
import asyncio

import pytest

from support.processes import free_port  # noqa: E402
from support.car import Client as WsClient  # noqa: E402
from support.car import moving, stopped  # noqa: E402
from support.fleet import Commander, start_car  # noqa: E402
from support.mqtt import IN_NETNS, Broker, have_wsclient  # noqa: E402

pytestmark = pytest.mark.skipif(not IN_NETNS or not have_wsclient(),
                                reason="runs inside unshare -n (tests/fleet/test_fleet_websocket.py)")


def test_a_car_over_mqtt_over_websocket(tmp_path, start_micropython):
    broker = Broker(tmp_path, ws_port=free_port())
    try:
        car = start_car(start_micropython, tmp_path, "car-w", broker.ws_url)

        async def main():
            rtts = []
            for url, name in ((broker.url, "tcp-client"), (broker.ws_url, "ws-client")):
                c = await Commander(url, name).start()
                await c.wait(lambda: "car-w" in c.online(), 10, "car-w online over ws://")
                w = await WsClient.connect(car)
                _, rtt = await c.sync("car-w")
                rtts.append(rtt)
                c.send("car-w", {"type": "resume"})  # the previous client's stop latched the car
                driving = asyncio.ensure_future(c.hold("car-w", 0.5, 0.8))
                await w.wait_for(moving, 3)
                await driving
                c.send("car-w", {"type": "stop"})
                await w.wait_for(stopped, 2)
                await w.close()
                await c.stop()
                await asyncio.sleep(0.6)  # the deadman releases the link before the next client
            return rtts
        rtts = asyncio.run(asyncio.wait_for(main(), 60))
        print("ping over MQTT, car on ws://: from a TCP client %.1f ms, from a WebSocket client %.1f ms"
              % tuple(rtts))
        assert "fleet: connected" in car.output()
    finally:
        broker.kill()
