"""The link cars' memory checks (tools/measure/fleet_memory.py and
uplink_memory.py --check): each bisects the plain car's edge on the esp32
proxy, then runs its links once at the budget. They are subprocesses of
~12 s and ~17 s that mostly wait on the firmware, so tests/memory/conftest.py
starts both together and each test module waits for its own."""
import subprocess
import sys

from support.micropython import ROOT
from support.mqtt import can_unshare, have_mosquitto, have_wsclient

TIMEOUT_S = 240
# --near: the plain car's edge today (docs/fleet.md, Memory), confirmed in two
# runs; an edge elsewhere costs the whole bisection, not a wrong answer.
BISECT = ["--check", "--seconds", "5", "--lo", "40", "--hi", "100", "--near", "54"]


def fleet_ready():
    return have_mosquitto() and can_unshare() and have_wsclient()


def start(proxy):
    """{"uplink": Popen, "fleet": Popen (where fleet_ready())}."""
    runs = {"uplink": subprocess.Popen([sys.executable, "tools/measure/uplink_memory.py"] + BISECT
                                       + ["--micropython", proxy], cwd=ROOT, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)}
    if fleet_ready():
        # mosquitto 2.0.11 binds its WebSocket listener to every interface: a private
        # network namespace (unshare -n, loopback up) keeps it off the machine's.
        script = "ip link set lo up && exec %s tools/measure/fleet_memory.py %s --ws --micropython %s" % (
            sys.executable, " ".join(BISECT), proxy)
        runs["fleet"] = subprocess.Popen(["unshare", "-n", "sh", "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
    return runs


def finished(runs, name):
    """(stdout, stdout + stderr) of that check, once it has ended."""
    out, err = runs[name].communicate(timeout=TIMEOUT_S)
    return out, out + err


def stop(runs):
    for proc in runs.values():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
