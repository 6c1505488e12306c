"""Run by tests/fleet/test_fleet_broker_tls.py inside `unshare -n` (TETHER_IN_NETNS=1):
mosquitto's WebSocket listener binds every interface. MQTT over wss://: a car
with fleet.ca = the broker's CA comes online; one trusting another CA is
refused, naming the reason."""
import time

import pytest

from support.processes import free_port  # noqa: E402
from support.fleet import car_config, wait_status  # noqa: E402
from support.mqtt import IN_NETNS, Broker, have_wsclient  # noqa: E402
from support.tls import cert  # noqa: E402

pytestmark = pytest.mark.skipif(not IN_NETNS or not have_wsclient(),
                                reason="runs inside unshare -n (tests/fleet/test_fleet_broker_tls.py)")


def test_fleet_over_wss_verifies_the_broker(tmp_path, start_micropython):
    good = cert.make(str(tmp_path / "ca"), "broker", dns=["localhost"])
    cert.make(str(tmp_path / "other"), "broker", dns=["localhost"])
    port = free_port()
    broker = Broker(tmp_path, extra="listener %d 127.0.0.1\nprotocol websockets\ncertfile %s/cert.pem\n"
                                    "keyfile %s/key.pem\n" % (port, good, good))
    url = "wss://localhost:%d/mqtt" % port
    try:
        ok = start_micropython("main.py", ["--config", car_config(
            tmp_path, "car-ok", url, fleet={"ca": str(tmp_path / "ca" / "ca.crt.pem")})])
        bad = start_micropython("main.py", ["--config", car_config(
            tmp_path, "car-bad", url, fleet={"ca": str(tmp_path / "other" / "ca.crt.pem")})])
        started = time.monotonic()
        s = wait_status(ok, lambda s: s["connected"], timeout=20)
        assert s["error"] is None
        print("car on wss:// connected after %.1f s" % (time.monotonic() - started))
        s = wait_status(bad, lambda s: s["error"] is not None, timeout=20)
        assert not s["connected"] and "not signed by fleet.ca (wrong CA)" in s["error"], s
        print("car trusting another CA:", s["error"])
    finally:
        broker.kill()
