# The car firmware with the simulated car, reporting when each motor write
# happens: command-to-motor latency, measured (tools/measure/bench.py, tests).
#   micropython tools/measure/bench_servers/car_motor.py --port N --config FILE [--tick-ms MS]
# Prints "motor <ticks_us> <left>" on every write to the motors. ticks_us on
# the Unix port is CLOCK_MONOTONIC in µs (masked to the port's ticks period),
# the clock CPython's time.monotonic_ns() reads, so the client compares its
# send time with these directly. --tick-ms slows the 20 ms control tick: a
# drive command that waited for a tick would then show it plainly.
import sys

sys.path.insert(0, "lib")
from time import ticks_us

import hardware
from car import app

argv = sys.argv
port = int(argv[argv.index("--port") + 1])
config = argv[argv.index("--config") + 1]
if "--tick-ms" in argv:
    app.TICK_MS = int(argv[argv.index("--tick-ms") + 1])
real_create = hardware.create


def create(cfg, checked=False):
    hw = real_create(cfg, checked)
    real_set = hw.set_motors

    def set_motors(left, right):
        real_set(left, right)
        print("motor", ticks_us(), left)

    hw.set_motors = set_motors
    return hw


hardware.create = create
app.run(config_path=config, host="127.0.0.1", port=port, static_dir="web")
