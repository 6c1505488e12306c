# Receiving an over-the-air app update (docs/updates.md): imported only when
# a request reaches /api/update, never by a plain car.
#
#   PUT /api/update?token=...   X-Tether-Manifest: <manifest bytes>
#   body: the manifest JSON {"version": v, "files": [[path, size, sha256], ...]}
#         then every file's bytes, in the manifest's order
#
# Checked before a byte is written: the token, nobody driving, the lengths
# adding up, the room on the flash. Then the motors stop, driving is refused,
# and each file streams to .ota/new/ with its sha256 checked as it arrives.
# Only when every file matched is .ota/pending written (car/update.py
# switches to it at the next boot); any failure removes .ota/new/ and the
# running app is untouched.
import asyncio
import gc
import json
import os
import sys
from binascii import hexlify

import hashlib
from wsserver.errors import HTTPError

from car import VERSION, update

MAX_MANIFEST = 8192
CONFIRM_S = 20  # the new app must run this long, healthy, to be kept (the manifest may say)
REBOOT_DELAY_MS = 300  # lets the 200 reach the tool before the car restarts
_busy = False


def app_root(car):
    """The folder holding main.py, lib/ and web/ ("." on a board)."""
    web = car.server.static_dir or "web"
    i = web.rfind("/")
    return web[:i] if i > 0 else "."


def in_romfs():
    """True when the app's own modules are in a ROMFS image: MicroPython
    mounts a valid image at /rom and puts /rom and /rom/lib on sys.path
    (extmod/vfs.c, mp_vfs_mount_romfs_protected); an image without our car
    package is not the app and does not count."""
    for path in ["/rom/car", "/rom/lib/car"]:
        if update.exists(path):
            return True
    return False


def free_bytes(root):
    st = os.statvfs(root)
    return st[0], st[0] * st[4]  # block size, free blocks * block size (f_bavail)


def handle(car, request):
    if request.method == "PUT":
        return put(car, request)
    root = app_root(car)
    block, free = free_bytes(root)
    return 200, json.dumps({
        "firmware": VERSION, "platform": sys.platform, "mpy": getattr(sys.implementation, "_mpy", 0),
        "free": free, "block": block, "romfs": in_romfs(), "busy": _busy,
        "state": state(root)}), "application/json"


def state(root):
    ota = root + "/.ota/"
    for name in ["pending", "trial", "rollback"]:
        if update.exists(ota + name):
            return name
    return "idle"


def check_path(path):
    if type(path) is not str or not 0 < len(path) <= 96:
        return False
    if not (path == "main.py" or path == "boot.py" or path == "config.json"
            or path.startswith("lib/") or path.startswith("web/")):
        return False
    for seg in path.split("/"):
        if not seg or seg[0] == "." or "\\" in seg:
            return False
    return True


def parse_manifest(text):
    """(version, [(path, size, sha256)]) or HTTPError(400) naming the field."""
    try:
        doc = json.loads(text)
        files = doc["files"]
        version = doc["version"]
    except (ValueError, KeyError, TypeError):
        raise HTTPError(400, "manifest: must be JSON with \"version\" and \"files\"")
    if type(version) is not str or len(version) > 64 or type(files) is not list or not files:
        raise HTTPError(400, "manifest: version must be a short string and files a non-empty list")
    out = []
    seen = set()
    for i, f in enumerate(files):
        if type(f) is not list or len(f) != 3:
            raise HTTPError(400, "manifest: files[%d] must be [path, size, sha256]" % i)
        path, size, digest = f
        if not check_path(path) or path in seen:
            raise HTTPError(400, "manifest: files[%d] path %r is not allowed (lib/, web/, main.py, "
                                 "boot.py, config.json; no dot-segments; once each)" % (i, str(path)[:100]))
        if type(size) is not int or size < 0:
            raise HTTPError(400, "manifest: files[%d] size must be a whole number of bytes" % i)
        if type(digest) is not str or len(digest) != 64:
            raise HTTPError(400, "manifest: files[%d] sha256 must be 64 hex digits" % i)
        seen.add(path)
        out.append((path, size, digest.lower()))
    if "main.py" not in seen:
        raise HTTPError(400, "manifest: the app has no main.py: nothing would start")
    confirm_s = doc.get("confirm_s", CONFIRM_S)
    if type(confirm_s) is not int or not 1 <= confirm_s <= 3600:
        raise HTTPError(400, "manifest: confirm_s must be whole seconds, 1-3600")
    return version, out, confirm_s


def refuse_if_busy(car, root):
    if in_romfs():
        raise HTTPError(409, "this board keeps lib/ in ROMFS, which is erased before it is written: "
                             "a cut would leave no app. Update it over USB (make deploy)")
    if _busy:
        raise HTTPError(409, "another update is being received")
    now = state(root)
    if now != "idle":
        raise HTTPError(409, "the last update is still %s; try again after it confirms (or rolls back)" % now)
    if car.control.driver is not None:
        raise HTTPError(409, "client %d is driving: updates are refused while someone drives"
                        % car.control.driver_id())


async def read_exactly(body, n):
    data = bytearray()
    while len(data) < n:
        data += await body.read(n - len(data))
    return bytes(data)


def tell(car, state_name, version, done, total):
    car.server.broadcast('{"type":"update","state":"%s","version":%s,"done":%d,"total":%d}'
                         % (state_name, json.dumps(version), done, total), path="/ws")


async def put(car, request):
    global _busy
    root = app_root(car)
    access = car.access
    if access is not None and not access.authorized(request):
        raise HTTPError(403, "token: an update needs the access token (?token=...)")
    body = request.body
    if not body.length:
        raise HTTPError(411, "Content-Length required: the update is one body (manifest, then files)")
    head = request.headers.get("x-tether-manifest", "")
    if not head.isdigit() or not 0 < int(head) <= MAX_MANIFEST:
        raise HTTPError(400, "X-Tether-Manifest: the manifest's length in bytes (1-%d)" % MAX_MANIFEST)
    refuse_if_busy(car, root)
    version, files, confirm_s = parse_manifest(await read_exactly(body, int(head)))
    total = 0
    for f in files:
        total += f[1]
    if int(head) + total != body.length:
        raise HTTPError(400, "Content-Length %d does not match the manifest (%d + %d bytes of files)"
                        % (body.length, int(head), total))
    block, free = free_bytes(root)
    need = block * 8  # markers and directories
    for f in files:
        need += (f[1] + block - 1) // block * block + block
        try:  # the switch keeps a copy of each file it replaces, for a rollback
            need += (os.stat(root + "/" + f[0])[6] + block - 1) // block * block + block
        except OSError:
            pass
    if need > free:
        raise HTTPError(507, "the update needs %d bytes of flash, %d are free" % (need, free))
    # Checked, now ours: stop the car and keep it stopped until the reboot.
    _busy = True
    car.stop_motors()
    car.update = version
    ota = root + "/.ota"
    new = ota + "/new"
    done = 0
    ok = False
    try:
        update.remove_tree(ota)  # only leftovers (state is idle): a stale plan must not survive
        update.makedirs(new)
        tell(car, "receiving", version, 0, total)
        for path, size, digest in files:
            target = new + "/" + path
            update.makedirs(update.parent(target))
            h = hashlib.sha256()
            with open(target, "wb") as f:
                left = size
                while left:
                    piece = await body.read(left)
                    h.update(piece)
                    f.write(piece)
                    left -= len(piece)
            if hexlify(h.digest()).decode() != digest:
                raise HTTPError(400, "sha256 of %s does not match the manifest: corrupted on the way; "
                                     "nothing was changed" % path)
            done += size
            tell(car, "receiving", version, done, total)
            gc.collect()
        # Every file matched: the marker last, whole or not at all.
        update.write(ota + "/pending", json.dumps({"version": version, "files": files,
                                                    "confirm_s": confirm_s}))
        ok = True
    except OSError as e:
        if e.args and e.args[0] == 28:  # ENOSPC
            raise HTTPError(507, "flash full after %d of %d bytes; nothing was changed" % (done, total))
        raise HTTPError(500, "writing the update failed (%s); nothing was changed" % e)
    finally:
        if not ok:
            update.remove_tree(ota)
            car.update = None
            _busy = False
            tell(car, "failed", version, done, total)
    tell(car, "installing", version, total, total)
    asyncio.create_task(reboot_soon(car))
    print("ota: %s received (%d files, %d bytes); restarting into it" % (version, len(files), total))
    return 200, json.dumps({"version": version, "files": len(files), "bytes": total,
                            "reboot_ms": REBOOT_DELAY_MS}), "application/json"


async def reboot_soon(car):
    await asyncio.sleep_ms(REBOOT_DELAY_MS)
    car.failed = SystemExit(update.REBOOT)  # the control loop stops the motors and raises it
