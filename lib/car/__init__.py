# Tether car application: see docs/protocol.md for what it speaks.
import sys

VERSION = "0.1.0"
DEFAULT_AP_PASSWORD = "tether-car"  # boot warns while it is in use


_preloaded = None  # (path, (config, errors)) from preload_config()


def preload_config(path):
    """Load and check the config before car.app and the server are imported
    (car.main does): the checker's modules then peak in an empty heap, not on
    top of the server's code. load_config(path) hands the result over once."""
    global _preloaded
    _preloaded = (path, load_config(path))


def load_config(path="config.json"):
    """(config, errors) from path. The checker is loaded for this call and
    dropped again: it is the biggest car module and only needed at start-up."""
    global _preloaded
    if _preloaded and _preloaded[0] == path:
        found, _preloaded = _preloaded[1], None
        return found
    from car import config
    try:
        return config.load(path)
    finally:
        sys.modules.pop("car.config", None)
        sys.modules.pop("car.tls", None)
        globals().pop("config", None)
