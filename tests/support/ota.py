"""Over-the-air update tests: a car app installed in its own folder (its
"flash"), run like `make sim` runs it (exit code 75 is a reboot: start it
again), and the real tools/board/ota.py building and sending updates."""
import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

from support.micropython import MICROPYTHON, ROOT
from support.processes import free_port, kill, stop
from support.car import FAST_LIMITS

sys.path.insert(0, ROOT)
from tools.board import ota  # noqa: E402

REBOOT = 75


def install_app(dest, access=None, limits=None):
    """The app as a first USB flash would leave it on the Unix port: sources."""
    os.makedirs(dest)
    shutil.copytree(os.path.join(ROOT, "lib"), os.path.join(dest, "lib"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(os.path.join(ROOT, "web"), os.path.join(dest, "web"))
    for name in ("main.py", "boot.py"):
        shutil.copy(os.path.join(ROOT, name), dest)
    cfg = {"limits": dict(FAST_LIMITS, **(limits or {})), "server": {"max_clients": 6},
           "hardware": {"mode": "sim", "min_duty": 0.0, "sim": {"noise_cm": 0.0}}}
    if access:
        cfg["access"] = access
    with open(os.path.join(dest, "config.json"), "w") as f:
        json.dump(cfg, f)
    return dest


def tree_hashes(root):
    """{relative path: sha256} of the app's files (lib/, web/, main.py, boot.py)."""
    out = {}
    for top in ("lib", "web", "main.py", "boot.py"):
        path = os.path.join(root, top)
        if os.path.isfile(path):
            out[top] = hashlib.sha256(open(path, "rb").read()).hexdigest()
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in filenames:
                full = os.path.join(dirpath, name)
                out[os.path.relpath(full, root)] = hashlib.sha256(open(full, "rb").read()).hexdigest()
    return out


class Car:
    """The app in `root`, started as make sim does; reboots (exit 75) restart it."""

    def __init__(self, root, port=None, prefix=(), micropython=None):
        self.root = root
        self.micropython = micropython or MICROPYTHON
        self.port = port or free_port()
        self.prefix = list(prefix)  # e.g. an unshare/mount wrapper
        self.proc = None
        self.reboots = 0
        self.exits = []
        self.log_path = os.path.join(ROOT, "test-artifacts", "ota-%d.log" % self.port)
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.log = open(self.log_path, "a")

    def spawn(self, env=None):
        full = dict(os.environ)
        full.update(env or {})
        cmd = self.prefix + [self.micropython, os.path.join(self.root, "main.py"), "--host", "127.0.0.1",
                             "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, cwd=self.root, stdout=self.log, stderr=subprocess.STDOUT, env=full)
        return self.proc

    def boot(self, env=None, timeout=15):
        """Start, restarting on exit 75, until it listens. Returns self."""
        deadline = time.monotonic() + timeout
        self.spawn(env)
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.exits.append(rc)
                if rc != REBOOT:
                    raise AssertionError("car exited %s, not a reboot:\n%s" % (rc, self.output()[-3000:]))
                self.reboots += 1
                self.spawn()  # a reboot: env (a test's power cut) applies to one boot only
                continue
            if self.listening():
                return self
            time.sleep(0.02)
        raise AssertionError("car not listening after %.0f s:\n%s" % (timeout, self.output()[-3000:]))

    def run_once(self, env=None, timeout=15):
        """One boot to its end (a power cut, a reboot); returns its exit code."""
        self.spawn(env)
        rc = self.proc.wait(timeout)
        self.exits.append(rc)
        return rc

    def listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def follow(self, timeout=15):
        """Keep the car running across the reboots it asks for, until it listens again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.exits.append(rc)
                assert rc == REBOOT, (rc, self.output()[-3000:])
                self.reboots += 1
                return self.boot(timeout=deadline - time.monotonic())
            time.sleep(0.02)
        raise AssertionError("the car did not reboot within %.0f s" % timeout)

    def wait_exit(self, timeout=15):
        rc = self.proc.wait(timeout)
        self.exits.append(rc)
        return rc

    def kill(self):
        kill(self.proc)

    def stop(self):
        stop(self.proc)
        self.log.close()

    def output(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    @property
    def target(self):
        return ("127.0.0.1", self.port)

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d" % self.port

    def info(self, token=None):
        return ota.info("127.0.0.1", self.port, token)

    def version(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/api/status" % self.port, timeout=5) as r:
            return json.loads(r.read())["hello"]["firmware"]

    def serves_page(self):
        """The page, as a browser asks for it (gzip: an updated app has only .gz assets)."""
        req = urllib.request.Request("http://127.0.0.1:%d/" % self.port, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read()
            if r.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
        assert r.status == 200 and b"<title" in body, body[:200]
        return True

    def ota_state(self):
        return sorted(os.listdir(os.path.join(self.root, ".ota"))) if os.path.isdir(
            os.path.join(self.root, ".ota")) else None


def update_body(files, version, confirm_s=2):
    """(manifest, body bytes, offsets where each file starts)."""
    man = ota.manifest(files, version, confirm_s)
    body = bytearray(man)
    starts = [len(man)]
    for _, data in files:
        body += data
        starts.append(len(body))
    return man, bytes(body), starts


def put(port, man, body, token=None, send=None, headers=None, timeout=30):
    """PUT /api/update with `send` bytes of `body` (all by default), then
    read the answer (send < len(body): the client closes its side first)."""
    send = len(body) if send is None else send
    h = {"Host": "127.0.0.1:%d" % port, "Content-Length": str(len(body)), "X-Tether-Manifest": str(len(man))}
    h.update(headers or {})
    head = "PUT /api/update%s HTTP/1.1\r\n" % ota.token_query(token) + \
        "".join("%s: %s\r\n" % kv for kv in h.items() if kv[1] is not None) + "\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(head.encode() + body[:send])
    if send < len(body):
        s.shutdown(socket.SHUT_WR)
    from support.wsraw import read_response
    try:
        status, _, answer = read_response(s)
    finally:
        s.close()
    return status, answer.decode(errors="replace")
