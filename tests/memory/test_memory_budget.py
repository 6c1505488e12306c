"""Budgets proven, not hoped: the whole firmware (simulated car, wsserver, the
tree tools/board/stage.py builds for the chip, exactly as `make deploy` / `make image`
write it) runs for a minute with a driver at 10 Hz and viewers inside a fixed
heap, with no MemoryError, no traceback, no telemetry gap over 250 ms and no
client refused below the configured maximum. docs/memory.md has the figures.

- esp32 proxy (32-bit, REPR_A, `make proxies`), the `make deploy` layout (.mpy
  files on the filesystem), driver + 3 viewers (max_clients 4).
- esp8266 proxy (32-bit, REPR_C), the ROMFS layout its FLASH_2M_ROMFS firmware
  gets (lib/ in lib.romfs), driver + 1 viewer (its staged max_clients is 2), and
  the next client is refused with the documented 503, never a MemoryError.
- x64 (the venv's Unix port), lib/ in ROMFS, driver + 1 viewer.

ROMFS: the Unix port has no memory outside its GC heap, so the image is read
into one block allocated first and the heap is enlarged by exactly that block;
each ROMFS test checks that what is left free is no more than a fresh
interpreter with the budget has.

  TETHER_BUDGET_SECONDS  driving time (default 60)
  TETHER_BUDGET_HEAP     override every test's heap budget (e.g. 60K to find an edge)
"""
import asyncio
import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

from support.micropython import board_proxy, run_micropython
from support.processes import free_port

from support import FAKES, ROOT
sys.path.insert(0, ROOT)
from tools.measure import heap_report  # noqa: E402

SECONDS = float(os.environ.get("TETHER_BUDGET_SECONDS", "60"))
MAX_GAP_S = 0.25


def staged(tmp_path, chip, march, romfs):
    out = tmp_path / ("board-%s-%s" % (chip or march, "romfs" if romfs else "fs"))
    cmd = [sys.executable, os.path.join(ROOT, "tools", "board", "stage.py"), "--march", march, "--out", str(out),
           "--romfs" if romfs else "--no-romfs",
           # the config a maker starts from, not whatever config.json this checkout has
           "--config", os.path.join(ROOT, "config.example.json")]
    if chip:
        cmd += ["--chip", chip]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, "tools/board/stage.py failed:\n" + r.stdout + r.stderr
    return out


async def drive_and_watch(fw, port, viewers, seconds, then_refused):
    url = "ws://127.0.0.1:%d/ws" % port
    stop = asyncio.Event()
    watchers = [heap_report.Viewer() for _ in range(viewers)]
    driver = heap_report.Viewer()
    await heap_report.wait_listening(port, fw)
    tasks = [asyncio.ensure_future(watchers[0].run(url, stop))]
    await asyncio.sleep(0.3)
    tasks.append(asyncio.ensure_future(driver.run(url, stop, drive=True)))
    for v in watchers[1:]:
        await asyncio.sleep(0.2)
        tasks.append(asyncio.ensure_future(v.run(url, stop)))
    refused = None
    if then_refused:
        await asyncio.sleep(2)
        refused = await heap_report.refused_status(port)
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline and fw.proc.poll() is None \
            and not any(t.done() for t in tasks):
        await asyncio.sleep(0.2)
    alive = fw.proc.poll() is None
    stop.set()
    errors = [r for r in await asyncio.gather(*tasks, return_exceptions=True) if r is not None]
    return watchers[0], driver, alive, errors, refused


def run_budget(cwd, script, micropython, heapsize, viewers, then_refused=False):
    port = free_port()
    fw = heap_report.Firmware(str(cwd), port, heapsize, script, micropython=micropython)

    async def run():
        reader = asyncio.ensure_future(fw.read())
        try:
            return await drive_and_watch(fw, port, viewers, SECONDS, then_refused)
        finally:
            fw.stop()
            await reader

    viewer, driver, alive, errors, refused = asyncio.run(run())
    output = "\n".join(line for _, line in fw.lines)
    return fw, viewer, driver, alive, errors, refused, output


def check(viewer, driver, alive, errors, output):
    assert "MemoryError" not in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert alive, "firmware exited:\n" + output[-3000:]
    assert not errors, "client failed (a 500 is a MemoryError in the server): %r\n%s" % (
        errors, output[-3000:])
    assert driver.count > 0  # the driver connected and was served too
    assert viewer.count >= SECONDS * 20 * 0.8, viewer.count  # 20 Hz telemetry, most of it
    assert viewer.max_gap <= MAX_GAP_S, "telemetry stalled for %.0f ms" % (viewer.max_gap * 1000)


def report(what, budget, viewer, image=0):
    alloc = [a - image for a in viewer.heap_alloc]  # the image's block is flash on a board
    if not alloc:
        return []
    return ["\n%s, heap %s: %.0f s, %d telemetry messages, largest gap %.0f ms; heap_alloc %d..%d B, "
            "heap_free min %d B" % (what, budget, SECONDS, viewer.count, viewer.max_gap * 1000, min(alloc),
                                    max(alloc), min(viewer.heap_free))]


def romfs_run(board, budget_text, micropython, gc_block, viewers, then_refused=False):
    """Run a ROMFS-layout board tree: lib.romfs mounted at /rom from one block."""
    # Beside main.py, which finds config.json and web/ in its script's folder: the
    # one file that is not the board's, standing for the ROMFS partition's mount.
    script = board / "romfs_boot.py"
    script.write_text(heap_report.ROMFS_BOOT)
    image = os.path.getsize(board / "lib.romfs")
    budget = heap_report.parse_size(budget_text)
    heapsize = heap_report.romfs_heapsize_exact(budget, str(board / "lib.romfs"), micropython, gc_block)
    result = run_budget(board, str(script), micropython, heapsize, viewers, then_refused)
    fw = result[0]
    mounted = (fw.first("ROMFS") or "0 0").split()
    free_after_image = int(mounted[1])
    fresh = heap_report.free_at_start(budget, micropython)
    lines = ["\nROMFS image %d B; heap budget %s: %d B free after mounting (a fresh %s heap has %d)"
             % (image, budget_text, free_after_image, budget_text, fresh)]
    if free_after_image:  # 0: the firmware died before mounting; check() says why
        # The budget is real: the image's block gave the firmware nothing extra.
        assert free_after_image <= fresh
    return lines, image, result


# The three runs: each stages its tree, drives its firmware for SECONDS and
# returns what check() needs, plus its report line. They share nothing, so the
# tests below run them side by side (see `proof`).

def esp32_deploy_run():
    budget = os.environ.get("TETHER_BUDGET_HEAP", "56K")  # the ESP32 port's first heap
    micropython = board_proxy("esp32")
    with tempfile.TemporaryDirectory() as tmp:
        board = staged(pathlib.Path(tmp), "esp32", "x86", romfs=False)
        assert (board / "lib" / "car" / "app.mpy").exists() and not (board / "lib.romfs").exists()
        fw, viewer, driver, alive, errors, _, output = run_budget(board, "main.py", micropython, budget, 3)
    lines = report("esp32 proxy, .mpy on the filesystem, driver + 3 viewers", budget, viewer)
    return lines, (viewer, driver, alive, errors, output), None


def x64_romfs_run():
    budget = os.environ.get("TETHER_BUDGET_HEAP", "64K")
    with tempfile.TemporaryDirectory() as tmp:
        board = staged(pathlib.Path(tmp), None, "x64", romfs=True)
        lines, image, (fw, viewer, driver, alive, errors, _, output) = romfs_run(
            board, budget, heap_report.MICROPYTHON, heap_report.GC_BLOCK, 1)
    lines += report("x64, lib/ in ROMFS, driver + viewer", budget, viewer, image)
    return lines, (viewer, driver, alive, errors, output), None


def esp8266_romfs_run():
    budget = os.environ.get("TETHER_BUDGET_HEAP", "32K")
    micropython = board_proxy("esp8266")
    with tempfile.TemporaryDirectory() as tmp:
        board = staged(pathlib.Path(tmp), "esp8266", "x86", romfs=True)
        assert not (board / "lib").exists()  # nothing on the filesystem shadows /rom
        with open(board / "config.json") as f:
            assert json.load(f)["server"]["max_clients"] == 2
        lines, image, (fw, viewer, driver, alive, errors, refused, output) = romfs_run(
            board, budget, micropython, 16, 1, then_refused=True)
    lines += report("esp8266 proxy, lib/ in ROMFS, driver + viewer", budget, viewer, image)
    return lines, (viewer, driver, alive, errors, output), refused


RUNS = {
    "test_esp32_deploy_layout_runs_a_minute_in_its_first_heap": esp32_deploy_run,
    "test_x64_romfs_layout_runs_a_minute_within_the_heap_budget": x64_romfs_run,
    "test_esp8266_romfs_layout_runs_a_minute_and_refuses_the_next_client_with_503": esp8266_romfs_run,
}
_started = {}  # test name -> Future of its run


@pytest.fixture
def proof(request):
    """This test's run (a Future). The first budget test to start starts the runs of every
    budget test selected in this session, each in a thread with its own
    firmware process, clients and event loop: three minutes of driving take
    one. Each test still passes or fails on its own run alone."""
    if not _started:
        selected = [item.name for item in request.session.items if item.name in RUNS]
        pool = concurrent.futures.ThreadPoolExecutor(len(selected))
        for name in selected:
            _started[name] = pool.submit(RUNS[name])
        pool.shutdown(wait=False)
    return _started.pop(request.node.name)


def outcome(proof):
    """Wait for the run; its skip or failure is raised here, in the test."""
    lines, result, refused = proof.result()
    print("".join(lines))
    check(*result)
    return refused


@pytest.mark.slow
def test_esp32_deploy_layout_runs_a_minute_in_its_first_heap(proof):
    """The ESP32 port's heap starts at 56 KB: the stock layout (.mpy files on the
    filesystem, bytecode loaded into the heap), four clients."""
    outcome(proof)


@pytest.mark.slow
def test_x64_romfs_layout_runs_a_minute_within_the_heap_budget(proof):
    """The venv's 64-bit Unix port, lib/ in ROMFS, driver + viewer."""
    outcome(proof)


@pytest.mark.slow
def test_esp8266_romfs_layout_runs_a_minute_and_refuses_the_next_client_with_503(proof):
    """ESP8266_GENERIC FLASH_2M_ROMFS: lib/ in ROMFS, the staged config (max_clients
    capped to 2), driver + 1 viewer; a third client is refused with 503."""
    refused = outcome(proof)
    assert refused == 503, "the client after max_clients got %r, not 503" % refused


# --- no constant tuples in resident modules (docs/memory.md, section 3) ---

# Loaded on a plain car's first REST request or request body, and kept.
LOADED_ON_FIRST_USE = ["car.main", "car.rest", "wsserver.body"]

RESIDENT_PROBE = """
import sys
from car import app, load_config
import hardware
cfg = load_config("config.example.json")[0]
hardware.create(cfg["hardware"])
hardware.create(dict(cfg["hardware"], mode="real"))  # on tests/support/fakes' machine
print(" ".join(m for m in sys.modules if m.split(".")[0] in ("car", "hardware", "wsserver", "mqtt", "wsclient")))
"""


def constant_tuples(source, filename="<source>"):
    """(line, text) of every tuple MicroPython's compiler folds into a constant
    object (MICROPY_COMP_CONST_TUPLE): a non-empty tuple, read not assigned to,
    whose items are literals, -literals, this module's const() names or such
    tuples. `a, b = 1, 2` counts too (write two assignments)."""
    import ast
    tree = ast.parse(source, filename)
    consts = set()
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "const"):
            consts.update(t.id for t in node.targets if isinstance(t, ast.Name))

    def constant(e):
        if isinstance(e, ast.Constant):
            return True
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.USub, ast.UAdd, ast.Invert)):
            return constant(e.operand)
        if isinstance(e, ast.Name):
            return e.id in consts
        return isinstance(e, ast.Tuple) and all(constant(x) for x in e.elts)

    return [(n.lineno, ast.unparse(n)) for n in ast.walk(tree)
            if isinstance(n, ast.Tuple) and n.elts and isinstance(n.ctx, ast.Load) and constant(n)]


def test_the_constant_tuple_check_sees_what_micropython_folds():
    # The scanner against MicroPython itself: `f() is f()` holds exactly for
    # the tuples the compiler made constant objects.
    cases = ["(1, 2)", "('a', -1)", "(C, '')", "((1,), b'x')", "(None, None)", "(1, x)", "(x,)", "()",
             "[1, 2]"]
    code = "C = const(5)\nx = 7\n" + "".join("def f%d(): return %s\n" % (i, c) for i, c in enumerate(cases))
    code += "print(' '.join(str(type(f()) is tuple and len(f()) > 0 and f() is f()) for f in (%s)))\n" % (
        ", ".join("f%d" % i for i in range(len(cases))))
    result = run_micropython(code)
    assert result.returncode == 0, result.stderr
    folded = [v == "True" for v in result.stdout.split()]
    assert folded == [True, True, True, True, True, False, False, False, False]
    found = {line for line, _ in constant_tuples(code)}
    assert [i + 3 in found for i in range(len(cases))] == folded
    assert constant_tuples("a, b = 1, 2\n") == [(1, "(1, 2)")]
    assert constant_tuples("def f(x):\n    a, b = x\n    return a, b\n") == []


def test_resident_modules_hold_no_constant_tuples():
    env = dict(os.environ, MICROPYPATH=".frozen:" + FAKES + ":"
               + os.path.join(ROOT, "lib"))
    result = subprocess.run([heap_report.MICROPYTHON, "-c", RESIDENT_PROBE], capture_output=True,
                            text=True, timeout=30, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    resident = sorted(set(result.stdout.split()) | set(LOADED_ON_FIRST_USE))
    assert "car.app" in resident and "wsserver.server" in resident and "hardware.motors" in resident
    assert "car.config" not in resident  # boot-only: dropped after the check
    found = []
    for name in resident:
        path = os.path.join(ROOT, "lib", *name.split("."))
        path = path + "/__init__.py" if os.path.isdir(path) else path + ".py"
        with open(path) as f:
            found += ["%s:%d: %s" % (os.path.relpath(path, ROOT), line, text)
                      for line, text in constant_tuples(f.read(), path)]
    with open(os.path.join(ROOT, "main.py")) as f:  # compiled from source on the board, and kept
        found += ["main.py:%d: %s" % (line, text) for line, text in constant_tuples(f.read(), "main.py")]
    assert found == [], "constant tuples in resident modules (use a list or a string):\n" + "\n".join(found)
