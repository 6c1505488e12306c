"""Run by tests/fleet/test_fleet_dashboard.py inside `unshare -n` (TETHER_IN_NETNS=1):
the fleet dashboard (fleet/, built by tools/web/build_fleet.py) served by
mosquitto's http_dir on its WebSocket listener, in headless Chromium, with two
simulated cars on the broker's TCP listener."""
import asyncio
import os
import subprocess
import sys
import time

import pytest

from support.micropython import ROOT  # noqa: E402
from support.processes import free_port  # noqa: E402
from support.car import Client as WsClient  # noqa: E402
from support.car import moving, stopped  # noqa: E402
from support.fleet import Commander, start_car  # noqa: E402
from support.mqtt import IN_NETNS, Broker  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not IN_NETNS, reason="runs inside unshare -n (tests/fleet/test_fleet_dashboard.py)")]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def test_dashboard_lists_cars_drives_one_stops_another_and_sees_one_vanish(tmp_path, start_micropython):
    web = tmp_path / "web"
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "web", "build_fleet.py"), "--out", str(web)],
                   check=True, capture_output=True)
    broker = Broker(tmp_path, ws_port=free_port(), http_dir=str(web))
    try:
        car1 = start_car(start_micropython, tmp_path, "car-1", broker.url, fleet={"telemetry_hz": 5})
        car2 = start_car(start_micropython, tmp_path, "car-2", broker.url, fleet={"telemetry_hz": 5},
                         limits={"deadman_ms": 5000})
        requests, errors = asyncio.run(asyncio.wait_for(drive_from_the_page(broker, car1, car2), 90))
        assert not errors, errors
        base = "127.0.0.1:%d" % broker.ws_port
        outside = [u for u in requests if base not in u]
        assert requests and not outside, "the page loaded from elsewhere: %s" % outside
    finally:
        broker.kill()


async def drive_from_the_page(broker, car1, car2):
    from playwright.async_api import async_playwright

    base = "127.0.0.1:%d" % broker.ws_port
    requests, errors = [], []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("request", lambda r: requests.append(r.url))
        page.on("websocket", lambda ws: requests.append(ws.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto("http://%s/" % base)
        for car in ("car-1", "car-2"):
            await page.wait_for_selector('tr[data-car="%s"] td.state.online' % car, timeout=10000)
        await page.wait_for_function("document.querySelector('tr[data-car=\"car-1\"] td.battery')"
                                     ".textContent.endsWith('V')", timeout=5000)
        w1, w2 = await WsClient.connect(car1), await WsClient.connect(car2)

        await page.click('tr[data-car="car-1"] td.id')
        await page.wait_for_selector('#telemetry dd[data-field="seq"]', timeout=5000)
        await asyncio.sleep(0.8)  # the page learns car-1's clock (ping -> pong)
        await page.keyboard.down("KeyW")
        await w1.wait_for(moving, 3)
        await asyncio.sleep(0.5)
        await page.keyboard.up("KeyW")
        released = time.monotonic()
        await w1.wait_for(stopped, 1, since=released)
        await asyncio.sleep(0.5)
        after = [m for t, m in w1.telemetry if t > released + 0.3]
        assert after and all(stopped(m) for m in after), "car-1 still moving after the key was released"
        assert not any(moving(m) for _, m in w2.telemetry), "car-2 moved"

        # stop any car from the list: car-2, driven by another client
        commander = await Commander(broker.url, "other").start()
        await commander.sync("car-2")
        commander.drive("car-2", 0.5)
        await w2.wait_for(moving, 3)
        await page.click('tr[data-car="car-2"] button.stop')
        await w2.wait_for(stopped, 2)

        car2.proc.kill()
        await page.wait_for_selector('tr[data-car="car-2"] td.state.offline', timeout=5000)
        await w1.close()
        await commander.stop()
        await browser.close()
    return requests, errors
