"""What the tests share (tests import from here, never from conftest or another test):

- `unavailable(why)`: skip a test whose tool is not installed, fail it under CI;
- micropython: the firmware under the MicroPython Unix port (MicroPythonProcess,
  run_micropython, board_proxy) and mp_runner.py, which runs a plain-assert test
  module inside MicroPython;
- processes: free_port, wait_listening, stop (terminate, wait, kill), stopped_after
  (the body of a factory fixture: stops what the test made);
- wsraw: the one raw WebSocket client; car: the car's client (websockets) and config;
- mqtt: mosquitto started per test (Broker), an MQTT client, unshare -n;
- fleet, uplink, ota, tls, tooling, hardening, browser, fuzz: per-layer helpers;
- servers/: the test servers run under MicroPython; clients/: the WebSocket client
  scenarios; fakes/: machine and network modules for "real" hardware mode.
"""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(ROOT, "lib")
TOOLS = os.path.join(ROOT, "tools")
FAKES = os.path.join(ROOT, "tests", "support", "fakes")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(why):
    """Something a test needs is not installed (a browser, a board proxy, npm's
    packages): skip with why, which says how to get it; under CI, where .ci/run
    installs everything, that is a failure."""
    if IN_CI:
        pytest.fail("CI=true but " + why, pytrace=False)
    pytest.skip(why)
