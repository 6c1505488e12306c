"""What one echo costs the server in system calls, counted by strace on the
real server process: the raw asyncio TCP echo's (the read, the read that
finds the socket empty, one write, and two polls), nothing more. A poll is
a turn of the event loop: asyncio's loop polls twice when it wakes for a
socket while a timer is pending (the server's watcher always is): once
with the timer's timeout, then with 0 (extmod/asyncio/core.py,
run_until_complete). A third poll would be a turn of ours: a task or a
coroutine that yields between a frame and its reply."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from support.micropython import MicroPythonProcess
from support.wsraw import RawWS

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
ROUND_TRIPS = 300


def syscalls_per(op_count, pid, run):
    """strace -c -f on `pid` while run() does op_count operations -> {call: per op}."""
    fd, out = tempfile.mkstemp(suffix=".strace")
    os.close(fd)
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # attached to every thread by then
        if tracer.poll() is not None:
            pytest.skip("strace cannot attach here: %s" % tracer.stderr.read().decode().strip())
        run()
        time.sleep(0.2)  # the last replies' calls
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(20)
    counts = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[3].isdigit() and parts[-1] != "total":
                counts[parts[-1]] = int(parts[3]) / op_count
    os.unlink(out)
    return counts


def test_an_echo_costs_the_system_calls_of_the_raw_tcp_echo():
    server = MicroPythonProcess("tools/measure/echo_server.py")
    try:
        ws = RawWS(server.port, "/")
        for _ in range(20):  # warm: imports, first allocations
            ws.send_text("0123456789abcdef0123456789abcdef")
            assert ws.recv_frame()[2] == b"0123456789abcdef0123456789abcdef"

        def echoes():
            for i in range(ROUND_TRIPS):
                message = "%032d" % i
                ws.send_text(message)
                assert ws.recv_frame()[2] == message.encode()

        calls = syscalls_per(ROUND_TRIPS, server.proc.pid, echoes)
        ws.close()
    finally:
        server.stop()
    # The watcher's wake-ups (every 1.25 s) add a few polls in all.
    assert 2.0 <= calls.get("poll", 0) < 2.05, calls
    assert calls.get("write") == 1.0, calls
    assert calls.get("read") == 2.0, calls  # the read, and the one that finds nothing more
