"""HTTPS and WSS on the car (config server.tls), against the real firmware on
the Unix port with certificates made by tools/board/cert.py (what `make cert` runs).
The clients verify the certificate against the test CA, as a phone that
trusts the maker's CA does; nothing here turns verification off."""
import asyncio
import json
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request

import pytest
import websockets

from support import ROOT
from support.car import Client, moving, write_config
from support.tls import client_context, client_hello, make_certs, tls_config
from support.wsraw import read_to_eof

sys.path.insert(0, ROOT)  # tools.board.stage


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs")
    return out, make_certs(out)


@pytest.fixture
def tls_car(start_micropython, tmp_path, certs):
    ca, car = certs
    proc = start_micropython("main.py", args=["--config", tls_config(tmp_path, car)])
    proc.https = "https://localhost:%d" % proc.port
    proc.wss = "wss://localhost:%d/ws" % proc.port
    proc.ctx = client_context(ca)
    return proc


async def connect(proc, ctx=None):
    ws = await websockets.connect(proc.wss, ssl=ctx or proc.ctx, max_queue=None, ping_interval=None)
    client = Client(ws)
    client.hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
    client._reader = asyncio.ensure_future(client._read())
    return client


def run(coro, timeout=40):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_serves_the_page_over_https_with_the_ca(tls_car):
    assert "Tether running at https://" in tls_car.output()
    with urllib.request.urlopen(tls_car.https + "/", context=tls_car.ctx, timeout=10) as r:
        assert r.status == 200 and b"<html" in r.read().lower()
    # Without the CA the certificate is not trusted: verification is on.
    with pytest.raises(urllib.error.URLError) as e:
        urllib.request.urlopen(tls_car.https + "/", context=ssl.create_default_context(), timeout=10)
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)


def test_wss_client_drives_the_car(tls_car):
    async def main():
        c = await connect(tls_car)
        assert c.hello["type"] == "hello" and c.hello["role"] == "viewer"
        await c.drive(0.8)
        assert (await c.reply()) == {"type": "role", "role": "driver"}
        await c.wait_for(moving, timeout=3)
        assert (await c.ping(7)) < 1.0
        await c.close()
    run(main())


def test_wrong_name_is_refused_by_the_client(tls_car):
    # The same car asked for by a name its certificate does not carry.
    async def main():
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|not valid for"):
            await websockets.connect("wss://127.0.0.1:%d/ws" % tls_car.port, ssl=tls_car.ctx,
                                     server_hostname="other-car.local")
        c = await connect(tls_car)  # and the car goes on serving
        await c.close()
    run(main())


def test_plain_http_on_the_tls_port_is_refused_within_a_second(tls_car):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", tls_car.port), timeout=2) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = read_to_eof(s)
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"use https://" in answer
    assert elapsed < 1.0, elapsed


def test_tls_hello_on_a_plain_port_is_refused_within_a_second(start_micropython, tmp_path):
    proc = start_micropython("main.py", args=["--config", write_config(tmp_path)])
    hello = client_hello()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", proc.port), timeout=2) as s:
        s.sendall(hello)
        answer = read_to_eof(s)
    assert time.monotonic() - started < 1.0
    assert answer.startswith(b"HTTP/1.1 400") and b"not TLS" in answer, answer
    # A real TLS client gets an error at once, not a hang.
    started = time.monotonic()
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", proc.port), timeout=2) as s:
            ssl.create_default_context().wrap_socket(s, server_hostname="localhost")
    assert time.monotonic() - started < 1.0


@pytest.mark.slow
def test_stalled_handshakes_are_dropped_while_the_driver_drives(tls_car):
    """Two clients send half a ClientHello and stall: each is closed by the
    request deadline (5 s), while the driver's telemetry keeps flowing."""
    hello = client_hello()

    async def main():
        driver = await connect(tls_car)
        await driver.drive(0.5)
        await driver.wait_for(moving, timeout=3)
        assert (await driver.reply())["role"] == "driver"
        stalled = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", tls_car.port))
            s.sendall(hello[:len(hello) // 2])
            s.setblocking(False)
            stalled.append(s)
        opened = time.monotonic()
        closed_at = {}
        start_count = len(driver.telemetry)
        while len(closed_at) < len(stalled) and time.monotonic() - opened < 9:
            await driver.drive(0.5)
            await asyncio.sleep(0.1)
            for i, s in enumerate(stalled):
                if i in closed_at:
                    continue
                try:
                    if s.recv(100) == b"":
                        closed_at[i] = time.monotonic() - opened
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    closed_at[i] = time.monotonic() - opened
        for s in stalled:
            s.close()
        assert len(closed_at) == 2, "stalled handshakes still open after 9 s"
        assert all(4.0 < t < 7.0 for t in closed_at.values()), closed_at
        arrivals = [t for t, _ in driver.telemetry[start_count:]]
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        assert max(gaps) < 0.2, "telemetry gap %.3f s" % max(gaps)
        last = driver.telemetry[-1][1]  # still the driver, still commanding forward
        assert last["motor"]["left"] == 0.5 and last["driver"] == driver.hello["id"], last
        # And a new client gets in once the stalled ones are gone.
        other = await connect(tls_car)
        await other.close()
        await driver.close()
        return closed_at, max(gaps)
    closed, gap = run(main())
    print("stalled handshakes closed after %s s; longest telemetry gap %.0f ms"
          % (sorted(round(t, 2) for t in closed.values()), gap * 1000))


@pytest.mark.slow
def test_staged_board_tree_carries_the_certificate_and_serves_https(start_micropython, tmp_path, certs):
    """make deploy's file tree (tools/board/stage.py) with server.tls: the car's
    certificate from certs/<hostname>/ goes to tls/, and the firmware run from
    that tree (relative paths, as on a board) serves https with it."""
    from tools.board import stage
    ca, car_dir = certs
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"wifi": {"hostname": "tether-car"}, "server": {"tls": {}},
                                  "hardware": {"mode": "sim"}}))
    out, files = stage.stage("x64", out_dir=str(tmp_path / "board"), config=str(config),
                             log=lambda *a: None, certs=str(ca))
    for name in ("cert.der", "key.der"):
        with open("%s/%s" % (car_dir, name), "rb") as f:
            assert open("%s/tls/%s" % (out, name), "rb").read() == f.read()
        assert "tls/" + name in files
    proc = start_micropython("main.py", cwd=out)
    request = urllib.request.Request("https://localhost:%d/" % proc.port,
                                     headers={"Accept-Encoding": "gzip"})  # the board has web/*.gz only
    with urllib.request.urlopen(request, context=client_context(ca), timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
    # No certificate made for the car named in config.json: stage says how to make one.
    config.write_text(json.dumps({"wifi": {"hostname": "other-car"}, "server": {"tls": {}}}))
    with pytest.raises(stage.StageError, match="make cert NAME=other-car"):
        stage.stage("x64", out_dir=str(tmp_path / "board2"), config=str(config),
                    log=lambda *a: None, certs=str(ca))


def test_missing_certificate_boots_plain_and_says_why(start_micropython, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"hardware": {"mode": "sim"},
                                  "server": {"tls": {"cert": "nope/cert.der", "max_clients": 9}}}))
    proc = start_micropython("main.py", args=["--config", str(config)])
    with urllib.request.urlopen("http://127.0.0.1:%d/" % proc.port, timeout=10) as r:
        assert r.status == 200
    out = proc.output()
    assert "server.tls.max_clients: must be an int between 1 and 4" in out
    assert "server.tls: cannot read %s/nope/cert.der" % tmp_path in out
    assert "serving plain HTTP instead" in out and "Tether running at http://" in out


@pytest.mark.slow
def test_tls_client_limit_answers_503_on_the_esp32_proxy(start_micropython, tmp_path, certs):
    """The car on the esp32 board proxy (lib/ as .py source, compiled into a 128 KB heap), server.tls.max_clients 2:
    two WSS clients in (one driving), the third refused 503 with Retry-After
    (the spare TLS session answers it), a burst of page loads beyond the
    sessions waits its turn and is served, and nothing runs out of memory."""
    from support.micropython import board_proxy
    ca, car_dir = certs
    proxy = board_proxy("esp32")
    proc = start_micropython("main.py", args=["--config", tls_config(tmp_path, car_dir, max_clients=2)],
                             heapsize="128K", micropython=proxy)
    proc.wss = "wss://localhost:%d/ws" % proc.port
    proc.ctx = client_context(ca)

    async def main():
        started = time.monotonic()
        a = await connect(proc)
        handshake = time.monotonic() - started
        b = await connect(proc)
        await a.drive(0.4)
        await a.wait_for(moving, timeout=3)
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(proc.wss, ssl=proc.ctx)
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "2"
        # Six page loads at once through the one spare session: served in turn.
        loop = asyncio.get_running_loop()

        def load():
            with urllib.request.urlopen("https://localhost:%d/" % proc.port, context=proc.ctx,
                                        timeout=10) as r:
                return r.status
        statuses = await asyncio.gather(*[loop.run_in_executor(None, load) for _ in range(6)])
        assert statuses == [200] * 6
        await a.drive(0.4)
        _, t = await a.wait_for(moving, timeout=3)
        await b.close()
        c = await connect(proc)  # b's place is free again
        await c.close()
        await a.close()
        return handshake, t["heap_free"], t["heap_alloc"]
    handshake, free, alloc = run(main(), timeout=90)
    out = proc.output()
    assert "MemoryError" not in out and "Traceback" not in out, out
    print("esp32 proxy, 128K heap: first wss handshake %.0f ms; heap with 2 TLS clients: "
          "%d B used, %d B free" % (handshake * 1000, alloc, free))
