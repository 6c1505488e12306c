# Tether car application: see docs/protocol.md for what it speaks.
import sys

VERSION = "0.1.0"
DEFAULT_AP_PASSWORD = "tether-car"  # boot warns while it is in use


def load_config(path="config.json"):
    """(config, errors) from path. The checker is loaded for this call and
    dropped again: it is the biggest car module and only needed at start-up."""
    from car import config
    try:
        return config.load(path)
    finally:
        for name in ["config", "tls", "uplink_config", "salvage"]:  # a list: no constant tuple kept
            sys.modules.pop("car." + name, None)
            globals().pop(name, None)
