"""The real firmware under the MicroPython Unix port: a process serving on a free
loopback port (MicroPythonProcess), a script run to completion (run_micropython),
and the 32-bit board proxies (board_proxy)."""
import os
import subprocess
import sys

from support import ROOT, unavailable  # noqa: F401 (ROOT: also the tests' ROOT)
from support.processes import free_port, stop, wait_listening
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
        unavailable(why)
    return path


def wait_for_port(port, proc, timeout=10.0):
    wait_listening(port, proc, timeout, what="micropython")


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
        stop(self.proc)
        self._log.close()


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


def test_functions(path):
    """Names of the module-level test_ functions in the file at `path` (read from its
    source, so CPython need not import a module written for MicroPython)."""
    import ast
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
    return sorted(node.name for node in tree.body
                  if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"))


def run_test_module(path, micropython=None, timeout=60):
    """Run the plain-assert test module at `path` inside MicroPython (support/mp_runner.py)
    and require every one of its test_ functions to pass: "N passed, 0 failed" with N
    the number the file defines. Returns the CompletedProcess."""
    result = run_micropython("tests/support/mp_runner.py", path, micropython=micropython, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    want = "micropython: %d passed, 0 failed" % len(test_functions(path))
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert last == want, result.stdout + result.stderr
    return result
