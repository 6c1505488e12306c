# What both implementations share: motor command shaping and actuator state.
# Subclasses provide _write(left, right) and _halt().


def shape(value, min_duty):
    """Clamp a command to -1..1 and lift any nonzero magnitude into
    min_duty..1, because below min_duty a DC motor hums but does not turn.
    |value| under 0.001 counts as zero so float dust never creeps the car."""
    if value != value:  # NaN
        return 0.0
    mag = abs(value)
    if mag < 0.001:
        return 0.0
    if mag > 1:
        mag = 1.0
    mag = min_duty + (1.0 - min_duty) * mag
    return mag if value > 0 else -mag


class Base:
    simulated = False

    # Class-level defaults: an instance only stores what changes, and the
    # config section is not kept (each part copies the values it needs).
    light = False
    horn = False
    pan = 0
    _left = 0.0  # applied(): what the motors were last given
    _right = 0.0

    def __init__(self, cfg):
        self.min_duty = cfg["min_duty"]

    def set_motors(self, left, right):
        """left, right: -1..1 (sign = direction), forward is positive."""
        md = self.min_duty
        self._left = l = shape(left, md)
        self._right = r = shape(right, md)
        self._write(l, r)

    def stop(self):
        self._left = self._right = 0.0
        self._halt()

    def applied(self):
        """(left, right) last written, after deadband, before inversion."""
        return (self._left, self._right)

    def set_light(self, on):
        self.light = bool(on)

    def set_horn(self, on):
        self.horn = bool(on)

    def set_pan(self, deg):
        if deg != deg:
            deg = 0
        self.pan = max(-90, min(90, deg))

    def tick(self, now_ms):
        pass

    def pose(self):
        return None


    def room(self):
        return None

    def rssi(self):
        return None
