"""Where the firmware's heap goes, measured on the MicroPython Unix port.

  .venv/bin/python tools/measure/heap_report.py [--board esp32|esp8266|x64] [--seconds 10]
                                        [--heapsize 1M] [--romfs] [--no-stage]

--board esp32 / esp8266 measure with the 32-bit board proxies (`make proxies`;
.mpy files for them are mpy-cross -march=x86), x64 with the venv's Unix port.
Stages build/board-<arch> (tools/board/stage.py: lib/ as .mpy, as on a board) and
prints three tables, the figures docs/memory.md quotes:

1. Modules: heap each module keeps after import (gc.collect() before and
   after, so only what stays is counted), in two configurations:
   - "mpy in RAM": the .mpy files read from a filesystem, as `make deploy`
     puts them on a board: bytecode, constants and qstrs are copied to the heap;
   - "ROMFS": the same .mpy files in a ROMFS image (vfs.VfsRom, built with
     mpremote's make_romfs) executed in place: bytecode stays in the image,
     as it does in a ROMFS partition or (even less heap) frozen into firmware.
     The image itself sits in the heap here (the Unix port has no memory
     outside it) and is subtracted.
   Package __init__ rows and per-file rows come from a copy of the tree whose
   package __init__ files are empty, so each file is counted once.
2. Firmware at run time (mpy in RAM, with --heapsize): main.py runs the car
   with a reporter task that prints gc.collect()'d heap use; a CPython client
   plays idle / one viewer / a driver at 10 Hz plus the viewer / four clients.
3. Allocations per operation (gc disabled around one call): how much garbage
   one telemetry message, one drive message, one control tick make.

The x64 port's objects are bigger than a 32-bit board's (8-byte words,
32-byte GC blocks, boxed floats): use --board for a board's figures. CPython only.
"""
import argparse
import ast
import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools import common  # noqa: E402
from tools.common import ROOT, parse_size  # noqa: E402,F401  (parse_size: the memory tests use it from here)

# The MicroPython programs this report runs (tools/measure/probes/README.md).
PROBES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probes")
MODULES_PROBE = os.path.join(PROBES, "modules.py")
FIRMWARE_PROBE = os.path.join(PROBES, "firmware.py")
ROMFS_BOOT_PROBE = os.path.join(PROBES, "romfs_boot.py")
with open(ROMFS_BOOT_PROBE) as _f:
    ROMFS_BOOT = _f.read()  # its text: the memory tests write it beside a staged main.py
BUILD = os.path.join(ROOT, "build", "board-x64")
MICROPYTHON = common.micropython()
MARCH = "x64"
BOARD = "x64"
# --board: which interpreter measures, the .mpy arch it runs, its GC block size.
# The proxies are 32-bit Unix ports configured like the boards (`make proxies`).
BOARDS = {
    "x64": (MICROPYTHON, "x64", 32),
    "esp32": (common.board_proxy("esp32"), "x86", 16),
    "esp8266": (common.board_proxy("esp8266"), "x86", 16),
}


def probe_lists(path):
    """FILES, PACKAGES, EMPTIED, TRANSIENT: the literal assignments at the top of
    a probe file."""
    found = {}
    with open(path) as f:
        for node in ast.parse(f.read()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                try:
                    found[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    pass
    return found["FILES"], found["PACKAGES"], found["EMPTIED"], found["TRANSIENT"]


def select(board):
    """Measure with `board`'s interpreter (module globals: the CLI measures one board)."""
    global MICROPYTHON, MARCH, GC_BLOCK, BUILD, BOARD
    BOARD = board
    MICROPYTHON, MARCH, GC_BLOCK = BOARDS[board]
    BUILD = os.path.join(ROOT, "build", "board-" + MARCH)
    if not os.path.exists(MICROPYTHON):
        raise SystemExit("no %s interpreter at %s: run `make proxies`" % (board, MICROPYTHON))

# What probes/modules.py measures, read from it: the probe keeps them as
# literal tuples (handed in as JSON lists instead, the files mode ended in
# "FATAL: uncaught NLR" on the Unix port; not investigated further).
FILES, PACKAGES, EMPTIED, TRANSIENT = probe_lists(MODULES_PROBE)



GC_BLOCK = 32  # bytes per GC block on a 64-bit port (4 words)


def romfs_heapsize(budget, image_size, gc_block=GC_BLOCK):
    """-X heapsize giving `budget` bytes of heap besides the image's block:
    the block itself plus its share of the GC's tables (4 bits per block,
    rounded up generously to whole blocks)."""
    blocks = -(-image_size // gc_block) + 1
    return budget + blocks * gc_block + -(-blocks // 2)


def romfs_heapsize_exact(budget, image_path, micropython=None, gc_block=GC_BLOCK):
    """The largest -X heapsize (in 16-byte steps below romfs_heapsize()) after which
    ROMFS_BOOT, having mounted the image, has no more free than a fresh `budget` heap."""
    fresh = free_at_start(budget, micropython)
    heapsize = romfs_heapsize(budget, os.path.getsize(image_path), gc_block)
    mount_only = ROMFS_BOOT[:ROMFS_BOOT.index("\nif __name__")]
    while heapsize > budget:
        r = subprocess.run([micropython or MICROPYTHON, "-X", "heapsize=%d" % heapsize, "-c", mount_only],
                           cwd=os.path.dirname(os.path.abspath(image_path)), capture_output=True, text=True,
                           check=True)
        if int(r.stdout.split()[-1]) <= fresh:
            return heapsize
        heapsize -= 16
    raise RuntimeError("no heap size gives the budget")


def free_at_start(heapsize, micropython=None):
    """gc.mem_free() of a fresh interpreter with this heap (the baseline a
    ROMFS run must not exceed)."""
    r = subprocess.run([micropython or MICROPYTHON, "-X", "heapsize=%d" % heapsize, "-c",
                        "import gc; gc.collect(); print(gc.mem_free())"],
                       capture_output=True, text=True, check=True)
    return int(r.stdout)


def romfs_tree(build_dir, dest):
    """dest/: main.py, config.json, web/, lib.romfs (of build_dir/lib) and
    romfs_boot.py (probes/). Returns the image size."""
    for name in ("main.py", "config.json"):
        shutil.copy(os.path.join(build_dir, name), dest)
    shutil.copytree(os.path.join(build_dir, "web"), os.path.join(dest, "web"))
    shutil.copy(ROMFS_BOOT_PROBE, dest)
    return romfs_image(os.path.join(build_dir, "lib"), os.path.join(dest, "lib.romfs"))


def stage(build_dir):
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "board", "stage.py"), "--march", MARCH,
                    "--out", build_dir],
                   cwd=ROOT, check=True, capture_output=True)
    return build_dir


def empty_init_tree(lib, dest):
    """A copy of lib/ whose package __init__ files are empty (compiled)."""
    shutil.copytree(lib, dest)
    src = os.path.join(dest, "_empty.py")
    with open(src, "w") as f:
        f.write("")
    from tools.board.stage import compile_module
    for pkg in EMPTIED:
        compile_module(src, os.path.join(dest, pkg, "__init__.mpy"), MARCH, "__init__.py")
    os.remove(src)


def romfs_image(tree, path):
    from mpremote.romfs import make_romfs
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the tree
        image = make_romfs(tree, mpy_cross=False)
    with open(path, "wb") as f:
        f.write(image)
    return len(image)


def run_probe(script, args, heapsize="1M", cwd=None, timeout=60):
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=" + heapsize, script] + list(args),
                       capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if r.returncode:
        raise RuntimeError("probe failed:\n" + r.stdout + r.stderr)
    rows = {}
    qstrs = []
    for line in r.stdout.splitlines():
        if line.startswith("qstr pool:"):  # micropython.qstr_info()
            qstrs.append(int(line.split("n_qstr=")[1].split(",")[0]))
        elif line.startswith("ROW "):
            _, name, value = line.split()
            rows[name] = int(value)
            if len(qstrs) >= 2:
                rows["qstrs:" + name] = qstrs[-1] - qstrs[-2]
            qstrs = []
    return rows


def modules_table(build_dir):
    lib = os.path.join(build_dir, "lib")
    code = MODULES_PROBE
    with tempfile.TemporaryDirectory() as tmp:
        split = os.path.join(tmp, "split")
        empty_init_tree(lib, split)
        ram_files = run_probe(code, [split, "-", "files"])
        ram_pkgs = run_probe(code, [lib, "-", "packages"])
        image = os.path.join(tmp, "split.romfs")
        romfs_image(split, image)
        rom_files = run_probe(code, [split, image, "files"])
        full_image = os.path.join(tmp, "lib.romfs")
        image_size = romfs_image(lib, full_image)
        rom_pkgs = run_probe(code, [lib, full_image, "packages"])
    return ram_files, ram_pkgs, rom_files, rom_pkgs, image_size


def kb(n):
    return "%6.1f" % (n / 1024)


def print_modules(ram_files, ram_pkgs, rom_files, rom_pkgs, image_size):
    print("1. Heap kept per module after import (KB, %s, gc.collect deltas)" % BOARD)
    print("   %-24s %10s %8s" % ("package (with its files)", "mpy in RAM", "ROMFS"))
    for name in ("asyncio",) + PACKAGES + ("total-resident",):
        print("   %-24s %10s %8s" % (name, kb(ram_pkgs[name]), kb(rom_pkgs[name])))
    print("   %-24s %10s %8s %6s" % ("file (qstr pool pre-grown)", "mpy in RAM", "ROMFS", "qstrs"))
    listed_ram = listed_rom = 0
    for pkg in PACKAGES:
        names = ([] if pkg in EMPTIED else [pkg]) + [f for f in FILES if f.startswith(pkg + ".")]
        for f in names:
            listed_ram += ram_files[f]
            listed_rom += rom_files[f]
            print("   %-24s %10s %8s %6d" % (f, kb(ram_files[f]), kb(rom_files[f]),
                                            ram_files.get("qstrs:" + f, 0)))
    rest = ram_pkgs["total-resident"] - ram_pkgs["asyncio"] - listed_ram
    rest_rom = rom_pkgs["total-resident"] - rom_pkgs["asyncio"] - listed_rom
    print("   %-24s %10s %8s" % ("qstr pool chunks, " + "/".join(EMPTIED) + "/__init__",
                                 kb(rest), kb(rest_rom)))
    print("   loaded for one use (the boot's config check, each HTTP request), then dropped:")
    for f in TRANSIENT:
        print("   %-24s %10s %8s %6d" % (f, kb(ram_files[f]), kb(rom_files[f]),
                                        ram_files.get("qstrs:" + f, 0)))
    print("   %-24s %10s %8s" % ("left after unloading them (names stay interned)", kb(ram_files["transient-unloaded"]),
                                 kb(rom_files["transient-unloaded"])))
    print("   ROMFS image of lib/: %d bytes (flash on a board; subtracted above)" % image_size)


# -- run time ---------------------------------------------------------------

class Viewer:
    """Reads telemetry; records gaps and the heap figures it carries."""

    def __init__(self):
        self.last = None
        self.max_gap = 0.0
        self.count = 0
        self.heap_alloc = []
        self.heap_free = []

    async def run(self, url, stop, drive=False):
        import websockets
        async with websockets.connect(url, max_size=None) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello", hello
            sender = asyncio.ensure_future(self.drive(ws, stop)) if drive else None
            try:
                while not stop.is_set():
                    try:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    except asyncio.TimeoutError:
                        continue
                    if msg.get("type") != "telemetry":
                        continue
                    now = time.monotonic()
                    if self.last is not None:
                        self.max_gap = max(self.max_gap, now - self.last)
                    self.last = now
                    self.count += 1
                    self.heap_alloc.append(msg["heap_alloc"])
                    self.heap_free.append(msg["heap_free"])
            finally:
                if sender:
                    sender.cancel()

    @staticmethod
    async def drive(ws, stop):
        t0 = time.monotonic()
        while not stop.is_set():
            t = time.monotonic() - t0
            await ws.send(json.dumps({"type": "drive", "throttle": round(0.6 * math.sin(t), 3),
                                      "steer": round(0.4 * math.cos(t / 2), 3)}))
            await asyncio.sleep(0.1)  # 10 Hz


class Firmware:
    """main.py under the firmware probe; collects its HEAP lines."""

    def __init__(self, cwd, port, heapsize, script, micropython=None, romfs=False):
        self.lines = []
        self.proc = subprocess.Popen(
            [micropython or MICROPYTHON, "-X", "heapsize=%s" % heapsize, script, "--port", str(port)]
            + (["--romfs"] if romfs else []),
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    async def read(self):
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, self.proc.stdout.readline)
            if not line:
                return
            self.lines.append((time.monotonic(), line.rstrip()))

    def live_since(self, t):
        return [int(l.split()[1]) for (when, l) in self.lines if when >= t and l.startswith("HEAP ")]

    def first(self, prefix):
        for _, line in self.lines:
            if line.startswith(prefix + " "):
                return line[len(prefix) + 1:]
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


async def wait_listening(port, fw, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fw.proc.poll() is not None:
            raise RuntimeError("firmware exited:\n" + "\n".join(l for _, l in fw.lines))
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("firmware not listening")


async def refused_status(port, timeout=5):
    """The HTTP status a further WebSocket upgrade gets (the server full: 503)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n")
        line = await asyncio.wait_for(r.readline(), timeout)
        return int(line.split()[1])
    finally:
        w.close()


async def runtime(build_dir, heapsize, seconds, romfs=False):
    port = common.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        if romfs:  # probes/firmware.py imports the romfs_boot.py romfs_tree() put in tmp
            image = romfs_tree(build_dir, tmp)
            heapsize = romfs_heapsize(parse_size(heapsize), image, GC_BLOCK)
            script, cwd = os.path.join(tmp, "heap_probe.py"), tmp
            shutil.copy(FIRMWARE_PROBE, script)
        else:
            script, cwd = FIRMWARE_PROBE, build_dir
        return await _runtime(Firmware(cwd, port, heapsize, script, romfs=romfs), port, seconds)


async def _runtime(fw, port, seconds):
    reader = asyncio.ensure_future(fw.read())
    url = "ws://127.0.0.1:%d/ws" % port
    phases = {}
    viewer = Viewer()
    tasks = []
    stop = asyncio.Event()
    try:
        await wait_listening(port, fw)

        async def phase(name, duration):
            await asyncio.sleep(0.5)  # let it settle, then sample
            t = time.monotonic()
            await asyncio.sleep(duration)
            phases[name] = fw.live_since(t)

        await phase("idle, no clients", 1.5)
        tasks.append(asyncio.ensure_future(viewer.run(url, stop)))
        await phase("1 viewer", 1.5)
        driver = Viewer()
        tasks.append(asyncio.ensure_future(driver.run(url, stop, drive=True)))
        t_drive = time.monotonic()
        await phase("driver 10 Hz + viewer", max(2.0, seconds))
        extra = [Viewer(), Viewer()]
        tasks += [asyncio.ensure_future(v.run(url, stop)) for v in extra]
        await phase("driver + 3 viewers (max_clients 4)", 2.0)
        alive = fw.proc.poll() is None
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        fw.stop()
        await reader
    out = "\n".join(l for _, l in fw.lines)
    return {
        "phases": phases, "viewer": viewer, "alive": alive, "output": out,
        "romfs": (fw.first("ROMFS") or "").split(),
        "imported": int(fw.first("IMPORTED") or 0), "booted": int(fw.first("BOOTED") or 0),
        "loaded": (fw.first("LOADED") or "").split(),
        "ops": [l[3:].split() for _, l in fw.lines if l.startswith("OP ")],
        "drive_seconds": time.monotonic() - t_drive,
    }


def print_runtime(r, heapsize, romfs=False):
    print()
    print("2. Firmware at run time (%s, %s, heap %s; live = after gc.collect)" % (
        BOARD, "lib/ in ROMFS" if romfs else "mpy in RAM", heapsize))
    held = int(r["romfs"][0]) if romfs and r["romfs"] else 0
    if held:  # the image's block is flash on a board: not counted below
        print("   ROMFS image %d B in its own block (not counted below); heap free after "
              "mounting it %s B" % (held, r["romfs"][1]))
        r["imported"] -= held
        r["booted"] -= held
        r["phases"] = {k: [x - held for x in v] for k, v in r["phases"].items()}
        r["viewer"].heap_alloc = [x - held for x in r["viewer"].heap_alloc]
    print("   %-36s %8s" % ("after imports (before config)", kb(r["imported"])))
    print("   %-36s %8s" % ("booted (config dropped, car built)", kb(r["booted"])))
    base = None
    for name, values in r["phases"].items():
        if not values:
            print("   %-36s %8s" % (name, "no sample"))
            continue
        live = statistics.median(values)
        base = live if base is None else base
        print("   %-36s %8s   (+%.1f KB vs idle, max %s)" % (
            name, kb(live), (live - base) / 1024, kb(max(values)).strip()))
    v = r["viewer"]
    if not v.heap_alloc:
        print("   the viewer got no telemetry; firmware output:\n" + r["output"][-2000:])
    else:
        print("   viewer saw %d telemetry messages, largest gap %.0f ms" % (v.count, v.max_gap * 1000))
        print("   telemetry heap_alloc (not collected) min %s max %s KB; heap_free min %s KB" % (
            kb(min(v.heap_alloc)).strip(), kb(max(v.heap_alloc)).strip(),
            kb(min(v.heap_free)).strip()))
    transient = [m for m in TRANSIENT if m in r["loaded"]]
    print("   one-use modules still loaded (none expected between requests): %s" % (", ".join(transient) or "none"))
    print("   process alive at the end: %s; MemoryError in output: %s" % (
        r["alive"], "MemoryError" in r["output"]))
    print()
    print("3. Bytes allocated per operation (garbage for the GC, gc disabled around one call)")
    for name, n in r["ops"]:
        print("   %-36s %6s B" % (name, n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10, help="driving phase length")
    ap.add_argument("--heapsize", default="1M", help="heap for the run-time table")
    ap.add_argument("--board", default="x64", choices=sorted(BOARDS),
                    help="x64: the Unix port from the venv; esp32/esp8266: the 32-bit board proxies")
    ap.add_argument("--no-stage", action="store_true", help="use build/board-<arch> as it is")
    ap.add_argument("--only", choices=("modules", "runtime"), help="one table")
    ap.add_argument("--romfs", action="store_true",
                    help="run time with lib/ in ROMFS (--heapsize then excludes the image)")
    args = ap.parse_args()
    select(args.board)
    if not args.no_stage:
        stage(BUILD)
    if args.only != "runtime":
        print_modules(*modules_table(BUILD))
    if args.only != "modules":
        r = asyncio.run(runtime(BUILD, args.heapsize, args.seconds, args.romfs))
        print_runtime(r, args.heapsize, args.romfs)
        if not r["alive"] or "Traceback" in r["output"]:
            print("\nfirmware output:\n" + r["output"][-3000:])
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
