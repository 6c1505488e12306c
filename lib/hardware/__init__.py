# Car hardware behind one interface (see docs/wiring.md):
#   hw = hardware.create(cfg)   # cfg: the "hardware" section of config.json
#   hw.set_motors(left, right)  hw.stop()  hw.distance_cm()  hw.battery_v()
#   hw.set_light(on)  hw.set_horn(on)  hw.set_pan(deg)  hw.rssi()
#   hw.tick(now_ms)  hw.pose()  hw.room()  hw.applied()  hw.simulated
import sys


def _load(name):
    __import__("hardware." + name)
    return sys.modules["hardware." + name]


def _drop(name):
    """Forget a boot-only submodule so its heap is freed once unused."""
    sys.modules.pop("hardware." + name, None)
    globals().pop(name, None)


def __getattr__(name):
    # DEFAULTS and merged() are needed at boot only (config checking, create)
    # and hold the biggest dict here: loaded on first use, not kept by us.
    if name == "DEFAULTS" or name == "merged":  # (a constant tuple would stay in the heap)
        return getattr(_load("defaults"), name)
    # The submodules: MicroPython's `from hardware import outputs` asks here
    # before it looks for a submodule, and an AttributeError would end the
    # import. Any other name is an AttributeError, so hasattr() answers False.
    # (One string, not a tuple of names: see above.)
    if name in "base chip config defaults motors outputs pins pwm real sensors sim".split():
        return _load(name)
    raise AttributeError(name)


def is_number(v):
    """A finite int or float; a bool is not a number here (CPython makes it
    an int subclass). The config checks of car and hardware and the drive
    protocol use this one."""
    return type(v) in (int, float) and v == v and v - v == 0


def validate(cfg, prefix="hardware"):
    """List of (key, message) for what is wrong in cfg; [] when usable.
    The checker is loaded for this call and dropped again: it is bigger than
    everything else here and a board runs it once, at boot."""
    try:
        return _load("config").validate(cfg, prefix)
    finally:
        _drop("config")
        _drop("pins")  # the chips' pin rules, when config loaded them
        _drop("defaults")  # imported by config; create() loads it again
        _drop("chip")  # imported by defaults



def on_board():
    """The chip this runs on (hardware.chip.on_board()), None on a computer:
    its module loaded for the call and dropped."""
    try:
        return _load("chip").on_board()
    finally:
        _drop("chip")


def create(cfg=None, checked=False):
    """The car hardware for the hardware config section `cfg` (dict or None;
    missing keys take DEFAULTS). Validate first: create() trusts cfg.
    checked: cfg is the config checker's section (car.config: every key
    there, the chip's defaults merged in), used as it is. A car booting
    from its stamp then never loads the defaults table, the biggest module
    here, whose names would stay interned for good."""
    if not checked:
        try:
            cfg = _load("defaults").merged(cfg)
        finally:
            _drop("defaults")
            _drop("chip")
    mode = cfg["mode"]
    if mode == "sim" or (mode == "auto" and not on_board()):
        from hardware.sim import SimHardware
        return SimHardware(cfg)
    from hardware.real import RealHardware
    return RealHardware(cfg)
