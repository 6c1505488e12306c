"""Wait for a condition instead of sleeping for a guess."""
import time


def wait_until(condition, timeout=5.0, interval=0.02, what="the condition"):
    """Call condition() until it returns something true; return that value.
    AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("%s did not happen within %.1f s" % (what, timeout))
        time.sleep(interval)


def wait_steady(read, reads=3, timeout=10.0, interval=0.05, what="the reading"):
    """Poll read() until it returns the same true value `reads` times in a row
    (a buffer that stopped growing); returns that value."""
    deadline = time.monotonic() + timeout
    last, same = None, 0
    while time.monotonic() < deadline:
        now = read()
        same = same + 1 if now and now == last else 0
        if same >= reads - 1 and now:
            return now
        last = now
        time.sleep(interval)
    raise AssertionError("%s never settled within %.1f s (last %r)" % (what, timeout, last))
