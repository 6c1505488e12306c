# Car hardware behind one interface (see docs/wiring.md):
#   hw = hardware.create(cfg)   # cfg: the "hardware" section of config.json
#   hw.set_motors(left, right)  hw.stop()  hw.distance_cm()  hw.battery_v()
#   hw.set_light(on)  hw.set_horn(on)  hw.set_pan(deg)  hw.rssi()
#   hw.tick(now_ms)  hw.pose()  hw.room()  hw.applied()  hw.simulated
import sys

from hardware.defaults import DEFAULTS, merged  # noqa: F401 (re-exported)


def validate(cfg, prefix="hardware"):
    """List of (key, message) for what is wrong in cfg; [] when usable.
    The checker is loaded for this call and dropped again: it is bigger than
    everything else here and a board runs it once, at boot."""
    from hardware import config
    try:
        return config.validate(cfg, prefix)
    finally:
        sys.modules.pop("hardware.config", None)
        globals().pop("config", None)


def on_board():
    """True on an ESP32/ESP8266 (a real `machine` and not the Unix port)."""
    if sys.platform in ("linux", "darwin", "win32"):
        return False
    try:
        import machine  # noqa: F401
    except ImportError:
        return False
    return True


def create(cfg=None):
    """The car hardware for the hardware config section `cfg` (dict or None;
    missing keys take DEFAULTS). Validate first: create() trusts cfg."""
    cfg = merged(cfg)
    mode = cfg["mode"]
    if mode == "sim" or (mode == "auto" and not on_board()):
        from hardware.sim import SimHardware
        return SimHardware(cfg)
    from hardware.real import RealHardware
    return RealHardware(cfg)
