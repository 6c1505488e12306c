"""The MQTT codec's unit tests again, inside MicroPython."""
from conftest import run_micropython


def test_mqtt_codec_suite_passes_under_micropython():
    result = run_micropython("tests/mp_runner.py", "tests/test_mqtt_codec.py")
    assert result.returncode == 0, result.stdout + result.stderr
    passed = int(result.stdout.strip().splitlines()[-1].split()[1])
    assert passed >= 13, result.stdout
