"""Issue 6, "budgets proven, not hoped": the whole firmware (simulated car,
wsserver, lib/ compiled to x64 .mpy by tools/stage.py) runs with a driver at
10 Hz and a viewer for a minute inside a fixed heap, with no MemoryError and
no telemetry stall.

Configuration (docs/memory.md explains the choice and the figures): lib/ is
in a ROMFS image executed in place, as on a board with lib/ frozen into the
firmware or in a ROMFS partition; main.py, config.json and web/ are on the
filesystem. The Unix port has no memory outside its GC heap, so the image is
read into one block allocated first and the heap is enlarged by exactly that
block; the test checks that what is left free is no more than a fresh
interpreter with the budget has. With the .mpy files loaded into RAM the same
firmware needs far more (tools/heap_report.py prints both).

The x64 port's objects are bigger than a 32-bit board's (8-byte words, 32-byte
GC blocks, boxed floats), so this is a pessimistic proxy for an ESP32.

  TETHER_BUDGET_SECONDS  driving time (default 60)
  TETHER_BUDGET_HEAP     heap budget besides the image (default 64K, the
                         issue's budget; 60K is the edge, 58K fails at boot:
                         docs/memory.md)
"""
import asyncio
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import heap_report  # noqa: E402

SECONDS = float(os.environ.get("TETHER_BUDGET_SECONDS", "60"))
BUDGET = os.environ.get("TETHER_BUDGET_HEAP", "64K")
MAX_GAP_S = 0.25


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def drive_and_watch(fw, port, seconds):
    url = "ws://127.0.0.1:%d/ws" % port
    stop = asyncio.Event()
    viewer, driver = heap_report.Viewer(), heap_report.Viewer()
    await heap_report.wait_listening(port, fw)
    tasks = [asyncio.ensure_future(viewer.run(url, stop))]
    await asyncio.sleep(0.3)
    tasks.append(asyncio.ensure_future(driver.run(url, stop, drive=True)))
    await asyncio.sleep(seconds)
    alive = fw.proc.poll() is None
    stop.set()
    errors = [r for r in await asyncio.gather(*tasks, return_exceptions=True) if r is not None]
    return viewer, driver, alive, errors


def test_firmware_runs_a_minute_within_the_heap_budget(tmp_path):
    build = tmp_path / "board-x64"
    staged = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "stage.py"), "--march",
                             "x64", "--out", str(build)], cwd=ROOT, capture_output=True, text=True)
    assert staged.returncode == 0, "tools/stage.py failed:\n" + staged.stdout + staged.stderr
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    image = heap_report.romfs_tree(str(build), str(run_dir))
    budget = heap_report.parse_size(BUDGET)
    heapsize = heap_report.romfs_heapsize(budget, image)
    port = free_port()
    fw = heap_report.Firmware(str(run_dir), port, heapsize, "romfs_boot.py")

    async def run():
        reader = asyncio.ensure_future(fw.read())
        try:
            return await drive_and_watch(fw, port, SECONDS)
        finally:
            fw.stop()
            await reader

    viewer, driver, alive, errors = asyncio.run(run())
    output = "\n".join(line for _, line in fw.lines)
    mounted = fw.first("ROMFS").split()
    free_after_image = int(mounted[1])
    alloc = [a - image for a in viewer.heap_alloc]  # the image's block is flash on a board
    print("\nROMFS image %d B; heap budget %s: %d B free after mounting (a fresh %s heap has %d)"
          % (image, BUDGET, free_after_image, BUDGET, heap_report.free_at_start(budget)))
    if alloc:
        print("%.0f s: %d telemetry messages, largest gap %.0f ms; heap_alloc %d..%d B, "
              "heap_free min %d B" % (SECONDS, viewer.count, viewer.max_gap * 1000, min(alloc),
                                      max(alloc), min(viewer.heap_free)))

    # The budget is real: the image's block gave the firmware nothing extra.
    assert free_after_image <= heap_report.free_at_start(budget)
    assert "MemoryError" not in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert alive, "firmware exited:\n" + output[-3000:]
    assert not errors, "client failed (a 500 is a MemoryError in the server): %r\n%s" % (
        errors, output[-3000:])
    assert driver.count > 0  # the driver connected and was served too
    assert viewer.count >= SECONDS * 20 * 0.8, viewer.count  # 20 Hz telemetry, most of it
    assert viewer.max_gap <= MAX_GAP_S, "telemetry stalled for %.0f ms" % (viewer.max_gap * 1000)
