"""Synthetic firmware for the board-tooling tests, and a virtual-board fixture.

We have no real MicroPython download offline, so the tests build an ESP32-like
firmware .bin laid out as micropython.org's ESP32_GENERIC image is (flashed at
0x1000): second-stage bootloader at file offset 0, partition table at 0x7000
(flash 0x8000), app at 0xF000 (flash 0x10000). The bootloader and app are
minimal but *valid* ESP32 images (header, extended header, segments, checksum,
appended SHA-256) that `esptool image-info` accepts; they contain no real code.
The partition table is byte-compatible with ESP-IDF's gen_esp32part output
(32-byte entries + MD5 entry) and uses MicroPython's 4 MiB ESP32 layout.
"""
import hashlib
import os
import struct
import subprocess
import sys
import time

from support import TOOLS
from support.processes import stop
VENV_BIN = os.path.dirname(sys.executable)

# MicroPython ports/esp32/partitions-4MiB.csv
ESP32_PARTITIONS = [
    ("nvs", 0x01, 0x02, 0x9000, 0x6000),
    ("phy_init", 0x01, 0x01, 0xF000, 0x1000),
    ("factory", 0x00, 0x00, 0x10000, 0x1F0000),
    ("vfs", 0x01, 0x81, 0x200000, 0x200000),
]


def esp_image(entry, segments, chip_id=0):
    """An ESP32-family image: 8-byte header + 16-byte extended header, segments,
    checksum byte at the end of a 16-byte-aligned block, SHA-256 appended."""
    header = struct.pack("<BBBBI", 0xE9, len(segments), 2, 0x20, entry)  # DIO, 4MB, 40m
    extended = struct.pack("<BBBBHBHH4xB", 0xEE, 0, 0, 0, chip_id, 0, 0, 0xFFFF, 1)
    body = b""
    checksum = 0xEF
    for addr, data in segments:
        data += b"\0" * (-len(data) % 4)
        body += struct.pack("<II", addr, len(data)) + data
        for b in data:
            checksum ^= b
    image = header + extended + body
    image += b"\0" * (15 - len(image) % 16) + bytes([checksum])
    return image + hashlib.sha256(image).digest()


def partition_table(parts):
    """Binary partition table as ESP-IDF's gen_esp32part.py writes it."""
    table = b""
    for label, ptype, subtype, offset, size in parts:
        table += struct.pack("<HBBII16sI", 0xAA50, ptype, subtype, offset, size, label.encode(), 0)
    table += b"\xEB\xEB" + b"\xFF" * 14 + hashlib.md5(table).digest()
    return table + b"\xFF" * (0xC00 - len(table))


def synthetic_esp32_firmware(parts=ESP32_PARTITIONS, flash_offset=0x1000, chip_id=0):
    """Bytes of a fake ESP32_GENERIC-style .bin, flashed at flash_offset (0x1000 for
    ESP32; S3/C3 images start at 0x0 with chip_id 9/5), plus its bootloader and app."""
    bootloader = esp_image(0x40080400, [(0x3FFF0000, b"TETHER-TEST-BOOTLOADER" * 8),
                                        (0x40078000, b"\0" * 256)], chip_id)
    app = esp_image(0x40080000, [(0x3F400020, b"TETHER-TEST-APP (not MicroPython)" * 40),
                                 (0x40080000, b"\x36\x41\x00" * 200)], chip_id)
    blob = bytearray(b"\xFF" * (0x10000 - flash_offset))
    blob[0:len(bootloader)] = bootloader
    table = 0x8000 - flash_offset
    blob[table:table + 0xC00] = partition_table(parts)
    return bytes(blob) + app, bootloader, app


class VirtualBoard:
    """tools/board/vboard.py running in the background on `root`; `.tty` is its port."""

    def __init__(self, tmp, main_args="", romfs=0):
        self.root = os.path.join(str(tmp), "board")
        self.tty = os.path.join(str(tmp), "vboard.tty")
        self.log = os.path.join(str(tmp), "vboard.log")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(TOOLS, "board", "vboard.py"), "--root", self.root, "--link", self.tty,
             "--log", self.log, "--main-args", main_args, "--romfs", str(romfs)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.banner = self.proc.stdout.readline()
        deadline = time.monotonic() + 10
        while not os.path.islink(self.tty):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("vboard did not start: %s%s" % (self.banner, self.proc.stdout.read()))
            time.sleep(0.02)

    def output(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        stop(self.proc, grace=5)
        self.proc.stdout.close()


# Mounts an image file with MicroPython's own LittleFS driver (vfs.VfsLfs2) through
# a block device reading the file, and prints "<path> <sha256>" for every file.
MOUNT_AND_LIST = r"""
import sys, os, vfs, hashlib, binascii
class FileBlockDevice:
    def __init__(self, path, start, size):
        self.f = open(path, 'rb')
        self.start = start
        self.count = size // 4096
    def readblocks(self, n, buf, off=0):
        self.f.seek(self.start + n * 4096 + off)
        self.f.readinto(buf)
    def writeblocks(self, n, buf, off=0):
        raise OSError(30)  # EROFS: the test only reads
    def ioctl(self, op, arg):
        if op == 4:
            return self.count
        if op == 5:
            return 4096
        return 0
vfs.mount(vfs.VfsLfs2(FileBlockDevice(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))), '/fs', readonly=True)
def walk(d):
    for name, kind, *_ in os.ilistdir(d):
        p = d + '/' + name
        if kind == 0x4000:
            walk(p)
        else:
            with open(p, 'rb') as f:
                print(p[4:], binascii.hexlify(hashlib.sha256(f.read()).digest()).decode())
walk('/fs')
"""


def lfs_listing(tmp_path, image, start, size):
    script = tmp_path / "mount_and_list.py"
    script.write_text(MOUNT_AND_LIST)
    r = subprocess.run([os.path.join(VENV_BIN, "micropython"), str(script), str(image), str(start), str(size)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr + r.stdout
    return dict(line.split(" ") for line in r.stdout.splitlines())
