#!/usr/bin/env python3
"""Virtual board: a pseudo-terminal that behaves like a MicroPython board's USB
serial port, backed by the Unix port (`micropython -i`) whose filesystem root is
a folder (default build/vboard/). mpremote, tools/board/deploy.py and `make repl`
talk to it exactly as to a real ESP32:

    python tools/board/vboard.py                     # prints: vboard: build/vboard.tty -> /dev/pts/N
    make deploy PORT=build/vboard.tty          # copies the app into build/vboard/
    make repl PORT=build/vboard.tty

What the bridge does beyond relaying bytes (each is a quirk of the Unix port
under a pty, where a board would behave differently):
  - The interpreter's tty has OPOST off (else the kernel turns its \\r\\n into
    \\r\\r\\n and mpremote's prompt checks fail), ECHO off, and ISIG on. The Unix
    port switches the tty to raw (ISIG off) while it waits at a prompt and back
    to ours while code runs, so a Ctrl-C from the host reaches running code as
    SIGINT (KeyboardInterrupt) and reaches the prompt as a plain byte - which is
    what a board's UART interrupt char does.
  - The board's filesystem: at start the interpreter mounts the folder as its
    VFS root (vfs.VfsPosix(folder) at "/"), chdirs there and uses the board's
    sys.path ['', '.frozen', '/lib'], so "/lib/car/app.mpy" means
    build/vboard/lib/car/app.mpy and nothing else on the host is visible.
  - Boot: like a board it runs boot.py, then main.py (only when the REPL is in
    friendly mode - a soft reset from the raw REPL skips main.py - and boot.py
    ended without an exception).
  - Soft reset: Ctrl-D at an empty prompt makes the Unix port exit, and
    SystemExit from boot.py/main.py ends the script; the bridge prints
    "MPY: soft reboot" and starts a fresh interpreter, re-entering the raw REPL
    (and hiding the friendly banner) when the reset came from the raw REPL.
  - Output seen in the friendly REPL gets \\n -> \\r\\n as a board's stdout would;
    raw-REPL traffic is relayed byte for byte (it carries raw-paste flow control).
  - --romfs SIZE gives the board a ROMFS partition of SIZE bytes, kept in the
    host file <root>.romfs (outside the board's filesystem, like flash):
    `vfs.rom_ioctl` as ports/esp8266/vfs_rom_ioctl.c answers it (one segment,
    erase, write in place), so `mpremote romfs deploy` and tools/board/deploy.py
    write it as on a board; at boot a valid image is mounted at /rom and
    "/rom", "/rom/lib" are added to sys.path, as extmod/vfs.c does.
Known difference: the Unix port's VfsPosix lists directories without sizes, so
`mpremote fs ls` shows 0 bytes for every file (the files themselves are right).

Stop it with Ctrl-C or SIGTERM. CPython, Linux/macOS.
"""
import argparse
import errno
import fcntl
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import termios
import time
import tty

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.common import ROOT, stop_all  # noqa: E402
READY = b"\x00VBOARD-READY\x00"      # end of boot.py/main.py; the REPL starts next
RESET = b"\x00VBOARD-RESET\x00"      # SystemExit in boot.py/main.py: soft reset
RAW_BANNER = b"raw REPL; CTRL-B to exit"
FRIENDLY_BANNER = b'Type "help()" for more information.'
SOFT_REBOOT = b"MPY: soft reboot\r\n"
LONE_LF = re.compile(rb"(?<!\r)\n")
STALL_S = 1.0            # host output nobody drains for this long is dropped
MAX_PENDING = 1 << 16    # stop reading the interpreter beyond this much pending output

# Runs inside the interpreter before its REPL (`micropython -i -c STARTUP`).
STARTUP = r"""
import os, sys, vfs
_rom_size = %(romfs_size)d
if _rom_size:
    # The partition: the host file, opened before the board's root replaces
    # the host's; writes go through to it, so they survive a soft reset.
    try:
        _rom_file = open(%(romfs)r, 'r+b')
    except OSError:
        _rom_file = open(%(romfs)r, 'w+b')
        _rom_file.write(b'\xff' * _rom_size)
        _rom_file.flush()
    _rom = bytearray(_rom_size)
    _rom_file.seek(0)
    _rom_file.readinto(_rom)
    def _rom_ioctl(op, *args):
        if op == 1:  # number of segments
            return 1
        if args and args[0] != 0:
            return -19  # ENODEV
        if op == 2:  # the segment
            return memoryview(_rom)
        if op == 3:  # erase the first args[1] bytes; the minimum write size
            _rom[:args[1]] = b'\xff' * args[1]
            return 4
        if op == 4:  # write args[2] at args[1]
            _rom[args[1]:args[1] + len(args[2])] = args[2]
            _rom_file.seek(args[1])
            _rom_file.write(args[2])
            _rom_file.flush()
            return 0
        if op == 5:  # end of writing
            return 0
        return -22  # EINVAL
    class _Vfs:  # the vfs module plus rom_ioctl (a built-in module takes no new names)
        pass
    _vfs = _Vfs()
    for _k in dir(vfs):
        if _k[0] != '_':
            setattr(_vfs, _k, getattr(vfs, _k))
    _vfs.rom_ioctl = _rom_ioctl
    sys.modules['vfs'] = _vfs
vfs.umount('/')
vfs.mount(vfs.VfsPosix(%(root)r), '/')
os.chdir('/')
sys.path[:] = ['', '.frozen', '/lib']
if _rom_size and _rom[:3] == b'\xd2\xcd\x31':
    vfs.mount(vfs.VfsRom(_rom), '/rom')
    sys.path.append('/rom')
    sys.path.append('/rom/lib')
sys.argv[:] = %(argv)r
def _vboard_run(name):
    try:
        os.stat(name)
    except OSError:
        return True
    try:
        with open(name) as f:
            code = compile(f.read(), name, 'exec')
        exec(code, {'__name__': '__main__', '__file__': name})
    except SystemExit:
        return False
    except BaseException as e:
        sys.print_exception(e)
        return None
    return True
# As ports/esp32|esp8266/main.c: main.py runs only if boot.py ended without an
# exception (pyexec returns 0 for one, e.g. a Ctrl-C during boot.py's WiFi join).
_r = _vboard_run('boot.py')
if _r is not False and (_r is None or %(raw)r or _vboard_run('main.py') is not False):
    sys.stdout.write(%(ready)r)
else:
    sys.stdout.write(%(reset)r)
del _vboard_run, _r
"""


def micropython_path():
    env = os.environ.get("MICROPYTHON")
    if env:
        return env
    candidate = os.path.join(os.path.dirname(sys.executable), "micropython")
    return candidate if os.path.exists(candidate) else "micropython"


def _child_tty(fd):
    """Termios the Unix port saves and restores around running code."""
    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(termios.ICRNL | termios.IXON | termios.INLCR | termios.IGNCR)
    attrs[1] &= ~termios.OPOST
    attrs[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN)
    attrs[3] |= termios.ISIG
    attrs[6][termios.VINTR] = 3
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class Interpreter:
    """One `micropython -i` process on its own pty (one boot of the board)."""

    def __init__(self, micropython, root, argv, raw, heapsize=None, romfs_size=0):
        self.master, slave = pty.openpty()
        _child_tty(slave)
        code = STARTUP % {"root": root, "argv": argv, "raw": raw,
                          "ready": READY.decode(), "reset": RESET.decode(),
                          "romfs": root + ".romfs", "romfs_size": romfs_size}
        cmd = [micropython]
        if heapsize:
            cmd += ["-X", "heapsize=%s" % heapsize]
        cmd += ["-i", "-c", code]

        def controlling_tty():  # so the kernel's VINTR -> SIGINT reaches it
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave,
                                     preexec_fn=controlling_tty, close_fds=True, cwd=root)
        os.close(slave)
        fl = fcntl.fcntl(self.master, fcntl.F_GETFL)
        fcntl.fcntl(self.master, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        self.started = time.monotonic()

    def stop(self):
        stop_all([self.proc], 2)
        try:
            os.close(self.master)
        except OSError:
            pass


class Bridge:
    def __init__(self, root, link=None, micropython=None, argv=None, log=None, heapsize=None,
                 romfs_size=0):
        self.root = os.path.abspath(root)
        self.romfs_size = romfs_size
        os.makedirs(self.root, exist_ok=True)
        self.micropython = micropython or micropython_path()
        self.argv = ["main.py"] + list(argv or [])
        self.heapsize = heapsize
        self.log = open(log, "ab", buffering=0) if log else None
        # The host side: a pty whose slave is "the board's serial port". We keep
        # the slave open ourselves so the master never sees a hang-up between clients.
        self.host, self.host_slave = pty.openpty()
        tty.setraw(self.host_slave)
        fl = fcntl.fcntl(self.host, fcntl.F_GETFL)
        fcntl.fcntl(self.host, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        self.port = os.ttyname(self.host_slave)
        self.link = link
        if link:
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(self.port, link)
        self.child = None
        self.raw = False          # is the interpreter's REPL in raw mode?
        self.state = "run"
        self.pending = b""        # output held back while looking for markers
        self.tail = b""           # last bytes seen, to find banners split across reads
        self.last_byte = b""
        self.to_host = b""        # output the host side hasn't taken yet
        self.host_progress = 0.0
        self.stopping = False

    # --- output to the host --------------------------------------------------
    def send_host(self, data):
        if not data:
            return
        if self.log:
            self.log.write(data)
        if not self.raw:  # a board's stdout turns \n into \r\n; the Unix port's print doesn't
            head = b""
            if self.last_byte == b"\r" and data[:1] == b"\n":
                head, data = b"\n", data[1:]
            data = head + LONE_LF.sub(b"\r\n", data)
        self.last_byte = data[-1:]
        if not self.to_host:
            self.host_progress = time.monotonic()
        self.to_host += data
        self.flush_host()

    def flush_host(self):
        """Write what the host side takes now. While output is pending the
        interpreter isn't read, so a slow reader (mpremote reads byte by byte)
        slows the board down instead of losing bytes; but when nobody has drained
        anything for STALL_S (no client attached) the output is dropped, as a UART
        with nobody listening would, so the app never blocks on its prints."""
        while self.to_host:
            try:
                n = os.write(self.host, self.to_host[:4096])
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                n = len(self.to_host)
            self.to_host = self.to_host[n:]
            self.host_progress = time.monotonic()
        if self.to_host and time.monotonic() - self.host_progress > STALL_S:
            self.to_host = b""
            termios.tcflush(self.host_slave, termios.TCIFLUSH)  # stale output for nobody

    def track_mode(self, data):
        seen = self.tail + data
        raw_at, friendly_at = seen.rfind(RAW_BANNER), seen.rfind(FRIENDLY_BANNER)
        if raw_at > friendly_at:
            self.raw = True
        elif friendly_at > raw_at:
            self.raw = False
        self.tail = seen[-64:]

    # --- interpreter lifecycle -----------------------------------------------
    def boot(self, raw):
        self.child = Interpreter(self.micropython, self.root, self.argv, raw, self.heapsize,
                                 self.romfs_size)
        self.raw = raw
        self.restart_raw = raw
        self.state = "booting"
        self.pending = b""

    def soft_reset(self, backoff=False):
        raw = self.raw
        if backoff and time.monotonic() - self.child.started < 1.0:
            time.sleep(0.5)  # a main.py that exits at once would otherwise spin the CPU
        self.child.stop()
        self.send_host(SOFT_REBOOT)
        self.boot(raw)

    def from_child(self, data):
        self.track_mode(data)
        if self.state == "run":
            self.send_host(data)
            return
        self.pending += data
        if self.state == "booting":
            for marker in (READY, RESET):
                at = self.pending.find(marker)
                if at >= 0:
                    self.send_host(self.pending[:at])
                    rest = self.pending[at + len(marker):]
                    self.pending = b""
                    if marker == RESET:
                        self.soft_reset(backoff=True)
                        return
                    if self.restart_raw:
                        self.state = "await-prompt"
                        self.from_child(rest)
                    else:
                        self.state = "run"
                        self.raw = False
                        self.send_host(rest)
                    return
            # Hold back only what could be the start of a marker split across reads.
            at = self.pending.rfind(b"\x00", max(0, len(self.pending) - len(READY) + 1))
            if at >= 0 and (READY.startswith(self.pending[at:]) or RESET.startswith(self.pending[at:])):
                self.send_host(self.pending[:at])
                self.pending = self.pending[at:]
            else:
                self.send_host(self.pending)
                self.pending = b""
        elif self.state == "await-prompt":
            # A board reset from the raw REPL comes back in the raw REPL: hide
            # the friendly banner and ask the fresh interpreter for raw mode.
            at = self.pending.find(b">>> ")
            if at >= 0:
                rest = self.pending[at + 4:]
                self.pending = b""
                self.state = "run"
                os.write(self.child.master, b"\x01")
                self.send_host(rest)

    def serve(self):
        self.boot(raw=False)
        to_child = b""  # host input the interpreter hasn't taken yet (never block on it)
        while not self.stopping:
            master = self.child.master
            readers = [self.host] + ([master] if len(self.to_host) < MAX_PENDING else [])
            writers = ([master] if to_child else []) + ([self.host] if self.to_host else [])
            try:
                ready, writable, _ = select.select(readers, writers, [], 0.1 if self.to_host else 0.5)
            except InterruptedError:
                continue
            if self.to_host:
                self.flush_host()
            if master in ready:
                try:
                    data = os.read(master, 4096)
                except BlockingIOError:
                    data = None
                except OSError:  # EIO: the interpreter's side of the pty is closed
                    data = b""
                if data:
                    self.from_child(data)
                elif data is not None:  # the interpreter exited: Ctrl-D at an empty prompt = soft reset
                    self.child.proc.wait()
                    self.soft_reset(backoff=self.child.proc.returncode != 0)
                    continue
            if self.host in ready:
                try:
                    to_child += os.read(self.host, 4096)
                except OSError:
                    pass
            if to_child and (master in writable or self.host in ready):
                try:
                    to_child = to_child[os.write(master, to_child):]
                except BlockingIOError:
                    pass
                except OSError:  # exiting; the next boot gets it
                    pass
            if master in readers and not ready and self.child.proc.poll() is not None:  # no hang-up seen
                self.soft_reset(backoff=True)

    def close(self):
        self.stopping = True
        if self.child:
            self.child.stop()
        if self.link and os.path.islink(self.link) and os.readlink(self.link) == self.port:
            os.unlink(self.link)
        for fd in (self.host, self.host_slave):
            try:
                os.close(fd)
            except OSError:
                pass


def main(argv=None):
    ap = argparse.ArgumentParser(description="A MicroPython board on a pseudo-terminal (Unix port).")
    ap.add_argument("--root", default=os.path.join(ROOT, "build", "vboard"),
                    help="folder that is the board's filesystem (default build/vboard)")
    ap.add_argument("--link", default=os.path.join(ROOT, "build", "vboard.tty"),
                    help="symlink to create for the pty (default build/vboard.tty); '' for none")
    ap.add_argument("--main-args", default="", help="sys.argv for main.py, e.g. '--port 8080'")
    ap.add_argument("--heapsize", help="-X heapsize for the interpreter, e.g. 100K (board-like)")
    ap.add_argument("--micropython", help="Unix port binary (default: next to this Python)")
    ap.add_argument("--log", help="append everything the board prints to this file")
    ap.add_argument("--romfs", type=int, default=0, metavar="BYTES",
                    help="give the board a ROMFS partition this big (kept in <root>.romfs)")
    args = ap.parse_args(argv)

    bridge = Bridge(args.root, link=args.link or None, micropython=args.micropython,
                    argv=shlex.split(args.main_args), log=args.log, heapsize=args.heapsize,
                    romfs_size=args.romfs)

    def stop(signum, frame):
        bridge.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    where = os.path.relpath(args.link) if args.link else bridge.port
    print("vboard: %s -> %s (filesystem %s)" % (where, bridge.port, os.path.relpath(bridge.root)), flush=True)
    print("vboard: try  make deploy PORT=%s   or   make repl PORT=%s" % (where, where), flush=True)
    try:
        bridge.serve()
    finally:
        bridge.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
