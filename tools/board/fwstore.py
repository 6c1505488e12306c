"""Pinned MicroPython firmware: the per-chip manifest (firmware/firmware.json),
the download cache (firmware/cache/), sha256 checks, and the ESP32 partition
table parser. Shared by tools/board/flash.py and tools/board/image.py (CPython only).

Environment overrides (used by the tests, handy for mirrors):
  FIRMWARE_MANIFEST  path to a manifest with the same shape as firmware/firmware.json
  FIRMWARE_CACHE     download cache directory (default firmware/cache)
"""
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.common import ROOT  # noqa: E402
DEFAULT_MANIFEST = os.path.join(ROOT, "firmware", "firmware.json")
DEFAULT_CACHE = os.path.join(ROOT, "firmware", "cache")
CHIPS = ("esp32", "esp32s3", "esp32c3", "esp8266")


class FirmwareError(Exception):
    """A problem the user must fix; the message says what and how."""


def manifest_path():
    return os.environ.get("FIRMWARE_MANIFEST") or DEFAULT_MANIFEST


def cache_dir():
    return os.environ.get("FIRMWARE_CACHE") or DEFAULT_CACHE


def load_manifest(path=None):
    path = path or manifest_path()
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise FirmwareError("cannot read firmware manifest %s: %s" % (path, e.strerror))
    except ValueError as e:
        raise FirmwareError("firmware manifest %s is not valid JSON: %s" % (path, e))


def chip_entry(manifest, chip):
    chips = manifest.get("chips", {})
    if chip not in chips:
        raise FirmwareError("unknown CHIP=%r; known chips: %s" % (chip, ", ".join(sorted(chips))))
    entry = dict(chips[chip])
    for field in ("file", "url", "offset", "march"):
        if not entry.get(field):
            raise FirmwareError("firmware manifest: chips.%s.%s is missing" % (chip, field))
    entry["chip"] = chip
    entry["offset_int"] = int(str(entry["offset"]), 0)
    return entry


def variant_entry(manifest, chip, variant):
    """chip_entry() with a build variant's fields (chips.<chip>.variants.<variant>,
    e.g. esp8266 FLASH_2M_ROMFS) over the chip's."""
    entry = chip_entry(manifest, chip)
    variants = entry.pop("variants", {})
    if variant not in variants:
        raise FirmwareError("no %s variant %r in the firmware manifest; known: %s"
                            % (chip, variant, ", ".join(sorted(variants)) or "none"))
    entry.update(variants[variant])
    entry["variant"] = variant
    return entry


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def download(url, dest):
    """Fetch url into dest atomically (a half-downloaded file never looks cached)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, dest)
    except Exception as e:
        os.unlink(tmp)
        raise FirmwareError("download of %s failed: %s\n"
                            "  (or download it yourself and pass FIRMWARE=path/to/file.bin)" % (url, e))


def fetch(entry, log=print):
    """Path of the cached firmware file for this chip, downloading it once."""
    path = os.path.join(cache_dir(), entry["file"])
    if os.path.exists(path):
        log("firmware: using cached %s" % os.path.relpath(path))
    else:
        log("firmware: downloading %s" % entry["url"])
        download(entry["url"], path)
    return path


def verify(entry, path):
    """Refuse (FirmwareError) unless the file's sha256 equals the pinned one.
    Returns the computed hash."""
    actual = sha256_file(path)
    pinned = entry.get("sha256")
    if not pinned:
        raise FirmwareError(
            "no sha256 is pinned for %s (%s) in %s, so it cannot be verified.\n"
            "  computed sha256: %s\n"
            "  If you trust this download, record it with PIN=1 (make flash ... PIN=1)\n"
            "  and commit the manifest; nothing was written to the board."
            % (entry["chip"], entry["file"], manifest_path(), actual))
    if actual.lower() != pinned.lower():
        raise FirmwareError(
            "sha256 mismatch for %s - refusing to flash it.\n"
            "  file:     %s\n  expected: %s\n  actual:   %s\n"
            "  The download is corrupt or not the pinned release. Delete it and retry;\n"
            "  nothing was written to the board." % (entry["file"], path, pinned, actual))
    return actual


def pin(chip, digest, path=None):
    """Record digest as chips.<chip>.sha256 in the manifest (trust on first use).
    Only that value changes: the file's layout and every other line stay as
    written, so the commit that pins shows the hash alone."""
    path = path or manifest_path()
    load_manifest(path)["chips"][chip]  # a known chip in a readable manifest
    with open(path) as f:
        text = f.read()
    block = text.index('"%s"' % chip, text.index('"chips"'))
    value = re.compile(r'"sha256"\s*:\s*(null|"[^"]*")').search(text, block)
    text = text[:value.start(1)] + json.dumps(digest) + text[value.end(1):]
    if json.loads(text)["chips"][chip]["sha256"] != digest:
        raise FirmwareError("could not pin %s in %s: edit its sha256 by hand" % (chip, path))
    with open(path, "w") as f:
        f.write(text)


# --- ESP32 partition table ---------------------------------------------------
# ESP-IDF writes the table at flash 0x8000: 32-byte entries
#   <H magic 0xAA50> <B type> <B subtype> <I offset> <I size> <16s label> <I flags>
# then an optional MD5 entry (magic 0xEBEB), then 0xFF padding.
PARTITION_TABLE_FLASH_OFFSET = 0x8000
PARTITION_TABLE_MAX = 0xC00
ENTRY = struct.Struct("<HBBII16sI")
MAGIC = 0xAA50
MD5_MAGIC = 0xEBEB
TYPE_APP, TYPE_DATA = 0x00, 0x01
SUBTYPE_FAT, SUBTYPE_SPIFFS, SUBTYPE_LITTLEFS = 0x81, 0x82, 0x83


def parse_partition_table(blob):
    """List of dicts (label, type, subtype, offset, size) from a raw table."""
    parts = []
    for pos in range(0, min(len(blob), PARTITION_TABLE_MAX), ENTRY.size):
        raw = blob[pos:pos + ENTRY.size]
        if len(raw) < ENTRY.size:
            break
        magic, ptype, subtype, offset, size, label, flags = ENTRY.unpack(raw)
        if magic == MD5_MAGIC:
            digest = hashlib.md5(blob[:pos]).digest()
            if raw[16:32] != digest:
                raise FirmwareError("partition table MD5 does not match its entries (corrupt table)")
            break
        if magic != MAGIC:
            break  # 0xFFFF: end of table
        parts.append({"label": label.rstrip(b"\0").decode("ascii", "replace"), "type": ptype,
                      "subtype": subtype, "offset": offset, "size": size, "flags": flags})
    return parts


def partition_table_from_firmware(firmware, app_offset):
    """The partition table inside a MicroPython .bin that is flashed at app_offset."""
    pos = PARTITION_TABLE_FLASH_OFFSET - app_offset
    if pos < 0 or len(firmware) < pos + ENTRY.size:
        raise FirmwareError("firmware is too short to hold a partition table at flash 0x%x" %
                            PARTITION_TABLE_FLASH_OFFSET)
    parts = parse_partition_table(firmware[pos:pos + PARTITION_TABLE_MAX])
    if not parts:
        raise FirmwareError("no partition table at flash 0x%x (file offset 0x%x): is the firmware "
                            "offset 0x%x right for this chip?" % (PARTITION_TABLE_FLASH_OFFSET, pos, app_offset))
    return parts


FLASH_SIZES = {"1MB": 1 << 20, "2MB": 2 << 20, "4MB": 4 << 20, "8MB": 8 << 20, "16MB": 16 << 20}


def flash_bytes(flash_size):
    if flash_size not in FLASH_SIZES:
        raise FirmwareError("FLASH_SIZE=%r: use one of %s" % (flash_size, ", ".join(FLASH_SIZES)))
    return FLASH_SIZES[flash_size]


def filesystem_partition(parts, flash_size="4MB"):
    """Where MicroPython (v1.26+, ESP32 family) mounts / for this table, as a dict
    (label, offset, size, registered). Its modules/flashbdev.py opens the data
    partition labelled "vfs" (else "ffat"); when the table has neither - the
    release tables (partitions-4MiBplus.csv) hold only nvs, phy_init and factory -
    ports/esp32/main.c registers "vfs" at boot from the end of the last partition
    to the end of the flash chip (its physical size), so the flash size matters."""
    for label in ("vfs", "ffat"):
        for p in parts:
            if p["label"] == label and p["type"] == TYPE_DATA:
                return dict(p, registered=False)
    total = flash_bytes(flash_size)
    end = max(p["offset"] + p["size"] for p in parts)
    if total <= end:
        raise FirmwareError("no room for a filesystem: the partitions (%s) end at 0x%x, the %s "
                            "flash at 0x%x (FLASH_SIZE=...)"
                            % (", ".join(p["label"] for p in parts), end, flash_size, total))
    return {"label": "vfs", "type": TYPE_DATA, "subtype": SUBTYPE_FAT, "offset": end,
            "size": total - end, "flags": 0, "registered": True}


def esp8266_filesystem(entry, flash_size):
    """(offset, size) of the ESP8266 filesystem for a given flash size ("4MB")."""
    fs = entry["filesystem"]
    total = flash_bytes(flash_size)
    start = int(fs["offset"], 0)
    size = (total - fs["reserved_at_end"] - start) // 4096 * 4096
    if size <= 0:
        raise FirmwareError("an ESP8266 with %s flash has no room for a filesystem" % flash_size)
    return start, size


def fail(e):
    print("error: %s" % e, file=sys.stderr)
    sys.exit(2)
