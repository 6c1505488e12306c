"""The ACL of docs/fleet.md on a real mosquitto, with a car logging in with
fleet.username/password: the car works under its own id; a car's user cannot
write another car's status; a watching user cannot drive; a wrong password is
refused with the CONNACK code named on the car's console."""
import asyncio
import subprocess

import pytest

from support.car import Client as WsClient
from support.car import moving, stopped
from support.fleet import Commander, start_car
from support.mqtt import Broker, have_mosquitto

pytestmark = pytest.mark.skipif(not have_mosquitto(), reason="needs mosquitto")

ACL = """\
pattern write tether/%u/status
pattern write tether/%u/telemetry
pattern write tether/%u/reply
pattern read  tether/%u/cmd

user teacher
topic write tether/+/cmd
topic read  tether/#

user display
topic read tether/+/status
topic read tether/+/telemetry
"""


@pytest.mark.slow
def test_the_documented_acl_with_logins(tmp_path, start_micropython):
    pw = tmp_path / "passwd"
    for i, (user, password) in enumerate([("car-1", "pw-car-1"), ("car-2", "pw-car-2"),
                                          ("teacher", "pw-teacher"), ("display", "pw-display")]):
        subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [str(pw), user, password],
                       check=True, capture_output=True)
    (tmp_path / "acl").write_text(ACL)
    broker = Broker(tmp_path, extra="password_file %s\nacl_file %s\n" % (pw, tmp_path / "acl"))
    conf = open(broker.conf).read().replace("allow_anonymous true", "allow_anonymous false")
    broker.kill()
    open(broker.conf, "w").write(conf)
    broker.start()
    try:
        car = start_car(start_micropython, tmp_path, "car-1", broker.url,
                        fleet={"username": "car-1", "password": "pw-car-1"})
        bad = start_car(start_micropython, tmp_path, "car-2", broker.url,
                        fleet={"username": "car-2", "password": "wrong"})

        async def main():
            teacher = await Commander(broker.url, "teacher", username="teacher", password="pw-teacher").start()
            display = await Commander(broker.url, "display", username="display", password="pw-display").start()
            await teacher.wait(lambda: "car-1" in teacher.online(), 5, "car-1 online")
            await display.wait(lambda: "car-1" in display.online(), 5, "car-1 online for the display")
            w = await WsClient.connect(car)
            # the display may watch but not drive: mosquitto drops its cmd silently
            display.offsets["car-1"] = 0
            await teacher.sync("car-1")
            display.offsets["car-1"] = teacher.offsets["car-1"]
            for _ in range(5):
                display.drive("car-1", 0.5)
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)
            assert not any(moving(m) for _, m in w.telemetry)
            assert not display.replies("car-1")  # and it may not read replies
            # the teacher drives
            driving = asyncio.ensure_future(teacher.hold("car-1", 0.5, 0.8))
            await w.wait_for(moving, 3)
            await driving
            teacher.send("car-1", {"type": "stop"})
            await w.wait_for(stopped, 2)
            # car-1's user cannot pose as another car
            impostor = await Commander(broker.url, "impostor", username="car-1", password="pw-car-1").start()
            impostor.publish("tether/car-9/status", {"online": True}, qos=1, retain=True)
            await asyncio.sleep(0.5)
            assert "car-9" not in teacher.online()
            await w.close()
            for c in (teacher, display, impostor):
                await c.stop()
        asyncio.run(asyncio.wait_for(main(), 40))
        assert "CONNACK return code 5: not authorized" in bad.output(), bad.output()
        assert bad.poll() is None  # refused by the broker, still a car with a page
    finally:
        broker.kill()
