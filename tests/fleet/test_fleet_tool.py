"""make fleet's script (tools/fleet/fleet.py): mosquitto with its TCP and WebSocket
listeners and N simulated cars, all online. mosquitto 2.0.11 binds the
WebSocket listener to every interface, so this runs in a private network
namespace (unshare -n, loopback up): no packet leaves it."""
import os
import subprocess
import sys

import pytest

from support.micropython import MICROPYTHON, ROOT
from support.fleet import need_dashboard_packages
from support.mqtt import can_unshare, have_mosquitto


@pytest.mark.slow
@pytest.mark.skipif(not have_mosquitto() or not can_unshare(),
                    reason="needs mosquitto and unshare -n (root or user namespaces)")
def test_make_fleet_starts_a_broker_and_three_cars_that_come_online(tmp_path):
    need_dashboard_packages()
    web = tmp_path / "web"
    built = subprocess.run([sys.executable, "tools/web/build_fleet.py", "--out", str(web)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "MQTT.js 5.16.0" in built.stdout
    script = ("ip link set lo up && exec %s tools/fleet/fleet.py --cars 3 --exit-when-online --out %s --web %s "
              "--micropython %s" % (sys.executable, tmp_path, web, MICROPYTHON))
    result = subprocess.run(["unshare", "-n", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "3 of 3 cars online" in result.stdout, result.stdout
    for i in (1, 2, 3):
        assert any(line.split()[:2] == ["car-%d" % i, "online"] for line in lines), lines
    assert "ws://127.0.0.1:9001" in result.stdout
    assert "dashboard: http://127.0.0.1:9001/" in result.stdout
    log = open(os.path.join(tmp_path, "mosquitto.log")).read()
    assert "Opening websockets listen socket on port 9001" in log, log


@pytest.mark.slow
@pytest.mark.skipif(not have_mosquitto(), reason="needs mosquitto")
def test_bench_fleet_runs_and_reports_both_round_trips_and_the_telemetry_rate(tmp_path):
    result = subprocess.run([sys.executable, "tools/measure/bench_fleet.py", "--cars", "3", "--pings", "30",
                             "--seconds", "2", "--micropython", MICROPYTHON, "--reports", str(tmp_path)],
                            cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    import json
    r = json.load(open(os.path.join(tmp_path, "bench-fleet.json")))
    assert r["cars"] == 3 and r["pings"] == 30
    assert 0 < r["direct_rtt_ms"]["p50"] and 0 < r["broker_rtt_ms"]["p50"] < 100
    assert 0.8 * 15 <= r["telemetry_delivered_per_s"] <= 1.2 * 15  # 3 cars x 5 Hz
