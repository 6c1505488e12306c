#!/usr/bin/env python3
"""One flashable .bin: MicroPython + a LittleFS v2 filesystem holding the app.

    python tools/board/image.py --chip esp32 [--firmware path/to/micropython.bin]   (make image CHIP=...)

1. Firmware: the pinned, sha256-checked download (see tools/board/flash.py), or
   --firmware PATH (e.g. your own build with lib/ frozen in).
2. Where the filesystem goes:
   - ESP32 family: read from the partition table inside the firmware image
     (flash 0x8000, i.e. file offset 0x8000 - app offset: 0x7000 for ESP32 whose
     image is flashed at 0x1000, 0x8000 for S3/C3). A data partition labelled
     "vfs" (else "ffat") gives offset and size. The release images (v1.26+,
     partitions-4MiBplus.csv) have neither: the firmware registers "vfs" at boot
     from the end of the last partition to the end of flash (ports/esp32/main.c),
     so the image does the same for --flash-size (default 4MB).
   - ESP8266 (no partition table): 0x100000 up to flash size - 20 KiB, as
     MicroPython's esp8266 flashbdev.py lays it out; --flash-size picks the size.
3. LittleFS v2 image (littlefs-python; block size 4096, block count = partition
   size / 4096; on-disk version 2.0, readable by every MicroPython with lfs2)
   holding boot.py, main.py, lib/ as .mpy for the chip's arch, web/ as .gz and
   config.json - the same tree tools/board/deploy.py copies (tools/board/stage.py).
   ESP8266: lib/ goes into the ROMFS area of the FLASH_2M_ROMFS firmware instead
   (tools/board/stage.py's lib.romfs, executed in place), the rest into LittleFS.
4. esptool merge-bin: firmware at its offset, ROMFS image at its area (ESP8266),
   filesystem at the partition's,
   written so the result is flashed at the firmware's offset:
       esptool --chip esp32 write-flash 0x1000 build/tether-esp32.bin
CPython only.
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.board import flash, fwstore, stage  # noqa: E402
from tools.board.fwstore import FirmwareError  # noqa: E402

ROOT = fwstore.ROOT
BLOCK_SIZE = 4096
# MicroPython's VfsLfs2 defaults (extmod/vfs_lfs.c): read/prog 32, lookahead 32.
LFS_OPTIONS = dict(read_size=32, prog_size=32, cache_size=128, lookahead_size=32, name_max=255,
                   disk_version=0x00020000)


# Where lib.romfs goes: the ROMFS area of the chip's stock ROMFS firmware, from
# MicroPython v1.28.0 ports/esp8266/boards/esp8266_2MiB_ROMFS.ld (FLASH_ROMFS at
# 0x402b0000, 320K; flash is mapped at 0x40200000). firmware.json's "romfs"
# {"offset", "size"} for the chip wins when present.
ROMFS_AREAS = {"esp8266": (0xB0000, 0x50000)}


def romfs_area(chip, entry):
    area = entry.get("romfs")
    if isinstance(area, dict):
        return int(str(area["offset"]), 0), int(str(area["size"]), 0)
    return ROMFS_AREAS.get(chip)


def filesystem_region(entry, firmware_bytes, flash_size="4MB"):
    """(offset, size, how) of the filesystem on flash."""
    if entry.get("filesystem") == "partition-table":
        parts = fwstore.partition_table_from_firmware(firmware_bytes, entry["offset_int"])
        vfs = fwstore.filesystem_partition(parts, flash_size)
        if vfs["registered"]:
            return vfs["offset"], vfs["size"], (
                "after the last partition up to the end of %s flash, where the firmware registers "
                "'vfs' at boot (no vfs partition in its table)" % flash_size)
        return vfs["offset"], vfs["size"], "partition %r in the firmware's table" % vfs["label"]
    start, size = fwstore.esp8266_filesystem(entry, flash_size)
    return start, size, "ESP8266 layout for %s flash" % flash_size


def build_littlefs(tree, files, size):
    """A LittleFS image of `size` bytes holding tree/<each file in files>."""
    from littlefs import LittleFS

    if size % BLOCK_SIZE:
        raise FirmwareError("filesystem size 0x%x is not a multiple of %d" % (size, BLOCK_SIZE))
    fs = LittleFS(block_size=BLOCK_SIZE, block_count=size // BLOCK_SIZE, mount=False, **LFS_OPTIONS)
    fs.format()
    fs.mount()
    for rel in sorted(files):
        parent = os.path.dirname(rel)
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with open(os.path.join(tree, rel), "rb") as src, fs.open(rel, "wb") as dst:
            dst.write(src.read())
    used = fs.used_block_count
    fs.unmount()
    return bytes(fs.context.buffer), used


def merge(chip, out, offset, firmware, fs_offset, fs_path, romfs=None):
    cmd = [sys.executable, "-m", "esptool", "--chip", chip, "merge-bin", "-o", out]
    if offset:
        cmd += ["--target-offset", hex(offset)]
    cmd += [hex(offset), firmware]
    if romfs:
        cmd += [hex(romfs[0]), romfs[1]]
    cmd += [hex(fs_offset), fs_path]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise FirmwareError("esptool merge-bin failed:\n%s%s" % (r.stdout, r.stderr))


def make_image(chip, firmware=None, out=None, flash_size="4MB", pin=False, config=None, log=print,
               lines=None):
    manifest = fwstore.load_manifest()
    entry = fwstore.chip_entry(manifest, chip)
    if chip in stage.ROMFS_CHIPS and "FLASH_2M_ROMFS" in entry.get("variants", {}):
        # lib/ goes into ROMFS: the firmware build that has the partition
        entry = fwstore.variant_entry(manifest, chip, "FLASH_2M_ROMFS")
    firmware = flash.firmware_file(entry, firmware, pin, log=log)
    with open(firmware, "rb") as f:
        fw = f.read()
    offset = entry["offset_int"]
    fs_offset, fs_size, how = filesystem_region(entry, fw, flash_size)
    if offset + len(fw) > fs_offset:
        raise FirmwareError("the firmware (%d bytes at 0x%x) runs into the filesystem at 0x%x"
                            % (len(fw), offset, fs_offset))
    area = romfs_area(chip, entry) if chip in stage.ROMFS_CHIPS else None
    tree, files = stage.stage(entry["march"], config=config, log=log, chip=chip, romfs=bool(area),
                              lines=lines)
    romfs = None
    if area:
        rom_offset, rom_size = area
        rom_path = os.path.join(tree, files.pop(stage.ROMFS_IMAGE) and stage.ROMFS_IMAGE)
        if offset + len(fw) > rom_offset:
            raise FirmwareError("the firmware (%d bytes at 0x%x) runs into the ROMFS area at 0x%x: use the "
                                "%s FLASH_2M_ROMFS firmware" % (len(fw), offset, rom_offset, entry["board"]))
        if os.path.getsize(rom_path) > rom_size:
            raise FirmwareError("the ROMFS image (%d bytes) is bigger than the ROMFS area (%d)"
                                % (os.path.getsize(rom_path), rom_size))
        if "ROMFS" not in os.path.basename(firmware).upper():
            log("image: warning: %s does not look like a FLASH_2M_ROMFS build; lib/ is in the ROMFS "
                "area, which only that firmware mounts" % os.path.basename(firmware))
        romfs = (rom_offset, rom_path)
        log("image: lib/ in ROMFS at 0x%x: %d of %d KiB" % (rom_offset, os.path.getsize(rom_path) // 1024,
                                                            rom_size // 1024))
    image, used = build_littlefs(tree, files, fs_size)
    build = os.path.join(ROOT, "build")
    os.makedirs(build, exist_ok=True)
    fs_path = os.path.join(build, "fs-%s.bin" % chip)
    with open(fs_path, "wb") as f:
        f.write(image)
    out = out or os.path.join(build, "tether-%s.bin" % chip)
    merge(chip, out, offset, firmware, fs_offset, fs_path, romfs)
    log("image: filesystem at 0x%x, %d KiB (%s): %d files, %d of %d blocks used"
        % (fs_offset, fs_size // 1024, how, len(files), used, fs_size // BLOCK_SIZE))
    log("image: %s (%d bytes), flash it at 0x%x:" % (os.path.relpath(out), os.path.getsize(out), offset))
    extra = " --flash-size detect" if chip == "esp8266" else ""
    log("  esptool --chip %s --port PORT erase-flash" % chip)
    log("  esptool --chip %s --port PORT write-flash%s 0x%x %s" % (chip, extra, offset, os.path.relpath(out)))
    return {"out": out, "fs": fs_path, "fs_offset": fs_offset, "fs_size": fs_size, "offset": offset,
            "romfs": romfs,
            "firmware": firmware, "files": files, "tree": tree}


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build firmware + filesystem as one flashable .bin.")
    ap.add_argument("--chip", default=os.environ.get("CHIP", "esp32"), choices=fwstore.CHIPS)
    ap.add_argument("--firmware", help="use this MicroPython .bin instead of the pinned download")
    ap.add_argument("--out", help="output file (default build/tether-<chip>.bin)")
    ap.add_argument("--flash-size", default="4MB",
                    help="the module's flash size (default 4MB): where the filesystem ends on the ESP32 "
                         "family (when the table has no vfs partition) and on the ESP8266")
    ap.add_argument("--config", help="config file to put in the image as /config.json")
    ap.add_argument("--pin", action="store_true", help="record the download's sha256 when none is pinned")
    ap.add_argument("--lines", action="store_true", default=None,
                    help="keep line numbers in tracebacks (1.7 KB more heap as .mpy files; docs/memory.md)")
    args = ap.parse_args(argv)
    try:
        make_image(args.chip, args.firmware, args.out, args.flash_size, args.pin, args.config, lines=args.lines)
    except (FirmwareError, stage.StageError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
