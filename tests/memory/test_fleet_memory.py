"""The fleet link's memory budget: a car with the fleet link, on the esp32 board
proxy in the `make deploy` layout (.mpy files), runs in the plain car's
smallest heap + 12 KB (tools/measure/fleet_memory.py --check: the plain car's edge is
bisected in the same run, then each link runs once at edge + 12 KB with a
driver at 10 Hz and a viewer, its status online on a real mosquitto and its
telemetry arriving). mosquitto 2.0.11 binds its WebSocket listener to every
interface, so the run is inside a private network namespace (unshare -n,
loopback up). That a plain car never imports the link is
test_fleet.py::test_a_plain_car_does_not_import_the_fleet_link."""
import pytest

from support.memory_checks import finished, fleet_ready


@pytest.fixture(scope="module")
def check(link_memory_runs):
    if not fleet_ready():
        pytest.skip("needs mosquitto, unshare -n (root or user namespaces) and lib/wsclient")
    stdout, out = finished(link_memory_runs, "fleet")
    lines = {line[:28].strip(): line[28:] for line in stdout.splitlines() if line[:28].strip()}
    assert "smallest heap" in lines.get("plain car", ""), out
    return lines, out


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="unmet (issue 13): the plain car's edge is 54 KB, the TCP link's "
                                       "74 KB, plain + 20 KB (docs/fleet.md, Memory)")
def test_fleet_link_over_tcp_runs_in_the_plain_cars_heap_plus_12_kb(check):
    lines, out = check
    assert "(plain + 12 KB): runs" in lines.get("fleet link over TCP", ""), out


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="unmet (issue 13): over WebSocket the link needs 78 KB, plain + "
                                       "24 KB (docs/fleet.md, Memory)")
def test_fleet_link_over_websocket_runs_in_the_plain_cars_heap_plus_12_kb(check):
    lines, out = check
    assert "(plain + 12 KB): runs" in lines.get("fleet link over WebSocket", ""), out
