"""Fixtures only: what tests import lives in tests/support/ (tests never import
from here). Markers are registered in pytest.ini."""
import pytest

from support.micropython import MicroPythonProcess


@pytest.fixture
def start_micropython():
    """start_micropython(script, args=(), heapsize=None) -> MicroPythonProcess,
    stopped after the test."""
    procs = []

    def start(script, args=(), **kw):
        p = MicroPythonProcess(script, args, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()
