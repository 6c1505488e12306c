"""The HTTP API beside the WebSocket (docs/protocol.md): GET /api/status,
POST /api/stop, through the real firmware on the Unix port."""
import asyncio
import json
import subprocess
import time

import pytest

from support.car import Client, kept_driving, moving, run, stopped, write_config
from support.wsraw import request

TOKEN = "s3cret-Token_42"


def start_car(start_micropython, tmp_path, access=None, **kw):
    path = write_config(tmp_path, **kw)
    if access:
        cfg = json.load(open(path))
        cfg["access"] = access
        open(path, "w").write(json.dumps(cfg))
    return start_micropython("main.py", args=["--host", "127.0.0.1", "--config", path])


def test_status_is_hello_and_telemetry_in_one_object(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path)
    status, headers, body = request(car.port, "/api/status")
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    doc = json.loads(body)
    assert doc["hello"]["type"] == "hello" and doc["hello"]["role"] == "viewer"
    assert doc["hello"]["firmware"] and doc["hello"]["simulated"] is True
    assert doc["telemetry"]["type"] == "telemetry" and doc["telemetry"]["driver"] is None
    assert status == 200 and request(car.port, "/api/status", method="HEAD")[0] == 200
    status, headers, _ = request(car.port, "/api/status", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"

    async def scenario():
        driver = await Client.connect(car)
        await driver.drive(0.5)
        await driver.wait_for(moving)
        status, _, body = request(car.port, "/api/status")
        t = json.loads(body)["telemetry"]
        assert t["driver"] == driver.hello["id"] and t["motor"]["left"] > 0
        # The snapshot is not a broadcast: the drivers' seq has no gap.
        seqs = [m["seq"] for _, m in driver.telemetry]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        await driver.close()
    run(scenario())


def test_http_stop_stops_a_driving_car(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path, access={"token": TOKEN}, limits={"deadman_ms": 3000})

    async def scenario():
        driver = await Client.connect(car, "/ws?token=" + TOKEN)
        await driver.drive(0.8)
        await driver.wait_for(moving)
        # Anyone may stop, without the token; curl sends no body.
        sent = time.monotonic()
        status, headers, body = request(car.port, "/api/stop", method="POST")
        assert status == 200 and json.loads(body) == {"stopped": True}
        assert headers["cache-control"] == "no-store"
        arrived, _ = await driver.wait_for(stopped, since=sent)
        assert arrived - sent < 0.2
        # A body is allowed (and ignored); chunked is not.
        assert request(car.port, "/api/stop", {"Content-Length": "2"}, method="POST", extra=b"{}")[0] == 200
        assert request(car.port, "/api/stop", {"Transfer-Encoding": "chunked"}, method="POST",
                       extra=b"0\r\n\r\n")[0] == 411
        assert request(car.port, "/api/stop")[0] == 405
        await driver.close()
    run(scenario())


def test_curl_examples_from_the_docs(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path)
    out = subprocess.run(["curl", "-sS", car.url + "/api/status"], capture_output=True, text=True, timeout=10)
    assert json.loads(out.stdout)["hello"]["type"] == "hello"
    out = subprocess.run(["curl", "-sS", "-X", "POST", car.url + "/api/stop"], capture_output=True,
                         text=True, timeout=10)
    assert json.loads(out.stdout) == {"stopped": True}


def test_same_origin_and_token_rules_as_the_websocket(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path, access={"token": TOKEN, "viewers_need_token": True})
    p = car.port
    status, _, body = request(p, "/api/status")
    assert status == 403 and b"token" in body
    assert request(p, "/api/status?token=" + TOKEN)[0] == 200
    assert request(p, "/api/status?token=wrong" + TOKEN)[0] == 403
    # A page from another site may not even stop the car (nor read it).
    evil = {"Origin": "http://evil.example"}
    status, _, body = request(p, "/api/stop", evil, method="POST")
    assert status == 403 and b"origin" in body
    assert request(p, "/api/status?token=" + TOKEN, evil)[0] == 403
    # Our own page's origin, and scripts without an Origin, may stop.
    assert request(p, "/api/stop", {"Origin": "http://127.0.0.1:%d" % p}, method="POST")[0] == 200
    assert request(p, "/api/stop", method="POST")[0] == 200


@pytest.mark.slow
def test_bad_api_requests_do_not_disturb_the_driver(start_micropython, tmp_path):
    car = start_car(start_micropython, tmp_path, limits={"deadman_ms": 500})

    async def scenario():
        driver = await Client.connect(car)
        loop = asyncio.get_running_loop()
        # Telemetry keeps its rate and the motors never stop meanwhile (kept_driving checks).
        async with kept_driving(driver) as start:
            def abuse():
                answers = []
                while time.monotonic() - start < 1.0:
                    answers.append(request(car.port, "/api/status", {"Content-Length": "x"})[0])
                    answers.append(request(car.port, "/api/stop", {"Content-Length": str(10 ** 10)},
                                           method="PUT")[0])
                    answers.append(request(car.port, "/api/nope", method="POST")[0])
                return answers

            answers = await loop.run_in_executor(None, abuse)
        assert set(answers) == {200, 405}, answers
        await driver.close()
    run(scenario())
