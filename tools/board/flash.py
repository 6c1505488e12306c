#!/usr/bin/env python3
"""Put the pinned MicroPython release on a board, then deploy the app.

    python tools/board/flash.py --chip esp32 --port /dev/ttyUSB0     (make flash PORT=... CHIP=...)

1. Looks the chip up in firmware/firmware.json (FIRMWARE_MANIFEST overrides it).
2. Downloads the release once into firmware/cache/ (FIRMWARE_CACHE overrides it)
   and checks its sha256 against the pinned value BEFORE touching the serial
   port: a mismatch (or no pinned value) stops here with the computed hash;
   a mismatching download is renamed *.rejected. --pin records the computed
   hash instead (trust on first use; commit the manifest afterwards).
   --firmware PATH flashes a local file (your own build) and only prints its hash.
3. esptool erase-flash, then write-flash at the chip's offset (ESP32 0x1000;
   S3/C3/ESP8266 0x0; ESP8266 adds --flash-size detect, and --flash-mode dout
   for ESP-01/ESP8285 style modules).
4. Waits for the board to boot and runs tools/board/deploy.py.

--dry-run prints the esptool commands without running them. CPython only.
"""
import argparse
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repo root: tools.*
from tools.board import fwstore  # noqa: E402
from tools.board.fwstore import FirmwareError  # noqa: E402


def esptool_commands(entry, port, firmware, baud=460800, flash_mode=None, erase=True):
    base = [sys.executable, "-m", "esptool", "--chip", entry["chip"], "--port", port, "--baud", str(baud)]
    write = base + ["write-flash"] + list(entry.get("write_args", []))
    if flash_mode:
        write += ["--flash-mode", flash_mode]
    write += [entry["offset"], firmware]
    return ([base + ["erase-flash"]] if erase else []) + [write]


def firmware_file(entry, local=None, pin=False, log=print):
    """A verified firmware path (or the user's own file). Never touches a port."""
    if local:
        if not os.path.isfile(local):
            raise FirmwareError("FIRMWARE=%s: no such file" % local)
        log("firmware: local file %s, sha256 %s (your file: not checked against the pin)"
            % (local, fwstore.sha256_file(local)))
        return local
    path = fwstore.fetch(entry, log=log)
    if pin and not entry.get("sha256"):
        digest = fwstore.sha256_file(path)
        fwstore.pin(entry["chip"], digest)
        log("firmware: PINNED sha256 %s for %s in %s (trust on first use: compare it with a\n"
            "          second download or a colleague's copy, then commit the manifest)"
            % (digest, entry["file"], fwstore.manifest_path()))
        return path
    try:
        digest = fwstore.verify(entry, path)
    except FirmwareError:
        if entry.get("sha256"):  # a bad download must not look cached next time
            os.replace(path, path + ".rejected")
        raise
    log("firmware: %s sha256 %s matches the pin" % (entry["file"], digest))
    return path


def wait_for_port(port, timeout=15):
    """Native-USB boards (C3/S3) re-enumerate after the reset esptool does."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(port) and time.monotonic() < deadline:
        time.sleep(0.2)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Flash the pinned MicroPython release, then deploy the app.")
    ap.add_argument("--chip", default=os.environ.get("CHIP", "esp32"), choices=fwstore.CHIPS)
    ap.add_argument("--port", default=os.environ.get("PORT"))
    ap.add_argument("--firmware", help="flash this local .bin instead of the pinned download")
    ap.add_argument("--baud", type=int, default=460800)
    ap.add_argument("--flash-mode", choices=("qio", "qout", "dio", "dout"),
                    help="override the flash mode (dout for ESP-01 / ESP8285 modules)")
    ap.add_argument("--pin", action="store_true", help="record the download's sha256 when none is pinned")
    ap.add_argument("--no-erase", action="store_true")
    ap.add_argument("--no-deploy", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="verify the firmware, print the commands, run nothing")
    args = ap.parse_args(argv)

    try:
        entry = fwstore.chip_entry(fwstore.load_manifest(), args.chip)
        if not args.port and not args.dry_run:
            raise FirmwareError("no port: use PORT=/dev/ttyUSB0 (Linux), /dev/cu.usbserial-* (macOS), COM3 (Windows)")
        firmware = firmware_file(entry, args.firmware, args.pin)
    except FirmwareError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2

    port = args.port or "<PORT>"
    commands = esptool_commands(entry, port, firmware, args.baud, args.flash_mode, not args.no_erase)
    if args.dry_run:
        # Printed so they can be pasted into a shell and run as they are.
        for cmd in commands:
            print("would run: " + shlex.join(cmd))
        if not args.no_deploy:
            print("would run: " + shlex.join([sys.executable, os.path.join(HERE, "deploy.py"), "--port", port]))
        return 0
    if os.name != "nt" and not os.path.exists(port):
        print("error: serial port %s does not exist. Check the cable (data, not charge-only) and "
              "`ls /dev/ttyUSB* /dev/ttyACM*`." % port, file=sys.stderr)
        return 2
    for cmd in commands:
        print("+ " + shlex.join(cmd), flush=True)
        if subprocess.call(cmd) != 0:
            print("error: esptool failed. Wrong CHIP? (esptool names the chip it found.) Board not in\n"
                  "       bootloader mode? Hold BOOT (GPIO0) while pressing EN/RESET, then retry.",
                  file=sys.stderr)
            return 1
    if args.no_deploy:
        return 0
    print("flash: done; waiting for MicroPython's first boot (it formats the filesystem)", flush=True)
    wait_for_port(port)
    time.sleep(3)
    import deploy
    for attempt in range(3):
        try:
            deploy.deploy(port)
            return 0
        except deploy.DeployError as e:
            print("deploy: %s; retrying" % e, file=sys.stderr)
            time.sleep(2)
    print("error: flashed, but the deploy failed; run `make deploy PORT=%s` once the board is up" % port,
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
