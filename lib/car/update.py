# Boot-time half of an over-the-air update (docs/updates.md). Imported by
# car/start.py only when the app folder has a .ota/ folder, so a plain boot
# costs one failed stat. Every step is a rename or a removal, and each boot
# resumes where a power cut left off:
#
#   .ota/pending   the manifest of a verified upload in .ota/new/ (the
#                  receiver writes it last): switch to it on this boot
#   .ota/plan      what the switch does, written before its first move
#   .ota/trial     the switch is done; the new app runs on trial
#   .ota/booted    the trial has started once; finding it at boot means the
#                  new app never confirmed itself: roll back
#   .ota/rollback  a rollback in progress
#
# Nothing from lib/ is imported while a switch or rollback is under way:
# a switch or rollback ends in a reboot, so the app starts from whole files.
import json
import os
from time import ticks_diff, ticks_ms

REBOOT = 75  # the Unix port's exit code for "start me again" (docs/updates.md)

_cut = -1
try:  # the tests cut the power after N filesystem steps (Unix port only)
    _cut = int(os.getenv("TETHER_OTA_CUT") or -1)
except (AttributeError, ValueError):
    pass
_steps = 0


def _step():
    global _steps
    _steps += 1
    if _steps == _cut:
        print("ota: simulated power cut after %d steps" % _steps)
        raise SystemExit(9)


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def is_dir(path):
    try:
        return os.stat(path)[0] & 0o170000 == 0o040000
    except OSError:
        return False


def makedirs(path):
    here = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        here = here + part if here == "" or here == "/" else here + "/" + part
        if part != "." and not exists(here):
            os.mkdir(here)


def parent(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else "."


def move(src, dst):
    if exists(src):
        makedirs(parent(dst))
        os.rename(src, dst)
        _step()


def copy(src, dst):
    """dst becomes a copy of src, whole or not at all."""
    makedirs(parent(dst))
    buf = bytearray(1024)
    with open(src, "rb") as fi, open(dst + ".tmp", "wb") as fo:
        while True:
            n = fi.readinto(buf)
            if not n:
                break
            fo.write(buf[:n] if n < 1024 else buf)
    _step()
    os.rename(dst + ".tmp", dst)
    _step()


def remove(path):
    if exists(path):
        os.remove(path)
        _step()


def remove_tree(path):
    if is_dir(path):
        for name in os.listdir(path):
            remove_tree(path + "/" + name)
        os.rmdir(path)
    elif exists(path):
        os.remove(path)


def write(path, data):
    """Written whole or not at all: a temporary file renamed into place."""
    with open(path + ".tmp", "w") as f:
        f.write(data)
    _step()
    os.rename(path + ".tmp", path)
    _step()


def read_json(path):
    with open(path) as f:
        return json.load(f)


def app_files(root, top):
    """Every file of the running app under root/top ("lib", "web"), relative."""
    found = []
    base = root + "/" + top
    if not is_dir(base):
        return found
    for name in os.listdir(base):
        rel = top + "/" + name
        if is_dir(root + "/" + rel):
            found.extend(app_files(root, rel))
        else:
            found.append(rel)
    return found


def update(root, watchdog):
    """Resume whatever update state root/.ota holds. Returns the watchdog
    factory the app is to run with: `watchdog` itself, or on a trial boot
    one that confirms the new app (see Trial). Raises
    SystemExit(REBOOT) after a switch or a rollback (the caller reboots):
    the car package that called us is from the files just replaced, so
    the app starts afresh from whole files."""
    ota = root + "/.ota"
    if exists(ota + "/rollback"):
        roll_back(root)
        raise SystemExit(REBOOT)
    if exists(ota + "/pending"):
        switch(root)
        raise SystemExit(REBOOT)
    if exists(ota + "/trial"):
        if exists(ota + "/booted"):
            print("ota: the new app did not confirm itself; rolling back")
            os.rename(ota + "/trial", ota + "/rollback")
            _step()
            roll_back(root)
            raise SystemExit(REBOOT)
        write(ota + "/booted", "1")
        plan = read_json(ota + "/plan")
        seconds = plan["confirm_s"]  # not the plan itself: the closure keeps what it names
        print("ota: new app on trial (%s) for %d s" % (plan["version"], seconds))
        del plan

        def trial(timeout_ms):
            return Trial(watchdog(timeout_ms) if watchdog else None, ota, seconds)
        return trial
    # Leftovers: an upload cut before its marker, or a confirmed update's
    # old files. Nothing in them is ever used again.
    remove_tree(ota)
    return watchdog


def switch(root):
    ota = root + "/.ota"
    if not exists(ota + "/plan"):
        manifest = read_json(ota + "/pending")
        new = [f[0] for f in manifest["files"]]
        old = []
        for top in ["lib", "web"]:
            old.extend(app_files(root, top))
        # tools/board/deploy.py's record of what it copied is wrong after this: set
        # aside with the old files, so the next deploy copies everything.
        for name in ["main.py", "boot.py", "config.json", ".tether-manifest.json"]:
            if exists(root + "/" + name):
                old.append(name)
        # Decided once, before the first move: which new files replace an
        # old one, and which old files the new app does not have (a renamed
        # module's .py would otherwise shadow its new .mpy). config.json is
        # kept unless the update brings one.
        plan = {"version": manifest["version"], "confirm_s": manifest["confirm_s"], "new": new,
                "kept": [p for p in new if exists(root + "/" + p)],
                "gone": [p for p in old if p not in new and p != "config.json"]}
        write(ota + "/plan", json.dumps(plan))
    plan = read_json(ota + "/plan")
    # No file that a boot needs to resume this (main.py, car/main, car/start,
    # this module) is ever missing: a replaced file is copied aside and then
    # renamed over in one step, and the old files the new app lacks (an old
    # car/main.py beside the new car/main.mpy) leave only after the new
    # files are all in place.
    kept = plan["kept"]
    for p in plan["new"]:
        if exists(ota + "/new/" + p):  # not moved yet
            if p in kept and not exists(ota + "/old/" + p):
                copy(root + "/" + p, ota + "/old/" + p)
            move(ota + "/new/" + p, root + "/" + p)
    for p in plan["gone"]:
        move(root + "/" + p, ota + "/old/" + p)
    remove_tree(ota + "/new")  # empty folders by now
    os.rename(ota + "/pending", ota + "/trial")  # the one step that makes the switch
    _step()
    print("ota: switched to %s; rebooting" % plan["version"])


def roll_back(root):
    ota = root + "/.ota"
    plan = read_json(ota + "/plan")
    kept = plan["kept"]
    # The switch backwards, in the same safe order: old files back first
    # (renamed over the new ones), the new app's own files removed last.
    for p in plan["gone"]:
        move(ota + "/old/" + p, root + "/" + p)
    for p in kept:
        move(ota + "/old/" + p, root + "/" + p)  # a no-op once it is back
    for p in plan["new"]:
        if p not in kept:
            remove(root + "/" + p)  # the old app did not have it
    os.remove(ota + "/rollback")  # done: what is left is only leftovers
    _step()
    remove_tree(ota)
    print("ota: rolled back to the previous app")


class Trial:
    """Stands in for the hardware watchdog on a new app's first boot: the
    control loop feeds it every tick (and it feeds the real one). Once the
    ticks have come for `seconds` with no gap over MAX_GAP_MS (the loop is
    healthy, the app serves), it confirms the app: one removal, cheap enough
    for a tick. The rest of .ota/ is cleared at the next boot."""

    MAX_GAP_MS = 500

    def __init__(self, real, ota, seconds):
        self.real = real
        self.ota = ota
        self.seconds = seconds
        self.healthy_since = self.last_fed = ticks_ms()
        self.confirmed = False

    def feed(self):
        if self.real:
            self.real.feed()
        if self.confirmed:
            return
        now = ticks_ms()
        if ticks_diff(now, self.last_fed) > self.MAX_GAP_MS:
            self.healthy_since = now  # stalled: count again from here
        self.last_fed = now
        if ticks_diff(now, self.healthy_since) >= self.seconds * 1000:
            self.confirmed = True
            os.remove(self.ota + "/trial")  # the one step that confirms
            print("ota: new app confirmed after %d s" % self.seconds)
