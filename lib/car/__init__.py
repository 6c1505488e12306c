# Tether car application: see docs/protocol.md for what it speaks.
import sys

VERSION = "0.1.0"
DEFAULT_AP_PASSWORD = "tether-car"  # boot warns while it is in use


def drop(name):
    """Forget car.<name>, a module loaded for one use: out of sys.modules
    and off this package (the import set it here too), so its heap is
    freed once nothing else holds it."""
    sys.modules.pop("car." + name, None)
    globals().pop(name, None)


def load_config(path="config.json"):
    """(config, errors) from path, as car/stamp.py reads it: loaded for this
    call, since a board reads its config once, at start-up."""
    from car import stamp

    try:
        return stamp.load(path)
    finally:
        drop("stamp")
