import pytest

from support import memory_checks
from support.micropython import board_proxy


@pytest.fixture(scope="session")
def link_memory_runs():
    """Both link memory checks, started together by the first test that needs
    either (support/memory_checks.py)."""
    runs = memory_checks.start(board_proxy("esp32"))
    yield runs
    memory_checks.stop(runs)
