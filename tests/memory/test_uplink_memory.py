"""The uplink's memory budget: a car with the uplink, on the esp32 board proxy
in the `make deploy` layout (.mpy files), runs in the plain car's smallest
heap + 8 KB (tools/measure/uplink_memory.py --check: the plain car's edge is
bisected in the same run, then the uplink car runs once at edge + 8 KB with
a driver at 10 Hz and a viewer on its /ws, its hello and telemetry arriving
at a websockets server on 127.0.0.1 and a ping over the uplink answered).
That a plain car never imports the uplink is
test_uplink.py::test_a_plain_car_does_not_import_the_uplink."""
import pytest

from support.memory_checks import finished


@pytest.fixture(scope="module")
def check(link_memory_runs):
    # A broken measurement (the plain car not bisected) is an error here, in
    # the fixture, not an expected failure of the budget test below.
    stdout, out = finished(link_memory_runs, "uplink")
    lines = {line[:8].strip(): line[8:] for line in stdout.splitlines() if line[:8].strip()}
    assert "smallest heap" in lines.get("plain", ""), out
    assert "(plain + 8 KB)" in lines.get("uplink", ""), out
    return lines, out


@pytest.mark.slow
def test_uplink_runs_in_the_plain_cars_heap_plus_8_kb(check):
    lines, out = check
    assert "(plain + 8 KB): runs" in lines.get("uplink", ""), out
