"""The MQTT codec's unit tests again, inside MicroPython: the venv's Unix port
and the 32-bit board proxies (the ESP8266 one lacks str.partition & co.)."""
import pytest

from conftest import board_proxy, run_micropython


def passed(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return int(result.stdout.strip().splitlines()[-1].split()[1])


def test_mqtt_codec_suite_passes_under_micropython():
    assert passed(run_micropython("tests/mp_runner.py", "tests/test_mqtt_codec.py")) >= 14


@pytest.mark.parametrize("chip", ["esp32", "esp8266"])
def test_mqtt_codec_suite_passes_on_the_board_proxies(chip):
    result = run_micropython("tests/mp_runner.py", "tests/test_mqtt_codec.py", micropython=board_proxy(chip))
    assert passed(result) >= 14
