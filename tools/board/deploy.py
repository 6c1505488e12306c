#!/usr/bin/env python3
"""Copy the app onto a board over its serial port, only what changed.

    python tools/board/deploy.py --port /dev/ttyUSB0            (make deploy PORT=...)
    python tools/board/deploy.py --port /dev/ttyUSB0 --dry-run  (print the plan, copy nothing)

1. Connects with mpremote's serial transport and enters the raw REPL without a
   soft reset: Ctrl-C stops the app (its motors off) or boot.py, and the heap is
   collected. A soft reset would run boot.py again, whose WiFi join (10 s per
   unreachable network) outlasts mpremote's 10 s wait for the prompt.
2. Asks the board for sys.implementation._mpy and compiles lib/ with mpy-cross
   for exactly that bytecode version and native architecture (xtensa on
   ESP8266, xtensawin on ESP32/S3, rv32imc on C3, x64 on the virtual board), so
   viper code is native there. See tools/board/stage.py for the file tree.
3. Reads the board's /.tether-manifest.json (board path -> sha256 of what the
   last deploy wrote), copies files whose hash differs, removes files the last
   deploy wrote that are gone now, removes lib/*.py that would shadow our .mpy,
   and writes the manifest last (an interrupted deploy just copies more next time).
   A config-only change therefore copies config.json alone. On ESP32/ESP8266 it
   keeps the app's hardware watchdog fed from the moment it is in, between files
   (see keep_watchdog_fed).
   ROMFS (lib/ in a ROMFS partition, executed in place: bytecode stays in flash):
   on ESP8266 always (the FLASH_2M_ROMFS firmware; without a ROMFS partition the
   deploy stops and says what to flash), on an ESP32 whose firmware has one. The
   image (tools/board/stage.py's lib.romfs) is written with mpremote's romfs deploy
   when its sha256 differs from the manifest's, and lib/ on the filesystem,
   which would shadow /rom, is removed.
4. Restarts the board so boot.py and main.py run: on ESP32/ESP8266 a hard
   reset (machine.reset()), because the app's watchdog survives a soft reset
   there and would fire during boot.py's WiFi join; elsewhere (the virtual
   board) a soft reset from the friendly REPL.

--full ignores the manifest (e.g. after files were edited on the board by hand).
CPython only.
"""
import argparse
import ast
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.board import stage  # noqa: E402

MANIFEST = "/.tether-manifest.json"
MPY_VERSION = 6  # what this mpy-cross emits (checked against the board)


class DeployError(Exception):
    pass


def connect(port):
    try:
        from mpremote.transport_serial import SerialTransport
        from mpremote.transport import TransportError
    except ImportError:
        raise DeployError("mpremote is not installed: run `make venv`")
    if os.name != "nt" and not os.path.exists(port) and "://" not in port:
        raise DeployError("serial port %s does not exist. Plug the board in and check `ls /dev/ttyUSB* "
                          "/dev/ttyACM*` (macOS: /dev/cu.*), or start `make vboard`." % port)
    try:
        return SerialTransport(port, baudrate=115200), TransportError
    except TransportError as e:
        raise DeployError("cannot open %s: %s (is another program, e.g. a serial monitor, using it?)" % (port, e))


def board_info(t):
    """(sys.platform, .mpy version, mpy-cross arch, chip as the firmware's on_board() names it)."""
    t.exec("import sys")
    platform, mpy, machine = t.eval("(sys.platform, getattr(sys.implementation, '_mpy', 0), "
                                    "getattr(sys.implementation, '_machine', ''))")
    version, arch = mpy & 0xFF, mpy >> 10
    return platform, version, stage.ARCH_BY_CODE.get(arch), stage.board_chip(stage.ROOT, platform, machine)


def read_manifest(t):
    try:
        data = t.fs_readfile(MANIFEST)
    except Exception:  # missing (first deploy) or unreadable: copy everything
        return {}
    try:
        files = json.loads(data).get("files", {})
        return files if isinstance(files, dict) else {}
    except ValueError:
        return {}


WATCHDOG_SETUP = """
import machine, json
_tw = None
try:
    with open('/config.json') as f:
        _ms = json.load(f).get('limits', {}).get('watchdog_ms', 8000)
except Exception:
    _ms = 8000
if _ms:
    try:
        _tw = machine.WDT(timeout=max(_ms, 1000))
    except (TypeError, ValueError):  # ESP8266: only its fixed 5 s (machine_wdt.c)
        _tw = machine.WDT()
"""


def keep_watchdog_fed(t, platform):
    """The app arms a hardware watchdog (limits.watchdog_ms, 8 s by default) that
    Ctrl-C and soft resets don't disarm on ESP32/ESP8266: a long copy would reset
    the board half-way. Re-arm it with the same timeout the app uses (no change
    when it is already running; main.py takes over feeding after the reset) and
    return a function that feeds it between files."""
    if platform not in ("esp32", "esp8266"):
        return lambda: None
    try:
        t.exec(WATCHDOG_SETUP)
    except Exception:
        return lambda: None
    return lambda: t.exec("_tw and _tw.feed()")


ROMFS_FIRMWARE = ("this board's firmware has no ROMFS partition, and lib/ does not fit an ESP8266's "
                  "heap as .mpy files: flash the ESP8266_GENERIC FLASH_2M_ROMFS firmware (the "
                  "FLASH_2M_ROMFS variant in firmware/firmware.json; make flash CHIP=esp8266 "
                  "FIRMWARE=<that .bin> PORT=...), then deploy again")


def romfs_partition(t):
    """Size in bytes of the board's ROMFS partition 0 (vfs.rom_ioctl), or 0 when it has none."""
    try:
        return int(remote_exec(t, "import vfs\ntry:\n d=vfs.rom_ioctl(2,0)\n print(0 if isinstance(d,int) "
                                  "else len(d))\nexcept Exception:\n print(0)"))
    except Exception:
        return 0


def write_romfs(t, image_path):
    """Write the image into ROMFS partition 0 with mpremote's own romfs deploy."""
    from mpremote import commands

    class State:  # what _do_romfs_deploy uses of mpremote's state
        transport = t

        def ensure_raw_repl(self):
            pass

        def did_action(self):
            pass

    class Args:
        path = image_path
        partition = 0
        mpy = False

    commands._do_romfs_deploy(State(), Args())


def plan(new, old, full=False):
    copy = sorted(p for p, h in new.items() if full or old.get(p) != h)
    delete = sorted(p for p in old if p not in new)
    return copy, delete


def remote_exec(t, code):
    return t.exec(code).decode().strip()


def shadowing_sources(t, files, remove, romfs_tree=None):
    """Files on the board that would be imported instead of ours: lib/x.py beside our
    lib/x.mpy; with lib/ in ROMFS (romfs_tree: the image's tree), lib/x.py and
    lib/x.mpy on the filesystem (/lib comes before /rom on sys.path)."""
    if romfs_tree:
        mpys = ["lib/" + os.path.relpath(p, romfs_tree).replace(os.sep, "/") for p in stage.walk(romfs_tree)]
        candidates = ["/" + p[:-4] + ext for p in mpys if p.endswith(".mpy") for ext in (".py", ".mpy")]
    else:
        candidates = ["/" + p[:-4] + ".py" for p in files if p.startswith("lib/") and p.endswith(".mpy")]
    if not candidates:
        return []
    code = ("import os\nr=[]\nfor p in %r:\n try:\n  os.stat(p)\n  r.append(p)\n%s except OSError:\n  pass\nprint(repr(r))"
            % (candidates, "  os.remove(p)\n" if remove else ""))
    return ast.literal_eval(remote_exec(t, code))


def clear_lib_packages(t, romfs_tree, log):
    """With lib/ in ROMFS: remove /lib/<package> folders left by an earlier deploy,
    once empty (any folder of that name, even empty, is imported instead of
    /rom/<package>: a package needs no __init__). One that is not empty stops the deploy."""
    packages = sorted(n for n in os.listdir(romfs_tree) if os.path.isdir(os.path.join(romfs_tree, n)))
    code = ("import os\nr=[]\ndef rm(d):\n for e in os.ilistdir(d):\n  if e[1]==0x4000:\n   rm(d+'/'+e[0])\n"
            " try:\n  os.rmdir(d)\n except OSError:\n  r.append(d)\nfor p in %r:\n try:\n  os.stat('/lib/'+p)\n"
            " except OSError:\n  continue\n rm('/lib/'+p)\nprint(repr(r))" % packages)
    left = ast.literal_eval(remote_exec(t, code))
    if left:
        raise DeployError("%s on the board's filesystem would be imported instead of lib/ in ROMFS: "
                          "remove %s (mpremote rm -r :%s)" % (", ".join(left), "them" if len(left) > 1
                                                              else "it", left[0]))


def make_dirs(t, paths):
    dirs = set()
    for p in paths:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/" + "/".join(parts[:i]))
    if dirs:
        remote_exec(t, "import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass"
                    % sorted(dirs, key=lambda d: d.count("/")))


def restart(t, platform):
    """Start boot.py and main.py afresh; the log line saying how.
    ESP32/ESP8266: machine.reset(). Neither port's soft-reset path
    (ports/esp32/main.c, ports/esp8266/main.c) disarms a running machine.WDT,
    and nothing feeds it while boot.py joins WiFi, so a soft reset would end in
    a watchdog reset part-way through boot.py."""
    if platform in ("esp32", "esp8266"):
        t.exec_raw_no_follow("import machine\nmachine.reset()")
        return "deploy: hard reset (machine.reset) -> boot.py, main.py"
    if soft_reset_friendly(t):
        return "deploy: soft reset -> boot.py, main.py"
    return "deploy: soft reset not confirmed by the board"


def soft_reset_friendly(t):
    """Leave the raw REPL and press Ctrl-D at the friendly prompt: the board
    soft-reboots and runs boot.py then main.py, as after power-on."""
    t.exit_raw_repl()
    t.read_until(1, b">>> ", timeout=3)
    t.serial.write(b"\x04")
    out = t.read_until(1, b"soft reboot\r\n", timeout=5)
    return out.endswith(b"soft reboot\r\n")


# What the app prints once it serves (car/app.py), and what only a failed start prints.
STARTED = b"Tether running at"
FAILED = (b"Traceback (most recent call last)", b"Tether crashed", b"is in use")


def watch_start(t, timeout=20.0):
    """After the reset: (True, output) once the app says it serves, (False,
    output) when it fails to start, (None, output) if it says neither in time
    (a board still joining WiFi)."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = t.serial.in_waiting
        if waiting:
            out += t.serial.read(waiting)
            if STARTED in out:
                return True, out
            if any(f in out for f in FAILED):
                time.sleep(0.3)  # the rest of the traceback
                return False, out + t.serial.read(t.serial.in_waiting)
        else:
            time.sleep(0.05)
    return None, out


def deploy(port, march=None, dry_run=False, full=False, reset=True, config=None, chunk=256, log=print,
           wait=True, lines=None):
    t, TransportError = connect(port)
    platform = None
    try:
        try:
            t.enter_raw_repl(soft_reset=False)  # no boot.py (see 1. above)
        except TransportError as e:
            raise DeployError("no MicroPython REPL on %s (%s). Is MicroPython flashed (make flash), "
                              "and is this the right port?" % (port, e))
        platform, version, board_arch, chip = board_info(t)
        feed = keep_watchdog_fed(t, platform)  # before staging: compiling takes seconds
        t.exec("import gc\ngc.collect()")  # the stopped app's heap
        if version != MPY_VERSION:
            raise DeployError("the board runs .mpy version %d but mpy-cross makes version %d: flash the "
                              "pinned MicroPython release (make flash) or use a matching mpy-cross"
                              % (version, MPY_VERSION))
        march = march or board_arch
        rom_size = romfs_partition(t)
        if platform == "esp8266" and not rom_size:
            raise DeployError(ROMFS_FIRMWARE)
        log("deploy: board %s on %s, mpy v%d, arch %s, %s" % (
            platform, port, version, march or "bytecode only",
            "lib/ in its %d KiB ROMFS partition" % (rom_size // 1024) if rom_size else "lib/ as .mpy files"))
        # chip: "esp32s3", not the platform "esp32", so that config.json is checked by
        # that chip's pin rules and its stamp (config.json.checked) matches the board
        out_dir, files = stage.stage(march, config=config, log=log, chip=chip, romfs=bool(rom_size),
                                     lines=lines)
        feed()
        old = read_manifest(t)
        image = files.pop(stage.ROMFS_IMAGE, None)  # goes into the partition, not the filesystem
        image_path = os.path.join(out_dir, stage.ROMFS_IMAGE)
        if image and os.path.getsize(image_path) > rom_size:
            raise DeployError("the ROMFS image (%d bytes) is bigger than the board's ROMFS partition (%d)"
                              % (os.path.getsize(image_path), rom_size))
        write_image = bool(image) and (full or old.get(stage.ROMFS_IMAGE) != image)
        copy, delete = plan(files, {p: h for p, h in old.items() if p != stage.ROMFS_IMAGE}, full)
        shadows = shadowing_sources(t, files, remove=not dry_run,
                                    romfs_tree=os.path.join(out_dir, ".romfs") if image else None)
        for p in copy:
            log("  %s %s (%d B)" % ("would copy" if dry_run else "copy", p, os.path.getsize(os.path.join(out_dir, p))))
        for p in delete:
            log("  %s %s" % ("would delete" if dry_run else "delete", p))
        for p in shadows:
            log("  %s %s (it would shadow the .mpy)" % ("would delete" if dry_run else "deleted", p))
        if write_image:
            log("  %s lib/ into ROMFS (%d B)" % ("would write" if dry_run else "write",
                                                os.path.getsize(image_path)))
        summary = "%d to copy, %d unchanged, %d to delete" % (len(copy), len(files) - len(copy), len(delete))
        if dry_run:
            log("deploy: dry run, nothing written: " + summary)
            return copy, delete
        started = time.monotonic()
        if write_image:
            write_romfs(t, image_path)
            feed()
        make_dirs(t, copy)
        for p in copy:
            feed()
            with open(os.path.join(out_dir, p), "rb") as f:
                t.fs_writefile("/" + p, f.read(), chunk_size=chunk)
        for p in delete:
            try:
                t.fs_rmfile("/" + p)
            except Exception:
                pass  # already gone
        if image:
            clear_lib_packages(t, os.path.join(out_dir, ".romfs"), log)
            files[stage.ROMFS_IMAGE] = image  # recorded, so an unchanged image is not rewritten
        if copy or delete or write_image or not old:
            manifest = json.dumps({"version": 1, "march": march, "files": files}, sort_keys=True, separators=(",", ":"))
            t.fs_writefile(MANIFEST, manifest.encode(), chunk_size=chunk)
        log("deploy: %s (%.1f s)" % (summary.replace("to copy", "copied").replace("to delete", "deleted"),
                                     time.monotonic() - started))
        return copy, delete
    finally:
        failed = None
        try:
            if reset:
                # After a dry run too: reading the board stopped its app, and on a
                # board its watchdog would reset it unannounced a few seconds later.
                log(restart(t, platform))
                # On an error (a refused config, a failed copy) the error is the news:
                # the maker gets it at once, not after watching the board start.
                waiting = wait and sys.exc_info()[0] is None
                try:
                    started, out = watch_start(t) if waiting else (None, b"")
                except OSError:  # the port went away with the reset (native USB): cannot tell
                    started, out = None, b""
                if started:
                    log("deploy: the app is running")
                elif started is None and waiting:
                    log("deploy: the app has not said it is running yet; watch it with make logs PORT=%s" % port)
                else:
                    failed = out.decode("utf-8", "replace").strip()
            else:
                t.exit_raw_repl()
        finally:
            t.close()
        if failed and sys.exc_info()[0] is None:
            raise DeployError("the files were copied but the app failed to start:\n" + failed)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Copy the changed parts of the app to a board.")
    ap.add_argument("--port", default=os.environ.get("PORT"), help="serial port, e.g. /dev/ttyUSB0")
    ap.add_argument("--march", choices=stage.MARCHES, help="override the architecture the board reports")
    ap.add_argument("--dry-run", "--plan", action="store_true", help="print what would be copied; write nothing")
    ap.add_argument("--full", action="store_true", help="ignore the board's manifest and copy everything")
    ap.add_argument("--no-reset", action="store_true", help="don't soft-reset afterwards")
    ap.add_argument("--no-wait", action="store_true", help="don't wait for the app to say it runs")
    ap.add_argument("--config", help="config file to install as /config.json (default ./config.json)")
    ap.add_argument("--chunk", type=int, default=256, help="bytes per write on the board (default 256)")
    ap.add_argument("--lines", action="store_true", default=None,
                    help="keep line numbers in tracebacks (1.7 KB more heap as .mpy files; docs/memory.md)")
    args = ap.parse_args(argv)
    if not args.port:
        print("error: no port. Use PORT=/dev/ttyUSB0 (Linux), /dev/cu.usbserial-* (macOS), COM3 (Windows),\n"
              "       or build/vboard.tty for the virtual board (make vboard)", file=sys.stderr)
        return 2
    try:
        deploy(args.port, march=args.march, dry_run=args.dry_run, full=args.full,
               reset=not args.no_reset, config=args.config, chunk=args.chunk, wait=not args.no_wait,
               lines=args.lines)
    except (DeployError, stage.StageError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
