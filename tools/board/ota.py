#!/usr/bin/env python3
"""Update a running car's app over the air (docs/updates.md).

    python tools/board/ota.py 192.168.4.1 [--token T] [--config config.json]   (make ota HOST=... TOKEN=...)
    python tools/board/ota.py 127.0.0.1:8080                                     (against make sim)

1. GET /api/update: the car's bytecode version and architecture, free flash,
   whether lib/ is in ROMFS (then: update over USB) and its update state.
2. Stages the app for that architecture (tools/board/stage.py's tree: lib/ as .mpy,
   web/ gzipped, main.py, boot.py; config.json only with --config), with
   car.VERSION labelled "+<git describe>.<time>" so every update is told apart.
3. PUT /api/update: a manifest (path, size, sha256 of every file), then the
   files, in one body (Expect: 100-continue: a refusal arrives before any of
   it is sent). The car checks each hash, then restarts into the new app.
4. Waits for the car to come back on the new version, and for the new app to
   confirm itself (or roll back), printing how long each step took.
CPython only.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.board import stage  # noqa: E402
from tools.common import read_to_eof  # noqa: E402

ROOT = stage.ROOT
MPY_VERSION = 6
APP = ("lib", "web", "main.py", "boot.py")


class OTAError(Exception):
    pass


def parse_host(value, default_port=80):
    if value.startswith("["):  # [v6]:port
        end = value.index("]")
        host, rest = value[1:end], value[end + 1:]
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, default_port


def http(host, port, method, path, headers=None, body_parts=(), timeout=10.0, expect=False):
    """One request; returns (status, headers, body). body_parts: bytes-likes
    sent after the head (after 100 Continue when expect)."""
    h = {"Host": "%s:%d" % (host, port)}
    h.update(headers or {})
    if expect:
        h["Expect"] = "100-continue"
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(head.encode())
        buf = b""
        if expect:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise OTAError("the car closed the connection before answering")
                buf += chunk
            if buf.startswith(b"HTTP/1.1 100"):
                buf = buf[buf.index(b"\r\n\r\n") + 4:]
                expect = False
        if not expect:
            try:
                for part in body_parts:
                    s.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the car refused mid-body: its answer is waiting
        buf = read_to_eof(s, buf)
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or len(lines[0].split()) < 2:
        raise OTAError("no HTTP answer from %s:%d" % (host, port))
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


def label(root=ROOT):
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return (rev + "." if rev else "") + time.strftime("%Y%m%dT%H%M%S", time.gmtime())


def build(march, root=ROOT, version_label=None, config=None, patch=None, log=print):
    """[(board path, bytes)] of the staged app, car.VERSION labelled.
    patch(tmp_root): a hook to change the copied source (tests)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(os.path.join(src, "tools", "web"))
        for name in APP:
            path = os.path.join(root, name)
            if os.path.isdir(path):
                shutil.copytree(path, os.path.join(src, name),
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.gz"))
            elif os.path.exists(path):
                shutil.copy(path, os.path.join(src, name))
        builder = os.path.join(root, "tools", "web", "build_web.py")
        if os.path.exists(builder):
            shutil.copy(builder, os.path.join(src, "tools", "web"))
        init = os.path.join(src, "lib", "car", "__init__.py")
        with open(init) as f:
            text = f.read()
        text, n = re.subn(r'^VERSION = "([^"+]*)[^"]*"', lambda m: 'VERSION = "%s+%s"' % (
            m.group(1), version_label or label(root)), text, count=1, flags=re.M)
        if not n:
            raise OTAError("lib/car/__init__.py has no VERSION line to label")
        with open(init, "w") as f:
            f.write(text)
        if patch:
            patch(src)
        out, hashes = stage.stage(march, root=src, out_dir=os.path.join(tmp, "out"),
                                  config=config or os.path.join(tmp, "no-config.json"), log=lambda m: None)
        files = []
        for rel in sorted(hashes):
            with open(os.path.join(out, rel), "rb") as f:
                files.append((rel, f.read()))
        return files


def manifest(files, version, confirm_s=None):
    doc = {"version": version, "files": [[rel, len(data), hashlib.sha256(data).hexdigest()]
                                         for rel, data in files]}
    if confirm_s:
        doc["confirm_s"] = confirm_s  # else the car's default (car/ota.py CONFIRM_S)
    return json.dumps(doc, separators=(",", ":")).encode()


def version_of(files):
    for rel, data in files:
        if rel == "lib/car/__init__.mpy":
            m = re.search(rb"(\d+\.\d+\.\d+\+[\w.\-]+)", data)
            if m:
                return m.group(1).decode()
    raise OTAError("no labelled VERSION in the staged lib/car/__init__.mpy")


def token_query(token):
    return "?token=" + urllib.parse.quote(token, safe="") if token else ""


def info(host, port, token=None):
    status, _, body = http(host, port, "GET", "/api/update" + token_query(token))
    if status == 404:
        raise OTAError("the app on the car has no /api/update: flash it once over USB (make deploy)")
    if status != 200:
        raise OTAError("GET /api/update: %d %s" % (status, body.decode(errors="replace").strip()))
    return json.loads(body)


def march_for(car):
    mpy = car["mpy"]
    if mpy & 0xFF != MPY_VERSION:
        raise OTAError("the car's MicroPython loads .mpy version %d; this mpy-cross makes %d: "
                       "update MicroPython over USB (make flash)" % (mpy & 0xFF, MPY_VERSION))
    arch = stage.ARCH_BY_CODE.get(mpy >> 10)
    if mpy >> 10 and not arch:
        raise OTAError("unknown native architecture code %d on the car" % (mpy >> 10))
    return arch


def upload(host, port, files, version, token=None, timeout=120.0, confirm_s=None):
    man = manifest(files, version, confirm_s)
    length = len(man) + sum(len(d) for _, d in files)
    status, _, body = http(host, port, "PUT", "/api/update" + token_query(token),
                           {"Content-Length": str(length), "X-Tether-Manifest": str(len(man)),
                            "Content-Type": "application/octet-stream"},
                           [man] + [d for _, d in files], timeout=timeout, expect=True)
    return status, body.decode(errors="replace").strip()


def wait_for(host, port, token, predicate, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = info(host, port, token)
            if predicate(last):
                return last
        except (OSError, OTAError, ValueError):
            pass
        time.sleep(0.2)
    raise OTAError("gave up after %.0f s; last answer: %s" % (timeout, last))


def run(target, token=None, config=None, wait_confirm=True, confirm_s=None, log=print):
    host, port = target
    t0 = time.monotonic()
    car = info(host, port, token)
    if car["romfs"]:
        raise OTAError("this car (%s) keeps lib/ in ROMFS: updating it over the air could leave no "
                       "app after a cut (one segment, erased before it is written). Update it over "
                       "USB: make deploy PORT=..." % car["platform"])
    if car["state"] != "idle":
        raise OTAError("the car's last update is still %s; wait for it to confirm or roll back" % car["state"])
    march = march_for(car)
    log("car %s:%d runs %s on %s (%s), %d KB flash free" % (
        host, port, car["firmware"], car["platform"], march or "bytecode", car["free"] // 1024))
    files = build(march, config=config, log=log)
    version = version_of(files)
    size = sum(len(d) for _, d in files)
    t1 = time.monotonic()
    log("staged %s: %d files, %d bytes (%.1f s)" % (version, len(files), size, t1 - t0))
    status, answer = upload(host, port, files, version, token, confirm_s=confirm_s)
    t2 = time.monotonic()
    if status != 200:
        raise OTAError("the car refused the update: %d %s" % (status, answer))
    log("sent in %.1f s (%.0f KB/s); the car restarts into it" % (t2 - t1, size / 1024 / max(t2 - t1, 1e-3)))
    back = wait_for(host, port, token, lambda c: c["firmware"] == version, 60)
    t3 = time.monotonic()
    log("running %s again after %.1f s (state: %s)" % (back["firmware"], t3 - t2, back["state"]))
    if wait_confirm and back["state"] == "trial":
        done = wait_for(host, port, token, lambda c: c["state"] != "trial", 660)
        if done["firmware"] != version:
            raise OTAError("the new app did not confirm itself and the car rolled back to %s"
                           % done["firmware"])
        log("confirmed after %.1f s" % (time.monotonic() - t3))
    log("update took %.1f s in all" % (time.monotonic() - t0))
    return version


def main(argv=None):
    ap = argparse.ArgumentParser(description="Update a car's app over the air.")
    ap.add_argument("host", help="the car: HOST or HOST:PORT (default port 80)")
    ap.add_argument("--token", default=os.environ.get("TOKEN") or None, help="the car's access.token")
    ap.add_argument("--config", help="also send this file as the car's config.json")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for the new app to confirm itself")
    ap.add_argument("--confirm-s", type=int, help="seconds the new app must run healthy to be kept "
                    "(default: the car's, 20)")
    args = ap.parse_args(argv)
    try:
        run(parse_host(args.host), args.token, args.config, not args.no_wait, args.confirm_s)
    except (OTAError, stage.StageError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:
        print("error: cannot reach %s: %s" % (args.host, e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
