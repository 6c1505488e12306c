"""Fixtures only: what tests import lives in tests/support/ (tests never import
from here). Markers are registered in pytest.ini."""
import pytest

from support.micropython import MicroPythonProcess
from support.processes import stopped_after


@pytest.fixture
def start_micropython():
    """start_micropython(script, args=(), heapsize=None) -> MicroPythonProcess,
    stopped after the test."""
    yield from stopped_after(MicroPythonProcess)


@pytest.fixture
def broker(tmp_path):
    """A mosquitto of this test's own (support.mqtt.Broker), killed after it;
    the tests using it skip without mosquitto."""
    from support.mqtt import Broker

    b = Broker(tmp_path)
    yield b
    b.kill()
