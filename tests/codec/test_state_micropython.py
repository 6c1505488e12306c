"""The connection state machine's unit tests again, inside MicroPython (the
Unix port and the board proxies)."""
import pytest

from support.micropython import board_proxy, run_test_module


@pytest.mark.parametrize("chip", [None, "esp32", "esp8266"])
def test_state_suite_passes_under_micropython(chip):
    # every test_ function in it, none fewer
    run_test_module("tests/codec/test_state.py", micropython=board_proxy(chip) if chip else None)
