"""The codec's unit tests again, inside MicroPython (viper unmask and UTF-8)."""
import pytest

from support.micropython import run_micropython, run_test_module


@pytest.mark.slow
def test_codec_suite_passes_under_micropython():
    run_test_module("tests/codec/test_codec.py")  # every test_ function in it, none fewer


def test_viper_paths_are_used_under_micropython():
    # ...and their Python twins are not loaded beside them (heap a board keeps for nothing).
    result = run_micropython("import sys; sys.path.insert(0, 'lib'); from wsserver import frames, _native; "
                             "print(frames.unmask is _native.unmask, frames.utf8_validate is _native.utf8_validate, "
                             "'wsserver._portable' in sys.modules)")
    assert result.stdout.split() == ["True", "True", "False"], result.stdout + result.stderr


def test_server_uses_a_buffer_the_caller_allocated_early():
    # Server(buffer=...) is how a small board keeps its one large block: the
    # caller allocates it before imports fragment the heap (tools/measure/echo_server.py).
    result = run_micropython("import sys; sys.path.insert(0, 'lib'); from wsserver import Server; "
                             "b = bytearray(100); print(Server(buffer=b).buf is b, len(Server().buf), "
                             "len(Server(buffer_size=512).buf))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "2048", "512"]


def test_server_limits_default_on_the_class_and_unknown_ones_are_named():
    result = run_micropython(
        "import sys; sys.path.insert(0, 'lib'); from wsserver import Server\n"
        "s = Server(max_clients=2)\n"
        "print(s.max_clients, s.max_message, Server.max_clients)\n"
        "for name in ('max_client', 'route', '_buf'):\n"
        "    try:\n        Server(**{name: 2})\n    except TypeError as e:\n        print(e)\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["2 4096 4", "Server() has no limit named 'max_client'",
                                          "Server() has no limit named 'route'",
                                          "Server() has no limit named '_buf'"]
