# Who may drive: one driver at a time. The first client to send a drive
# command while nobody drives becomes the driver; it stays driver until it
# disconnects or stops sending drive commands for deadman_ms.
try:
    from time import ticks_diff
except ImportError:  # CPython, for the pure-logic tests: the one fallback
    from wsserver.connection import ticks_diff


class Control:
    def __init__(self, deadman_ms=500):
        self.deadman_ms = deadman_ms
        self.driver = None  # the driver's connection (anything with .id)
        self.heartbeat_ms = 0

    def claim(self, client):
        """True if client is the driver: it becomes the driver when nobody is."""
        if self.driver is None:
            self.driver = client
        return self.driver is client

    def heartbeat(self, now_ms):
        """The driver sent a drive command at now_ms: the deadman timer
        starts again from there."""
        self.heartbeat_ms = now_ms

    def is_driver(self, client):
        return self.driver is client

    def driver_id(self):
        return None if self.driver is None else self.driver.id

    def release(self, client=None):
        """Release control (only if client is the driver, when given);
        returns the former driver or None."""
        former = self.driver
        if former is None or (client is not None and former is not client):
            return None
        self.driver = None
        return former

    def expired(self, now_ms):
        return self.driver is not None and ticks_diff(now_ms, self.heartbeat_ms) >= self.deadman_ms
