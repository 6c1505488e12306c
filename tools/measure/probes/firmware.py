# The real firmware with a reporter (tools/measure/heap_report.py, tables 2, 3).
#   cd <a staged board tree> && micropython firmware.py --port N [--romfs]
# The working directory is the board's /: main.py, config.json, web/ and lib/
# (or, with --romfs, lib.romfs: romfs_boot.py mounts it). Through car.app's
# on_serve hook it prints, once the car is built: LOADED (sys.modules),
# BOOTED (heap in use), OP lines (bytes one operation allocates); then every
# 250 ms HEAP <alloc> <free> after gc.collect().
import gc, sys
if "--romfs" in sys.argv:
    import romfs_boot  # beside this file: mounts lib.romfs at /rom
else:
    sys.path.insert(0, "lib")
import asyncio
from car import app
from time import ticks_ms

class FakeWs:
    id = 99
    def send_nowait(self, msg):
        pass

def allocated(fn, *args):
    gc.collect(); gc.disable()
    a = gc.mem_alloc()
    fn(*args)
    b = gc.mem_alloc()
    gc.enable()
    return b - a

def per_operation(car):
    ws = FakeWs()
    car.telemetry(ticks_ms())  # warm: first-call caches
    print("OP telemetry", allocated(car.telemetry, ticks_ms()))
    print("OP hello", allocated(car.hello, ws))
    drive = '{"type":"drive","throttle":0.5,"steer":-0.25}'
    car.handle(ws, drive)
    print("OP handle-drive", allocated(car.handle, ws, drive))
    car.control.release()
    car.stop_motors()
    print("OP tick", allocated(car.tick, ticks_ms()))
    print("OP broadcast-nobody", allocated(car.server.broadcast, car.telemetry(ticks_ms()), "/ws"))

async def report():
    while True:
        await asyncio.sleep_ms(250)
        gc.collect()
        print("HEAP", gc.mem_alloc(), gc.mem_free())

def on_serve(car):
    gc.collect()
    print("LOADED", " ".join(sorted(k for k in sys.modules)))
    print("BOOTED", gc.mem_alloc())
    per_operation(car)
    asyncio.create_task(report())

app.on_serve = on_serve
gc.collect()
print("IMPORTED", gc.mem_alloc())
# main.py finds config.json and web/ beside the path in sys.argv[0]: the
# working directory, as main.py sits in a board's /.
sys.argv[0] = "./main.py"
sys.path.insert(0, ".")
import main  # reads --port from sys.argv
