"""Process plumbing every helper shares: a free loopback port, waiting for a
listener, stopping a child (terminate, wait, then kill), and the factory
fixtures' stop-what-was-made (stopped_after)."""
import socket
import subprocess
import time


def stopped_after(make):
    """The body of a factory fixture (`yield from stopped_after(Car)`): the test
    gets make's twin, and every thing it made is stopped (.stop()) afterwards."""
    made = []

    def build(*args, **kw):
        thing = make(*args, **kw)
        made.append(thing)
        return thing
    yield build
    for thing in made:
        thing.stop()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port, timeout=0.2):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_listening(port, proc, timeout=10.0, what="process"):
    """Poll until something accepts on 127.0.0.1:port; RuntimeError (with the
    child's output where it has one) if `proc` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if getattr(proc, "stdout", None) else ""
            if isinstance(out, bytes):
                out = out.decode("utf-8", "replace")
            if not out and getattr(proc, "stderr", None):
                out = proc.stderr.read()
                out = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
            raise RuntimeError("%s exited (%s) before listening:\n%s" % (what, proc.returncode, out))
        if listening(port):
            return
        time.sleep(0.02)
    raise RuntimeError("nothing listening on port %d after %.0fs" % (port, timeout))


def stop(proc, grace=3.0):
    """Terminate `proc` (a Popen), give it `grace` seconds, then kill it; returns
    its exit code. Nothing happens to a process that already ended."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def kill(proc, wait=None):
    """SIGKILL (a power cut, a crash), then reap it."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(wait)
