"""The MQTT codec's unit tests again, inside MicroPython: the venv's Unix port
and the 32-bit board proxies (the ESP8266 one lacks str.partition & co.)."""
import pytest

from support.micropython import board_proxy, run_test_module


def test_mqtt_codec_suite_passes_under_micropython():
    run_test_module("tests/codec/test_mqtt_codec.py")  # every test_ function in it, none fewer


@pytest.mark.parametrize("chip", ["esp32", "esp8266"])
def test_mqtt_codec_suite_passes_on_the_board_proxies(chip):
    run_test_module("tests/codec/test_mqtt_codec.py", micropython=board_proxy(chip))
