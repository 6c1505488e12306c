# Heap each module keeps after import (tools/measure/heap_report.py, table 1).
#   micropython modules.py TREE IMAGE|- files|packages
# TREE: the staged lib/ (as .mpy); IMAGE: a ROMFS image of it to mount at /rom
# and import from instead ("-": from TREE). Prints "ROW <name> <bytes>", with
# micropython.qstr_info() lines around each import (the interned names it adds).
# heap_report.py reads the four lists below from this file (its tables).
# Import order: dependencies first, so each row is that file's own cost.
FILES = (
    "asyncio",
    "wsserver.errors", "wsserver._native", "wsserver.frames", "wsserver.origin", "wsserver.server",
    "hardware.base", "hardware.sim",
    "car.protocol", "car.drive", "car.control", "car.access", "car.app",
)
PACKAGES = ("wsserver", "hardware", "car")
# Package whose __init__ imports its files: emptied in the per-file tree, its
# exports put back (outside the measurement) for the packages that use them.
EMPTIED = {"wsserver": ("wsserver.server", "wsserver.errors")}
# Loaded for one use, then dropped: at boot (the config check) and for each
# HTTP request (Server.unload_http: the head, the upgrade, routes, files).
# Measured after the rest, and again after unloading, to show they really go.
TRANSIENT = ("hardware.defaults", "hardware.config", "car.config",
             "wsserver.upgrade", "wsserver.http", "wsserver.exchange", "wsserver.answer")

import gc, sys
tree, image, mode = sys.argv[1], sys.argv[2], sys.argv[3]
gc.collect()
held = 0
if image != "-":
    import os, vfs
    n = os.stat(image)[6]
    gc.collect(); a = gc.mem_alloc()
    buf = bytearray(n)
    with open(image, "rb") as f:
        f.readinto(buf)
    vfs.mount(vfs.VfsRom(buf), "/rom")
    gc.collect(); held = gc.mem_alloc() - a
    tree = "/rom"
sys.path.insert(0, tree)
import micropython
if mode == "files":
    # The qstr pool grows in doubling chunks (20, 40, ... 1280 entries):
    # whichever import happens to need a new chunk would be charged for it.
    # Intern dummy names until a chunk of >= 4096 entries exists, so each
    # file below pays only for its own names (counted: the QSTR lines).
    class Names:
        pass
    names = Names()
    i = 0
    while True:
        gc.collect(); a = gc.mem_alloc()
        setattr(names, "_warm%d" % i, None)
        i += 1
        if gc.mem_alloc() - a > 4096 * 10:
            break
    del names
def measure(name):
    gc.collect(); a = gc.mem_alloc()
    micropython.qstr_info()
    __import__(name)
    gc.collect(); b = gc.mem_alloc()
    micropython.qstr_info()
    print("ROW", name, b - a)
gc.collect(); start = gc.mem_alloc()
def measure_package(pkg):
    # The package with every file the firmware keeps from it.
    gc.collect(); a = gc.mem_alloc()
    __import__(pkg)
    for name in FILES:
        if name.startswith(pkg + "."):
            __import__(name)
    gc.collect(); print("ROW", pkg, gc.mem_alloc() - a)
if mode == "packages":
    measure(FILES[0])
    for pkg in PACKAGES:
        measure_package(pkg)
for name in (PACKAGES + FILES if mode == "files" else ()):
    measure(name)
    if mode == "files":
        for pkg, sources in EMPTIED.items():
            if name == sources[0]:
                for src in sources:
                    for k, v in sys.modules[src].__dict__.items():
                        if k[0] != "_":
                            setattr(sys.modules[pkg], k, v)
gc.collect(); print("ROW total-resident", gc.mem_alloc() - start)
if mode == "files":
    gc.collect(); a = gc.mem_alloc()
    for name in TRANSIENT:
        measure(name)
    for name in TRANSIENT:
        del sys.modules[name]
        dot = name.rfind(".")
        try:
            delattr(sys.modules[name[:dot]], name[dot + 1:])
        except AttributeError:
            pass
    gc.collect(); print("ROW transient-unloaded", gc.mem_alloc() - a)
print("ROW image-held", held)
