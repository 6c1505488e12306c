#!/usr/bin/env python3
"""Tether server benchmark: Tether vs microdot 2.7 vs a raw TCP echo, same micropython, same machine.

    python tools/measure/bench.py [--micropython .venv/bin/micropython] [--quick] [--servers tether,microdot,raw]
                          [--rounds 3] [--skip-minheap]

Each round first starts every server afresh, all at once, and measures RTT and handshakes
in alternating blocks (measure_interleaved: the load on the machine at any moment weighs on
every server alike); then it starts each server in turn for the throughput, fan-out and heap
figures, rotating the order (A B C, B C A, C A B, ...) so drift hits all of them alike;
medians over the rounds are reported. The load client is this CPython process: raw sockets, hand-written
minimal WebSocket framing (fixed mask, frames built once), so it is not the bottleneck;
its own CPU share (process_time / wall) is printed next to each figure.
Server CPU comes from /proc/<pid>/stat (utime+stime). Loopback only; every loop is bounded
in count and time. Writes the table to reports/bench.md and every raw figure to
reports/bench.json.
"""
import argparse
import json
import os
import platform
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.common import REPORTS, ROOT, free_port, read_to_eof, stop_all  # noqa: E402
HOST = "127.0.0.1"
MASK = b"\x37\xfa\x21\x3d"               # fixed: the client never spends time on randomness
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
MSG32 = b"0123456789abcdef0123456789abcdef"
MSG1K = (b"abcdefghijklmnopqrstuvwxyz012345" * 32)
PAGE_SIZE = 4096
IO_TIMEOUT = 5.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
SITE_PACKAGES = os.path.join(ROOT, ".venv", "lib", "python3.11", "site-packages")
LABELS = {"tether": "Tether", "microdot": "microdot", "raw": "raw TCP", "websockets": "websockets (CPython)"}


def describe_interpreter(micropython):
    """`path` (implementation, build, word size) of the MicroPython binary."""
    try:
        out = subprocess.run([micropython, "-c", "import sys; print(sys.implementation._build, sys.version, "
                              "64 if sys.maxsize > 1 << 40 else 32)"], capture_output=True, text=True, timeout=10).stdout
        build, rest = out.split(" ", 1)
        version, bits = rest.rsplit(" ", 1)
        return "`%s` (%s, %s, %s-bit)" % (os.path.relpath(micropython, ROOT), build, version.strip(), bits.strip())
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return "`%s`" % micropython


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- wire helpers

def mask_payload(payload):
    n = len(payload)
    key = (MASK * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def ws_frame(payload, opcode=0x1):
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + MASK + mask_payload(payload)


def ws_count(buf):
    """Complete server frames at the start of buf -> (count, bytes used)."""
    i, n, count = 0, len(buf), 0
    while i + 2 <= n:
        ln = buf[i + 1] & 0x7F
        if ln < 126:
            end = i + 2 + ln
        elif ln == 126:
            if i + 4 > n:
                break
            end = i + 4 + ((buf[i + 2] << 8) | buf[i + 3])
        else:
            if i + 10 > n:
                break
            end = i + 10 + int.from_bytes(buf[i + 2:i + 10], "big")
        if end > n:
            break
        count += 1
        i = end
    return count, i


def ws_split_first(buf):
    """(opcode, payload) of the first complete frame, removed from buf; None if incomplete."""
    if len(buf) < 2:
        return None
    ln = buf[1] & 0x7F
    start = 2
    if ln == 126:
        if len(buf) < 4:
            return None
        ln, start = (buf[2] << 8) | buf[3], 4
    elif ln == 127:
        if len(buf) < 10:
            return None
        ln, start = int.from_bytes(buf[2:10], "big"), 10
    if len(buf) < start + ln:
        return None
    opcode, payload = buf[0] & 0x0F, bytes(buf[start:start + ln])
    del buf[:start + ln]
    return opcode, payload


def connect(port):
    s = socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Conn:
    """A socket plus the bytes received but not yet consumed."""

    def __init__(self, sock, buf=b""):
        self.sock = sock
        self.buf = bytearray(buf)

    def fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise EOFError("server closed the connection")
        self.buf += data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def http_get(port, path):
    """GET path with Connection: close -> (status, body)."""
    s = connect(port)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (path.encode(), HOST.encode(), port))
        buf = bytearray()
        length = None
        while True:
            if length is None and b"\r\n\r\n" in buf:
                head, _ = bytes(buf).split(b"\r\n\r\n", 1)
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
            if length is not None and len(buf) >= buf.index(b"\r\n\r\n") + 4 + length:
                break
            data = s.recv(65536)
            if not data:
                break
            buf += data
        head, _, body = bytes(buf).partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, body[:length] if length is not None else body
    finally:
        s.close()


# ---------------------------------------------------------------- protocols

class WSProto:
    """The two WebSocket servers (Tether, microdot): echo at /, fan-out at /bcast."""
    name = "ws"

    def open(self, port, path="/"):
        s = connect(port)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                  % (path.encode(), HOST.encode(), port, KEY))
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = s.recv(4096)
            if not data:
                s.close()
                raise EOFError("closed during the opening handshake")
            buf += data
        head, rest = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            s.close()
            raise RuntimeError("handshake refused: %r" % head.split(b"\r\n")[0])
        return Conn(s, rest)

    def wire(self, payload):
        return ws_frame(payload)

    def count(self, buf):
        return ws_count(buf)

    def recv_one(self, conn):
        while True:
            got = ws_split_first(conn.buf)
            if got:
                return got[1]
            conn.fill()

    def heap(self, conn):
        conn.sock.sendall(ws_frame(b"heap"))
        return int(self.recv_one(conn))

    def bcast_open(self, port):
        return self.open(port, "/bcast")

    def bcast_cmd(self, conn, cmd):
        conn.sock.sendall(ws_frame(cmd))

    def count_pushed(self, buf):
        return ws_count(buf)

    def close(self, conn, wait=True):
        """Closing handshake: send 1000, wait for the server's close frame (or EOF)."""
        try:
            conn.sock.sendall(ws_frame(b"\x03\xe8", 0x8))
            while wait:
                got = ws_split_first(conn.buf)
                if got and got[0] == 0x8:
                    break
                if got:
                    continue
                conn.fill()
        except (OSError, EOFError):
            pass
        conn.close()


class RawProto:
    """The raw TCP ceiling: no framing; messages are fixed-size, pushed lines end in \\n."""
    name = "raw"
    size = len(MSG32)

    def open(self, port, path="/"):
        return Conn(connect(port))

    def wire(self, payload):
        return payload

    def count(self, buf):
        n = len(buf) // self.size
        return n, n * self.size

    def recv_one(self, conn):
        while len(conn.buf) < self.size:
            conn.fill()
        payload = bytes(conn.buf[:self.size])
        del conn.buf[:self.size]
        return payload

    def heap(self, conn):
        conn.sock.sendall(b"heap\n")
        while b"\n" not in conn.buf:
            conn.fill()
        line, _, rest = bytes(conn.buf).partition(b"\n")
        conn.buf = bytearray(rest)
        return int(line)

    def bcast_open(self, port):
        conn = Conn(connect(port))
        conn.sock.sendall(b"bcast\n")
        return conn

    def bcast_cmd(self, conn, cmd):
        conn.sock.sendall(cmd + b"\n")

    def count_pushed(self, buf):
        n = buf.count(b"\n")
        return n, (buf.rindex(b"\n") + 1) if n else 0

    def close(self, conn, wait=True):
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            while wait:
                conn.fill()
        except (OSError, EOFError):
            pass
        conn.close()


# ---------------------------------------------------------------- servers

def server_cpu(pid):
    """utime+stime of pid, seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Builds:
    """Where each server's code lives, as .py (the repo) or .mpy (compiled into a temp dir)."""

    def __init__(self, micropython, mpy_cross, workdir):
        # Absolute: the .mpy builds run with their temp dir as cwd.
        self.micropython = os.path.abspath(micropython) if os.sep in micropython else micropython
        self.mpy_cross = os.path.abspath(mpy_cross) if os.sep in mpy_cross else mpy_cross
        self.workdir = workdir
        self.static = os.path.join(workdir, "static")
        os.makedirs(self.static)
        with open(os.path.join(self.static, "page.html"), "wb") as f:
            body = b"<!doctype html><title>bench</title><p>" + b"x" * PAGE_SIZE
            f.write(body[:PAGE_SIZE - 5] + b"</p>\n")
        # microdot .py: a dir holding only the microdot package, not the whole site-packages.
        self.microdot_py = os.path.join(workdir, "microdot-py")
        os.makedirs(self.microdot_py)
        os.symlink(os.path.join(SITE_PACKAGES, "microdot"), os.path.join(self.microdot_py, "microdot"))
        self._mpy = {}
        # Native code for @micropython.viper functions needs the target arch; the rest is bytecode.
        self.march = ["-march=x64"] if platform.machine() in ("x86_64", "AMD64") else []

    def compile_tree(self, src_dir, dst_dir):
        for dirpath, _, files in os.walk(src_dir):
            for fn in files:
                if not fn.endswith(".py"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, fn), src_dir)
                out = os.path.join(dst_dir, rel[:-3] + ".mpy")
                os.makedirs(os.path.dirname(out), exist_ok=True)
                subprocess.run([self.mpy_cross] + self.march + ["-s", rel, "-o", out, os.path.join(dirpath, fn)],
                               check=True, capture_output=True)

    def mpy_dir(self, name):
        if name in self._mpy:
            return self._mpy[name]
        d = os.path.join(self.workdir, name + "-mpy")
        os.makedirs(d)
        if name == "tether":
            self.compile_tree(os.path.join(ROOT, "lib", "wsserver"), os.path.join(d, "lib", "wsserver"))
            script = os.path.join(ROOT, "tools", "measure", "echo_server.py")
        elif name == "microdot":
            self.compile_tree(os.path.join(SITE_PACKAGES, "microdot"), os.path.join(d, "microdot"))
            script = os.path.join(ROOT, "tools", "measure", "bench_servers", "microdot_echo.py")
        else:
            script = os.path.join(ROOT, "tools", "measure", "bench_servers", "raw_tcp_echo.py")
        module = os.path.basename(script)[:-3]
        subprocess.run([self.mpy_cross] + self.march + ["-o", os.path.join(d, module + ".mpy"), script],
                       check=True, capture_output=True)
        self._mpy[name] = (d, module)
        return self._mpy[name]

    def command(self, name, port, build="py", heapsize=None):
        """-> (argv, cwd, env)."""
        cmd = [self.micropython]
        if heapsize:
            cmd += ["-X", "heapsize=%s" % heapsize]
        env = dict(os.environ)
        args = ["--port", str(port), "--host", HOST]
        args += ["--static", self.static]      # holds page.html, the 4 KiB page of the heap test
        if name == "tether":
            args = ["--bench"] + args
        if build == "mpy":
            d, module = self.mpy_dir(name)
            path = {"tether": [os.path.join(d, "lib"), d]}.get(name, [d])
            env["MICROPYPATH"] = ":".join([".frozen"] + path)
            return cmd + ["-m", module] + args, d, env
        if name == "websockets":  # CPython, whatever interpreter the others run on
            return [sys.executable, "tools/measure/bench_servers/websockets_echo.py", "--port", str(port),
                    "--host", HOST], ROOT, env
        if name == "tether":
            env["MICROPYPATH"] = os.path.join(ROOT, "lib") + ":.frozen"
            script = "tools/measure/echo_server.py"
        elif name == "microdot":
            env["MICROPYPATH"] = ".frozen:" + self.microdot_py
            script = "tools/measure/bench_servers/microdot_echo.py"
        else:
            script = "tools/measure/bench_servers/raw_tcp_echo.py"
        return cmd + [script] + args, ROOT, env


class Server:
    def __init__(self, builds, name, build="py", heapsize=None, pin_cpu=None, listen_timeout=10.0):
        self.name = name
        self.port = free_port()
        argv, cwd, env = builds.command(name, self.port, build, heapsize)
        os.makedirs(os.path.join(REPORTS, "bench-logs"), exist_ok=True)
        self.log_path = os.path.join(REPORTS, "bench-logs", "%s-%s.log" % (name, build))
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if pin_cpu is not None:
            try:
                os.sched_setaffinity(self.proc.pid, {pin_cpu})
            except OSError:
                pass
        deadline = time.monotonic() + listen_timeout
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("%s exited (%s) before listening; see %s"
                                   % (name, self.proc.returncode, self.log_path))
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("%s not listening after %.0fs" % (name, listen_timeout))
                time.sleep(0.02)

    def alive(self):
        return self.proc.poll() is None

    def cpu(self):
        return server_cpu(self.proc.pid)

    def stop(self):
        stop_all([self.proc], 3)
        self.log.close()


# ---------------------------------------------------------------- measurements
# Each returns a dict of figures; the caller adds the client's CPU share.

def measure_heap(proto, server):
    status, body = http_get(server.port, "/heap")
    idle = int(body) if status == 200 else None
    conns = [proto.open(server.port)]
    try:
        h1 = proto.heap(conns[0])
        for _ in range(7):
            c = proto.open(server.port)
            conns.append(c)
            c.sock.sendall(proto.wire(MSG32))      # make sure the server has fully set it up
            proto.recv_one(c)
        h8 = proto.heap(conns[0])
    finally:
        for c in conns:
            proto.close(c, wait=False)
    return {"heap_idle": idle, "heap_1ws": h1, "heap_8ws": h8, "heap_per_ws": (h8 - h1) / 7}


# Command-to-motor latency: the car firmware with the simulated car
# (tools/measure/bench_servers/car_motor.py) prints the time of every motor write;
# ticks_us on the Unix port is CLOCK_MONOTONIC in µs, the clock behind
# time.monotonic_ns(), so send time and write time are on one clock. The
# figure includes the frame's way over loopback (about half an echo RTT).
TICKS_PERIOD = 1 << 30  # the smallest port's ticks period; the others are multiples of it


def start_car(micropython, tick_ms=None, limits=None, heapsize=None):
    """-> (Popen with stdout a pipe, port, config dir). Waits until it listens."""
    port = free_port()
    cfg_dir = tempfile.mkdtemp(prefix="tether-car-")
    cfg = {"limits": dict({"max_speed": 1.0, "slew": 100.0, "deadman_ms": 500, "telemetry_hz": 5},
                          **(limits or {})),
           "server": {"max_clients": 4},
           "hardware": {"mode": "sim", "min_duty": 0.0, "sim": {"noise_cm": 0.0}}}
    path = os.path.join(cfg_dir, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    argv = [micropython] + (["-X", "heapsize=%s" % heapsize] if heapsize else [])
    argv += ["tools/measure/bench_servers/car_motor.py", "--port", str(port), "--config", path]
    if tick_ms:
        argv += ["--tick-ms", str(tick_ms)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            raise RuntimeError("car exited (%s): %s" % (proc.returncode, proc.stdout.read()[-500:]))
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return proc, port, cfg_dir
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("car not listening after 10 s")
            time.sleep(0.02)


def motor_latency(proc, port, count, timeout=2.0):
    """Drive commands one at a time; for each, µs from just before the send to
    the car's first motor write of that command's value -> sorted list."""
    proto = WSProto()
    conn = proto.open(port, "/ws")
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    sel.register(conn.sock, selectors.EVENT_READ)
    lines = bytearray()
    samples = []
    # ±0.0005 alternating: each command changes the output, and the ramp
    # (100/s) covers the step in 10 µs, so the write right after the command
    # carries its value (a partial write would be skipped: never too low).
    try:
        for i in range(count):
            value = 0.0005 if i & 1 else -0.0005
            frame = ws_frame(b'{"type":"drive","throttle":%s,"steer":0}' % repr(value).encode())
            sent = time.monotonic_ns() // 1000
            conn.sock.sendall(frame)
            deadline = time.monotonic() + timeout
            got = None
            while got is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("no motor write of %r within %.1f s" % (value, timeout))
                for key, _ in sel.select(left):
                    if key.fileobj is conn.sock:
                        if not conn.sock.recv(65536):  # telemetry, role, errors: not needed
                            raise EOFError("car closed the connection")
                        continue
                    data = os.read(fd, 65536)
                    if not data:
                        raise EOFError("car exited")
                    lines += data
                while got is None and b"\n" in lines:
                    line, _, rest = bytes(lines).partition(b"\n")
                    lines[:] = rest
                    parts = line.split()
                    if len(parts) == 3 and parts[0] == b"motor" and abs(float(parts[2]) - value) < 1e-7:
                        at = int(parts[1])
                        got = (at - sent) % TICKS_PERIOD
                        if got > TICKS_PERIOD // 2:  # written before the send: an older command's
                            got = None
            samples.append(got)
    finally:
        sel.close()
        proto.close(conn, wait=False)
    samples.sort()
    return samples


def measure_motor(micropython, count, heapsize=None):
    proc, port, cfg_dir = start_car(micropython, heapsize=heapsize)
    try:
        s = motor_latency(proc, port, count)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        shutil.rmtree(cfg_dir, ignore_errors=True)
    return {"motor_p50_us": s[len(s) // 2], "motor_p99_us": s[min(len(s) - 1, int(len(s) * 0.99))]}


def measure_pipelined(proto, server, payload, duration, window=32, max_messages=2_000_000):
    """Keep `window` messages in flight for `duration` s; -> msgs/s, server CPU us/msg.

    Every echo has the same known size on the wire, so the hot loop only counts bytes
    (recv_into one buffer, no copies, no parsing); the byte total is checked exactly at
    the end and one more echo is compared byte for byte."""
    conn = proto.open(server.port)
    one = proto.wire(payload)
    n = len(payload)
    echo_size = n if proto.name == "raw" else n + (2 if n < 126 else 4)
    scratch = bytearray(262144)
    batches = {}
    try:
        sock = conn.sock
        got = len(conn.buf)
        del conn.buf[:]
        cpu0, t0 = server.cpu(), time.perf_counter()
        stop_at = t0 + duration
        sock.sendall(one * window)
        sent, recvd, sending = window, 0, True
        while recvd < sent:
            k = sock.recv_into(scratch)
            if not k:
                raise EOFError("server closed the connection")
            got += k
            k = got // echo_size - recvd
            if not k:
                continue
            recvd += k
            if sending and (time.perf_counter() >= stop_at or sent >= max_messages):
                sending = False
            if sending:
                b = batches.get(k)
                if b is None:
                    b = batches[k] = one * k
                sock.sendall(b)
                sent += k
        elapsed = time.perf_counter() - t0
        cpu = server.cpu() - cpu0
        if got != recvd * echo_size:
            raise RuntimeError("got %d bytes, expected %d echoes of %d" % (got, recvd, echo_size))
        sock.sendall(one)
        if proto.name == "raw":
            while len(conn.buf) < n:
                conn.fill()
            back = bytes(conn.buf[:n])
        else:
            back = proto.recv_one(conn)
        if back != payload:
            raise RuntimeError("echo payload differs")
    finally:
        proto.close(conn, wait=False)
    return {"msgs_per_s": recvd / elapsed, "server_us_per_msg": cpu * 1e6 / recvd,
            "server_cpu_pct": 100 * cpu / elapsed}


SEQ = b'"seq":'


def seq_at(buf, i):
    """The integer after '"seq":' at index i of buf (None if i < 0)."""
    if i < 0:
        return None
    j = k = i + len(SEQ)
    while k < len(buf) and 48 <= buf[k] <= 57:
        k += 1
    return int(buf[j:k]) if k > j else None


def measure_fanout(proto, server, clients, duration):
    conns = [proto.bcast_open(server.port) for _ in range(clients)]
    sel = selectors.DefaultSelector()
    counts = [0] * clients
    first, last = [None] * clients, [None] * clients
    try:
        time.sleep(0.05)        # let the server register every member before the push starts
        for i, c in enumerate(conns):
            c.sock.setblocking(False)
            sel.register(c.sock, selectors.EVENT_READ, i)
        cpu0, t0 = server.cpu(), time.perf_counter()
        conns[0].sock.setblocking(True)
        proto.bcast_cmd(conns[0], b"start")
        conns[0].sock.setblocking(False)
        stop_at = t0 + duration
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                break
            for key, _ in sel.select(min(0.2, stop_at - now)):
                c = conns[key.data]
                try:
                    data = c.sock.recv(262144)
                except BlockingIOError:
                    continue
                if not data:
                    raise EOFError("server closed a /bcast connection")
                c.buf += data
                n, used = proto.count_pushed(c.buf)
                if n:
                    i = key.data
                    if first[i] is None:
                        first[i] = seq_at(c.buf, c.buf.find(SEQ, 0, used))
                    last[i] = seq_at(c.buf, c.buf.rfind(SEQ, 0, used))
                    del c.buf[:used]
                    counts[i] += n
        elapsed = time.perf_counter() - t0
        cpu = server.cpu() - cpu0
        conns[0].sock.setblocking(True)
        proto.bcast_cmd(conns[0], b"stop")
        conns[0].sock.setblocking(False)
        # Drain until the server goes quiet (bounded), so the next test starts clean.
        quiet_deadline = time.perf_counter() + 3.0
        while time.perf_counter() < quiet_deadline:
            events = sel.select(0.15)
            if not events:
                break
            for key, _ in events:
                try:
                    if not conns[key.data].sock.recv(262144):
                        sel.unregister(key.fileobj)
                except BlockingIOError:
                    pass
    finally:
        sel.close()
        for c in conns:
            c.sock.setblocking(True)
            c.sock.settimeout(0.5)
            proto.close(c, wait=False)
    total = sum(counts)
    # Servers that drop instead of block (drop-oldest queues) skip sequence numbers:
    # received / (last seq - first seq + 1) is the share of the pushed messages delivered.
    shares = [n / (b - a + 1) for n, a, b in zip(counts, first, last) if a is not None and b is not None and b >= a]
    return {"fanout_delivered_pct": 100 * min(shares) if len(shares) == clients else None,
            "fanout_msgs_per_s": total / elapsed,
            "fanout_min_client": min(counts) / elapsed,
            "fanout_mean_client": total / clients / elapsed,
            "fanout_server_us_per_msg": cpu * 1e6 / total if total else None,
            "fanout_server_cpu_pct": 100 * cpu / elapsed}


def measure_interleaved(servers, rtt_count, duration, blocks=20):
    """RTT and handshakes of every server of the round, all running at once,
    in `blocks` alternating blocks (rotated order): each block of one server
    sits between blocks of the others, so the load the machine carries at
    any moment weighs on every server alike. The figures are still each
    server's own: p50 and p99 over its rtt_count round trips, and its
    handshakes over its share of `duration`. (One server after another,
    5 rounds of 20,000 round trips gave a median Tether/raw of 1.29x while
    single rounds ranged 0.77-1.87x, at a load of 0-4.) -> {name: figures}."""
    protos = {name: WSProto() if name != "raw" else RawProto() for name in servers}
    conns = {name: protos[name].open(servers[name].port) for name in servers}
    samples = {name: [] for name in servers}
    shakes = {name: [0, 0.0] for name in servers if name != "raw"}
    names = list(servers)
    per_block = max(1, rtt_count // blocks)
    clock = time.perf_counter_ns
    try:
        for name in names:  # one echo each before timing: checks the payload, warms the path
            proto, conn = protos[name], conns[name]
            conn.sock.sendall(proto.wire(MSG32))
            if proto.recv_one(conn) != MSG32:
                raise RuntimeError("%s: echo payload differs" % name)
        for b in range(blocks):
            for name in names[b % len(names):] + names[:b % len(names)]:
                proto, conn = protos[name], conns[name]
                wire, got = proto.wire(MSG32), samples[name]
                sock, recv_one = conn.sock, proto.recv_one
                for _ in range(per_block):
                    t0 = clock()
                    sock.sendall(wire)
                    recv_one(conn)
                    got.append(clock() - t0)
                if name in shakes:
                    stop_at = time.perf_counter() + duration / blocks
                    t0 = time.perf_counter()
                    count = 0
                    while time.perf_counter() < stop_at:
                        proto.close(proto.open(servers[name].port), wait=True)
                        count += 1
                    shakes[name][0] += count
                    shakes[name][1] += time.perf_counter() - t0
    finally:
        for name in names:
            protos[name].close(conns[name], wait=False)
    out = {}
    for name in names:
        got = sorted(samples[name])
        out[name] = {"rtt_p50_us": got[len(got) // 2] / 1000,
                     "rtt_p99_us": got[min(len(got) - 1, int(len(got) * 0.99))] / 1000}
        if name in shakes:
            out[name]["handshakes_per_s"] = shakes[name][0] / shakes[name][1]
    return out


def with_client_cpu(fn, *args):
    c0, w0 = time.process_time(), time.perf_counter()
    result = fn(*args)
    share = (time.process_time() - c0) / (time.perf_counter() - w0)
    return result, share


# ---------------------------------------------------------------- smallest heap

def heap_trial(builds, name, build, heap_kb, timeout=2.0):
    """Can the server, in heap_kb KiB, serve 2 clients at once the 4 KiB page and 100 echoes each?"""
    global IO_TIMEOUT
    proto = WSProto() if name != "raw" else RawProto()
    try:
        server = Server(builds, name, build, heapsize="%dK" % heap_kb, listen_timeout=5.0)
    except RuntimeError:
        return False
    saved, IO_TIMEOUT = IO_TIMEOUT, timeout
    conns = []
    try:
        socks = [connect(server.port) for _ in range(2)]
        req = b"GET /page.html HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % HOST.encode()
        for s in socks:
            s.sendall(req)
        for s in socks:
            buf = read_to_eof(s)
            s.close()
            head, _, body = buf.partition(b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n")[0] or len(body) != PAGE_SIZE:
                return False
        conns = [proto.open(server.port) for _ in range(2)]
        wire = proto.wire(MSG32)
        for _ in range(100):
            for c in conns:
                c.sock.sendall(wire)
            for c in conns:
                if proto.recv_one(c) != MSG32:
                    return False
        for c in conns:
            proto.close(c, wait=True)
        conns = []
        return server.alive()
    except (OSError, EOFError, RuntimeError, ValueError):
        return False
    finally:
        IO_TIMEOUT = saved
        for c in conns:
            c.close()
        server.stop()


def smallest_heap(builds, name, build, lo=8, hi=512, step=1):
    """Binary search (KiB) for the smallest passing -X heapsize; None if even `hi` fails."""
    if not heap_trial(builds, name, build, hi):
        return None
    if heap_trial(builds, name, build, lo):
        return lo
    while hi - lo > step:            # invariant: lo fails, hi passes
        mid = (lo + hi) // 2
        if heap_trial(builds, name, build, mid):
            hi = mid
        else:
            lo = mid
    return hi


# ---------------------------------------------------------------- report

METRICS = [
    # key, label, unit/format, higher_is_better
    ("rtt_p50_us", "RTT p50, 32 B text", "µs", False),
    ("rtt_p99_us", "RTT p99, 32 B text", "µs", False),
    ("pipe32_msgs_per_s", "pipelined 32 B, 32 in flight", "msg/s", True),
    ("pipe32_server_us_per_msg", "  server CPU per 32 B message", "µs", False),
    ("pipe1k_msgs_per_s", "pipelined 1 KiB, 32 in flight", "msg/s", True),
    ("pipe1k_server_us_per_msg", "  server CPU per 1 KiB message", "µs", False),
    ("fan4_msgs_per_s", "fan-out 4 clients, total", "msg/s", True),
    ("fan4_min_client", "  fan-out 4, slowest client", "msg/s", True),
    ("fan4_mean_client", "  fan-out 4, mean per client", "msg/s", True),
    ("fan4_delivered_pct", "  fan-out 4, share of pushed msgs delivered (worst client)", "%", True),
    ("fan8_msgs_per_s", "fan-out 8 clients, total", "msg/s", True),
    ("fan8_min_client", "  fan-out 8, slowest client", "msg/s", True),
    ("fan8_mean_client", "  fan-out 8, mean per client", "msg/s", True),
    ("fan8_server_us_per_msg", "  server CPU per fan-out 8 message", "µs", False),
    ("fan8_delivered_pct", "  fan-out 8, share of pushed msgs delivered (worst client)", "%", True),
    ("handshakes_per_s", "handshakes (open+close, sequential)", "/s", True),
    ("motor_p50_us", "drive command → sim motor write, p50", "µs", False),
    ("motor_p99_us", "drive command → sim motor write, p99", "µs", False),
    ("heap_idle", "heap idle (after gc)", "B", False),
    ("heap_1ws", "heap with 1 WebSocket", "B", False),
    ("heap_8ws", "heap with 8 WebSockets", "B", False),
    ("heap_per_ws", "heap per extra WebSocket", "B", False),
    ("minheap_py", "smallest -X heapsize, .py", "KiB", False),
    ("minheap_mpy", "smallest -X heapsize, .mpy", "KiB", False),
]

# metric -> (against, factor, text): Tether/against must be <= factor (lower is better) or >= factor.
# key -> ([(other server or None for Tether itself, other key or None for the
# same key, factor)], label); the direction comes from METRICS.
TARGETS = {
    "rtt_p50_us": ([("raw", None, 1.10)], "≤ 1.10× raw"),
    "pipe32_msgs_per_s": ([("microdot", None, 3.0)], "≥ 3× microdot"),
    "pipe32_server_us_per_msg": ([("raw", None, 10.0)], "≤ 10× raw"),
    "pipe1k_msgs_per_s": ([("microdot", None, 10.0)], "≥ 10× microdot"),
    "pipe1k_server_us_per_msg": ([("raw", None, 4.0), ("websockets", None, 1.0)], "≤ 4× raw, ≤ websockets"),
    "fan8_msgs_per_s": ([("microdot", None, 5.0)], "≥ 5× microdot"),
    "fan8_min_client": ([(None, "fan8_mean_client", 0.5)], "≥ ½ the mean (none starved)"),
    "handshakes_per_s": ([("microdot", None, 2.5)], "≥ 2.5× microdot"),
    "motor_p50_us": ([(None, "rtt_p50_us", 3.0)], "≤ 3× Tether's RTT p50"),
    "motor_p99_us": ([(None, "rtt_p50_us", 10.0)], "≤ 10× Tether's RTT p50"),
    "heap_per_ws": ([(None, "", 2048)], "≤ 2 KB"),
    "minheap_py": ([("microdot", None, 0.5)], "≤ ½ microdot"),
    "minheap_mpy": ([("microdot", None, 0.5)], "≤ ½ microdot"),
}


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    return a / b if a is not None and b else None


def target_met(key, med):
    if key not in TARGETS or med.get("tether", {}).get(key) is None:
        return ""
    t = med["tether"][key]
    higher = next(m[3] for m in METRICS if m[0] == key)
    verdicts = []
    for against, other_key, factor in TARGETS[key][0]:
        if other_key == "":  # an absolute bound
            ok = t >= factor if higher else t <= factor
        else:
            other = med.get(against or "tether", {}).get(other_key or key)
            if not other:
                verdicts.append("?")  # that server or figure is missing from this run
                continue
            r = t / other
            ok = r >= factor if higher else r <= factor
        verdicts.append("yes" if ok else "NO")
    if "NO" in verdicts:
        return "NO"
    return "yes" if verdicts and all(v == "yes" for v in verdicts) else "?"


def build_table(servers, med, client_cpu, notes):
    cols = [LABELS[s] for s in servers]
    ratio_cols = []
    if "tether" in servers and "microdot" in servers:
        ratio_cols.append(("tether", "microdot", "Tether/microdot"))
    if "tether" in servers and "raw" in servers:
        ratio_cols.append(("tether", "raw", "Tether/raw"))
    if "tether" in servers and "websockets" in servers:
        ratio_cols.append(("tether", "websockets", "Tether/websockets"))
    if "tether" not in servers and "microdot" in servers and "raw" in servers:
        ratio_cols.append(("microdot", "raw", "microdot/raw"))
    head = ["metric", "unit"] + cols + [c[2] for c in ratio_cols] + ["target", "met", "client CPU"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, unit, _ in METRICS:
        vals = [med.get(s, {}).get(key) for s in servers]
        if all(v is None for v in vals):
            continue
        row = [label, unit] + [fmt(v) for v in vals]
        for a, b, _ in ratio_cols:
            r = ratio(med.get(a, {}).get(key), med.get(b, {}).get(key))
            row.append("%.2f×" % r if r is not None else "—")
        row.append(TARGETS[key][1] if key in TARGETS else "")
        row.append(target_met(key, med))
        share = client_cpu.get(key)
        row.append("%.0f%%" % (share * 100) if share is not None else "")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines + [""] + notes)


# ---------------------------------------------------------------- main

def run_interleaved(builds, names, cfg, pin_cpu, results, shares):
    """RTT and handshakes of this round: every server started afresh, measured together."""
    servers = {}
    try:
        for name in names:
            try:
                servers[name] = Server(builds, name, pin_cpu=pin_cpu)
            except RuntimeError as exc:
                log("    %s cannot start: %s" % (LABELS[name], exc))
        try:
            got, share = with_client_cpu(measure_interleaved, servers, cfg["rtt_count"], cfg["duration"])
        except Exception as exc:
            log("    interleaved FAILED: %s: %s" % (type(exc).__name__, exc))
            return
        for name, figures in got.items():
            for k, v in figures.items():
                results.setdefault(name, {}).setdefault(k, []).append(v)
                shares.setdefault(k, []).append(share)
            log("    %-10s %s   (client CPU %.0f%%)" % (
                LABELS[name], "  ".join("%s=%s" % (k, fmt(v)) for k, v in figures.items()), share * 100))
    finally:
        for server in servers.values():
            server.stop()


def run_round(builds, name, cfg, pin_cpu, results, shares):
    proto = WSProto() if name != "raw" else RawProto()
    server = Server(builds, name, pin_cpu=pin_cpu)
    figures = {}
    try:
        # RTT and handshakes: run_interleaved, all servers at once.
        steps = [
            ("heap", lambda: measure_heap(proto, server), "heap_"),
            ("pipe32", lambda: measure_pipelined(proto, server, MSG32, cfg["duration"]), "pipe32_"),
            ("pipe1k", lambda: measure_pipelined(proto, server, MSG1K, cfg["duration"]), "pipe1k_"),
            ("fan4", lambda: measure_fanout(proto, server, 4, cfg["duration"]), "fan4_"),
            ("fan8", lambda: measure_fanout(proto, server, 8, cfg["duration"]), "fan8_"),
        ]
        if name == "websockets":  # no heap figures on CPython
            steps = steps[1:]
        if name == "tether":  # the car firmware on the same interpreter, its own process
            steps.append(("motor", lambda: measure_motor(builds.micropython, cfg["motor_count"]), ""))
        for step, fn, prefix in steps:
            try:
                got, share = with_client_cpu(fn)
            except Exception as exc:     # one broken figure must not hide the others
                log("    %-10s FAILED: %s: %s" % (step, type(exc).__name__, exc))
                if not server.alive():
                    log("    server died (status %s), see %s" % (server.proc.returncode, server.log_path))
                    break
                continue
            for k, v in got.items():
                if step.startswith(("pipe", "fan")):
                    k = prefix + k.replace("fanout_", "")
                figures[k] = v
                shares.setdefault(k, []).append(share)
            log("    %-10s %s   (client CPU %.0f%%)" % (
                step, "  ".join("%s=%s" % (k, fmt(v)) for k, v in got.items()), share * 100))
    finally:
        alive = server.alive()
        server.stop()
    if not alive:
        log("    !! %s was not alive at the end of the round" % name)
    for k, v in figures.items():
        results.setdefault(name, {}).setdefault(k, []).append(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--micropython", default=os.path.join(ROOT, ".venv", "bin", "micropython"))
    ap.add_argument("--mpy-cross", default=os.path.join(ROOT, ".venv", "bin", "mpy-cross"))
    ap.add_argument("--board", choices=["esp32", "esp8266"],
                    help="run the MicroPython servers under that board proxy (build/proxy/micropython-BOARD, "
                         "make proxies) instead of --micropython")
    ap.add_argument("--servers", default="tether,microdot,raw,websockets")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rtt-count", type=int, default=20000, help="round trips per round (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="shorter windows, coarser heap search")
    ap.add_argument("--skip-minheap", action="store_true")
    args = ap.parse_args()
    if args.board:
        args.micropython = os.path.join(ROOT, "build", "proxy", "micropython-" + args.board)
        if not os.path.exists(args.micropython):
            ap.error("%s is missing: make proxies" % os.path.relpath(args.micropython, ROOT))

    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in servers:
        if s not in LABELS:
            ap.error("unknown server %r (choose from %s)" % (s, ",".join(LABELS)))
    notes = []
    if "tether" in servers and not os.path.exists(os.path.join(ROOT, "tools", "measure", "echo_server.py")):
        log("tools/measure/echo_server.py does not exist yet: skipping Tether")
        notes.append("Tether skipped: tools/measure/echo_server.py does not exist yet.")
        servers.remove("tether")
    if not servers:
        return 2
    rounds = max(3, args.rounds)
    # RTT: many round trips per round, each round against freshly started
    # servers; a few thousand against one process varied 0.9-1.9x run to run.
    cfg = {"duration": 0.6 if args.quick else 2.0, "rtt_count": 2000 if args.quick else args.rtt_count,
           "heap_step": 4 if args.quick else 1, "motor_count": 300 if args.quick else 2000}
    interpreter = describe_interpreter(args.micropython)

    # Server on one core, this client on the other, when there are two.
    pin_cpu = None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        pin_cpu = cpus[-1]
        os.sched_setaffinity(0, set(cpus[:-1]))
        notes.append("Server pinned to CPU %d, client to CPU(s) %s." % (pin_cpu, ",".join(map(str, cpus[:-1]))))

    os.makedirs(REPORTS, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="tether-bench-")
    builds = Builds(args.micropython, args.mpy_cross, workdir)
    if args.board:
        builds.march = ["-march=x86"]  # the proxies are 32-bit x86 builds
    results, shares = {}, {}
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    try:
        for r in range(rounds):
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            log("round %d/%d: %s" % (r + 1, rounds, " ".join(order)))
            log("  RTT and handshakes, interleaved")
            run_interleaved(builds, order, cfg, pin_cpu, results, shares)
            for name in order:
                log("  %s" % LABELS[name])
                try:
                    run_round(builds, name, cfg, pin_cpu, results, shares)
                except RuntimeError as exc:
                    log("    cannot start: %s" % exc)
        if not args.skip_minheap:
            log("smallest -X heapsize (2 clients: 4 KiB page + 100 echoes each), %d KiB steps"
                % cfg["heap_step"])
            for name in servers:
                if name == "websockets":
                    continue  # CPython: no -X heapsize
                for build in ("py", "mpy"):
                    t0 = time.monotonic()
                    try:
                        kb = smallest_heap(builds, name, build, step=cfg["heap_step"])
                    except subprocess.CalledProcessError as exc:
                        log("  %s %s: mpy-cross failed: %s" % (name, build, exc.stderr.decode(errors="replace")))
                        continue
                    log("  %-8s .%-3s %s KiB  (%.1fs)" % (name, build, kb if kb else "> 512", time.monotonic() - t0))
                    results.setdefault(name, {})["minheap_" + build] = [kb]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    med = {s: {k: median(v) for k, v in figs.items()} for s, figs in results.items()}
    client_cpu = {k: max(v) for k, v in shares.items()}
    notes = ["Medians of %d rounds (order rotated each round); %s windows of %.1f s, %d RTT samples. "
             "Run took %.0f s." % (rounds, "quick:" if args.quick else "", cfg["duration"],
                                   cfg["rtt_count"], time.monotonic() - started),
             "Load average (1 min) before / after: %.2f / %.2f on %d CPUs; other work on the machine "
             "shows up as noise, compare ratios from one run only." % (load_before, os.getloadavg()[0], os.cpu_count()),
             "client CPU = the load client's own CPU time / wall time during the measurement "
             "(highest over servers and rounds); near 100% would mean the client limits the figure."] + notes
    table = build_table(servers, med, client_cpu, notes)
    header = "# Tether benchmark\n\n`%s`, %s, %d CPUs\n\nMicroPython servers on: %s. websockets on CPython %s.\n\n" % (
        " ".join(["tools/measure/bench.py"] + sys.argv[1:]), time.strftime("%Y-%m-%d %H:%M"), os.cpu_count(),
        interpreter, platform.python_version())
    print()
    print(table)
    with open(os.path.join(REPORTS, "bench.md"), "w") as f:
        f.write(header + table + "\n")
    with open(os.path.join(REPORTS, "bench.json"), "w") as f:
        json.dump({"rounds": results, "medians": med, "client_cpu": client_cpu}, f, indent=1)
    log("\nwritten: reports/bench.md, reports/bench.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
