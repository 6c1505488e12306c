"""MQTT over WebSocket: the session over lib/wsclient's byte stream.
- against a scripted WebSocket server on loopback: a packet split across two
  frames and several packets in one frame are read alike;
- against mosquitto's WebSocket listener, inside a private network namespace
  (tests/fleet/netns/test_fleet_websocket_inside.py), because mosquitto 2.0.11 binds
  that listener to every interface."""
import asyncio
import os

import pytest
import websockets

from support.mqtt import can_unshare, have_mosquitto, have_wsclient, run_in_netns, run_until
from mqtt import codec
from mqtt.session import Session
from mqtt.transport import opener

needs_wsclient = pytest.mark.skipif(not have_wsclient(), reason="needs lib/wsclient (the WebSocket client)")


@pytest.mark.slow
@needs_wsclient
def test_packets_split_across_frames_and_several_in_one_frame():
    got, subprotocols = [], []

    async def broker(ws):
        subprotocols.append(ws.subprotocol)
        first = await ws.recv()  # CONNECT, as a binary message
        assert isinstance(first, bytes) and first[0] == 0x10
        connack = b"\x20\x02\x00\x00"
        await ws.send(connack[:1])  # one packet in two frames
        await ws.send(connack[1:])
        both = codec.publish("a/1", b"one") + codec.publish("a/2", b"two" * 100)
        await ws.send(both[:5])  # two packets over three frames, the split inside the first
        await ws.send(both[5:40])
        await ws.send(both[40:])
        await asyncio.sleep(2)

    async def main():
        async with websockets.serve(broker, "127.0.0.1", 0, subprotocols=["mqtt"]) as server:
            port = server.sockets[0].getsockname()[1]
            s = Session(opener("ws://127.0.0.1:%d/mqtt" % port), "w",
                        on_message=lambda t, p, r: got.append((t, bytes(p))), log=lambda *a: None)
            await run_until(s, lambda: len(got) >= 2)
    asyncio.run(asyncio.wait_for(main(), 20))
    assert subprotocols == ["mqtt"]
    assert got == [("a/1", b"one"), ("a/2", b"two" * 100)]


@pytest.mark.slow
@needs_wsclient
@pytest.mark.skipif(not have_mosquitto() or not can_unshare(), reason="needs mosquitto and unshare -n")
def test_car_over_websocket_against_mosquitto_in_a_network_namespace():
    inside = os.path.join("tests", "fleet", "netns", "test_fleet_websocket_inside.py")
    result = run_in_netns(inside)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout, result.stdout[-2000:]
    print(next(line for line in result.stdout.splitlines() if line.startswith("ping over MQTT")))
