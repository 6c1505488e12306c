"""The reference uplink servers (tools/uplink/uplink_server.py on CPython websockets,
tools/uplink/uplink_server.js on Node.js ws) as real processes, driven through their
stdin command lines and read from their stdout, and simulated cars whose
uplink points at them."""
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

from support import ROOT
from support.processes import free_port, kill
from support.car import FAST_LIMITS

UPLINK_DIR = os.path.join(ROOT, "tools", "uplink")
KINDS = ["python", "node"]


def node_ready():
    """None when the Node server can run, else why not. The pinned `ws` is
    set-up (`make node-deps`, which make test runs), never installed by a test."""
    if not shutil.which("node"):
        return "no node (apt-get install nodejs npm)"
    if not os.path.exists(os.path.join(UPLINK_DIR, "node_modules", "ws", "package.json")):
        return "no tools/uplink/node_modules: make node-deps (needs npm)"
    return None


def car_config(tmp_path, url, uplink=None, limits=None, access=None, name="car-u"):
    cfg = {"limits": dict(FAST_LIMITS, **(limits or {})), "server": {"max_clients": 6},
           "hardware": {"mode": "sim", "min_duty": 0.0, "sim": {"noise_cm": 0.0}},
           "wifi": {"hostname": name},
           "uplink": dict({"url": url}, **(uplink or {}))}
    if access:
        cfg["access"] = access
    path = tmp_path / ("%s.json" % name)
    path.write_text(json.dumps(cfg))
    return str(path)


def start_car(start_micropython, tmp_path, url, **kw):
    return start_micropython("main.py", ["--config", car_config(tmp_path, url, **kw)])


class RefServer:
    """One reference server process; lines are (monotonic time, text)."""

    def __init__(self, kind, port=None, args=()):
        self.kind = kind
        self.port = port or free_port()
        self.args = list(args)
        self.lines = []
        self.cond = threading.Condition()
        self.proc = None
        self.start()

    @property
    def url(self):
        return "ws://127.0.0.1:%d/car" % self.port

    def start(self, timeout=15):
        script = os.path.join(ROOT, "tools", "uplink", "uplink_server." + ("py" if self.kind == "python" else "js"))
        cmd = [sys.executable if self.kind == "python" else shutil.which("node"), script,
               "--port", str(self.port)] + self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        self.started = self.wait_line(lambda t: t.startswith("listening on"), timeout)[0]
        return self

    def _read(self, proc):
        for line in proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.cond.notify_all()

    def wait_line(self, predicate, timeout=5.0, since=0.0):
        """(time, text) of the first line after `since` that satisfies predicate."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, text in self.lines:
                    if t >= since and predicate(text):
                        return t, text
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(text[:160] for _, text in self.lines[-15:])
                    raise AssertionError("%s server: no matching line within %.1f s; last lines:\n%s"
                                         % (self.kind, timeout, tail))
                self.cond.wait(left)

    def events(self, kind, car=None, since=0.0):
        """[(time, parsed JSON)] of `car N <kind> {json}` lines."""
        found = []
        pattern = re.compile(r"car (\d+) %s (.*)$" % kind)
        for t, text in list(self.lines):
            m = pattern.match(text)
            if m and t >= since and (car is None or int(m.group(1)) == car):
                found.append((t, json.loads(m.group(2))))
        return found

    def replies(self, car=None, since=0.0):
        return [m for _, m in self.events("reply", car, since)]

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return time.monotonic()

    def kill(self):
        kill(self.proc, wait=5)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.command("quit")
                self.proc.wait(3)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
