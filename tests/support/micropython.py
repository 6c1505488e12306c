"""Shared harness: start the real firmware under the MicroPython Unix port on a
free loopback port, and clean it up after each test."""
import os
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)


def micropython_path():
    candidate = os.path.join(VENV_BIN, "micropython")
    if os.path.exists(candidate):
        return candidate
    return "micropython"


MICROPYTHON = micropython_path()
PROXY_DIR = os.path.join(ROOT, "build", "proxy")


def board_proxy(chip):
    """Path of the 32-bit board-proxy interpreter for chip ("esp32" or "esp8266"), built by
    `make proxies`. Missing: the test is skipped with how to get it, or fails under CI."""
    path = os.path.join(PROXY_DIR, "micropython-" + chip)
    if not os.path.exists(path):
        why = ("no %s board proxy at %s: run `make proxies` (needs gcc-multilib and a MicroPython "
               "v1.28 source: MICROPYTHON_SRC=... or ../shared/micropython/)" % (chip, path))
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError("micropython exited (%s) before listening:\n%s" % (proc.returncode, out))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nothing listening on port %d after %.0fs" % (port, timeout))


class MicroPythonProcess:
    """A running `micropython` process serving on `self.port`."""

    def __init__(self, script, args=(), heapsize=None, cwd=ROOT, port=None, env=None, micropython=None):
        self.port = port or free_port()
        cmd = [micropython or MICROPYTHON]
        if heapsize:
            cmd += ["-X", "heapsize=%s" % heapsize]
        cmd += [script, "--port", str(self.port)] + list(args)
        self.cmd = cmd
        self.log_path = os.path.join(ROOT, "test-artifacts", "mp-%d.log" % self.port)
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self._log = open(self.log_path, "w+")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, env=full_env)
        try:
            wait_for_port(self.port, self)
        except Exception:
            self.stop()
            raise

    # Let wait_for_port treat us like a Popen.
    def poll(self):
        return self.proc.poll()

    @property
    def returncode(self):
        return self.proc.returncode

    @property
    def stdout(self):
        self._log.flush()
        return open(self.log_path)

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def start_micropython():
    """start_micropython(script, args=(), heapsize=None) -> MicroPythonProcess."""
    procs = []

    def start(script, args=(), **kw):
        p = MicroPythonProcess(script, args, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()


def run_micropython(code_or_path, *args, heapsize=None, timeout=60, cwd=ROOT, micropython=None):
    """Run a MicroPython script to completion (under `micropython`, e.g. a board proxy);
    returns CompletedProcess."""
    cmd = [micropython or MICROPYTHON]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    if os.path.exists(os.path.join(cwd, code_or_path)) or os.path.exists(code_or_path):
        cmd.append(code_or_path)
    else:
        cmd += ["-c", code_or_path]
    cmd += list(args)
    env = dict(os.environ, MICROPYPATH=os.path.join(ROOT, "lib") + ":.frozen")
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
