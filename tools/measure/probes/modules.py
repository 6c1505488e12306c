# Heap each module keeps after import (tools/measure/heap_report.py, table 1).
#   micropython modules.py TREE IMAGE|- files|packages LISTS_JSON
# TREE: the staged lib/ (as .mpy); IMAGE: a ROMFS image of it to mount at /rom
# and import from instead ("-": from TREE); LISTS_JSON: heap_report's FILES,
# PACKAGES, TRANSIENT and EMPTIED. Prints "ROW <name> <bytes>", with
# micropython.qstr_info() lines around each import (the interned names it adds).
import gc, sys, json
tree, image, mode = sys.argv[1], sys.argv[2], sys.argv[3]
lists = json.loads(sys.argv[4])
FILES, PACKAGES, TRANSIENT, EMPTIED = lists["FILES"], lists["PACKAGES"], lists["TRANSIENT"], lists["EMPTIED"]
del lists
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
    for name in TRANSIENT:
        measure(name)
    gc.collect(); a = gc.mem_alloc()
    for name in TRANSIENT:
        del sys.modules[name]
    gc.collect(); print("ROW transient-unloaded", gc.mem_alloc() - a)
print("ROW image-held", held)
