"""The fleet dashboard in headless Chromium, served by mosquitto's http_dir.
mosquitto 2.0.11 binds its WebSocket listener to every interface, so the
broker, the cars and the browser run inside a private network namespace
(tests/fleet/netns/test_fleet_dashboard_inside.py)."""
import os

import pytest

from support import unavailable
from support.fleet import need_dashboard_packages
from support.mqtt import can_unshare, have_mosquitto, run_in_netns

pytestmark = [pytest.mark.browser]


@pytest.mark.skipif(not have_mosquitto() or not can_unshare(), reason="needs mosquitto and unshare -n")
def test_fleet_dashboard_in_chromium_in_a_network_namespace():
    if not os.path.exists(os.environ.get("CHROMIUM", "/usr/bin/chromium")):
        unavailable("no Chromium (apt-get install chromium)")
    need_dashboard_packages()
    result = run_in_netns(os.path.join("tests", "fleet", "netns", "test_fleet_dashboard_inside.py"))
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout, result.stdout[-2000:]
