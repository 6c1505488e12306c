# The simulated twin: a differential-drive car in a walled rectangular room.
#
# Frame: the room spans x 0..width, y 0..height (metres), y up. Heading is in
# radians, counter-clockwise positive (0 = +x, pi/2 = +y), kept in -pi..pi.
# The car starts in the middle facing +x. Left wheel faster than the right
# = right turn = heading DEcreases.
#
# Time only moves in tick(now_ms), in fixed 20 ms steps (the remainder is
# carried), so a given seed + command timeline always gives the same
# trajectory, on MicroPython and CPython alike.
from math import cos, sin, sqrt, log, pi  # no log10 on the ESP8266

from hardware.base import Base

try:
    from micropython import const
    from time import ticks_diff
except ImportError:  # CPython: the one ticks fallback (no name or module added on a board)
    from wsserver.connection import ticks_diff

    def const(x):
        return x

_STEP_MS = const(20)
_MAX_CATCHUP_MS = const(5000)  # after a long stall, simulate at most 5 s
RADIUS = 0.1  # the car is a 0.2 m circle as far as walls are concerned
NOSE = 0.1  # the ultrasonic sensor sits on the front edge
_MIN_CM = const(2)  # HC-SR04 blind zone
_MAX_CM = const(400)  # HC-SR04 rated range: beyond it, no reading
# Battery: 2S Li-ion, 2000 mAh. Volts = resting - sag, where resting falls with
# charge used and sag follows load current through the internal resistance.
FULL_V = 8.2
EMPTY_V = 6.4
V_PER_AS = 1.7e-4  # ~1.2 V over 2 Ah (7200 A*s), treated as linear
R_INT = 0.3  # ohm
IDLE_A = 0.15  # ESP + sensors
MOTOR_A = 1.0  # per motor at full duty
SAG_TAU = 0.3  # s, how fast the sag follows the load


def _lcg(state):
    # ZX81 generator: products stay in MicroPython's small-int range, so no
    # bignum allocations, and the sequence is the same on every port.
    return (75 * state + 74) % 65537


def _approach(v, target, dv):
    if v < target:
        return target if v + dv > target else v + dv
    return target if v - dv < target else v - dv


class SimHardware(Base):
    simulated = True

    def __init__(self, cfg):
        Base.__init__(self, cfg)
        s = cfg["sim"]
        self.width = w = float(s["width"])
        self.height = h = float(s["height"])
        self.max_speed = float(s["max_speed"])
        self.accel = float(s["accel"])
        self.wheel_base = float(s["wheel_base"])
        self.noise_cm = float(s["noise_cm"])
        self._room = {"width": w, "height": h}
        self.x = w / 2
        self.y = h / 2
        self.heading = 0.0
        self.v_left = self.v_right = 0.0  # wheel ground speeds, m/s
        self.contact = False  # touching a wall after the last step
        self._last_ms = None  # the previous tick's now_ms
        self._carry = 0  # ms not yet simulated (less than one step)
        self._drawn_as = 0.0  # charge drawn, in ampere-seconds
        self._sag = 0.0  # volts the load takes off the resting voltage
        # The noise generators' states: one stream each, so reading the RSSI
        # does not change the distance noise.
        seed = s["seed"] % 65537
        self._distance_noise = seed
        self._rssi_noise = (seed * 7 + 3) % 65537

    def _write(self, left, right):
        pass  # the physics reads self._left/_right in _step

    def _halt(self):
        pass

    def tick(self, now_ms):
        if self._last_ms is None:
            self._last_ms = now_ms
            return
        dt = ticks_diff(now_ms, self._last_ms)
        self._last_ms = now_ms
        if dt <= 0:
            return
        dt += self._carry
        if dt > _MAX_CATCHUP_MS:
            dt = _MAX_CATCHUP_MS
        while dt >= _STEP_MS:
            self._step(_STEP_MS / 1000)
            dt -= _STEP_MS
        self._carry = dt

    def _step(self, dt):
        left, right = self._left, self._right
        vmax = self.max_speed
        dv = self.accel * dt
        vl = self.v_left = _approach(self.v_left, left * vmax, dv)
        vr = self.v_right = _approach(self.v_right, right * vmax, dv)
        v = (vl + vr) / 2
        turn = (vr - vl) / self.wheel_base  # rad/s, CCW positive
        mid = self.heading + turn * dt / 2
        x = self.x + v * cos(mid) * dt
        y = self.y + v * sin(mid) * dt
        h = self.heading + turn * dt
        if h > pi:
            h -= 2 * pi
        elif h <= -pi:
            h += 2 * pi
        self.heading = h
        # Walls: the car cannot pass; on contact the wheels stall.
        hit = False
        if x < RADIUS:
            x, hit = RADIUS, True
        elif x > self.width - RADIUS:
            x, hit = self.width - RADIUS, True
        if y < RADIUS:
            y, hit = RADIUS, True
        elif y > self.height - RADIUS:
            y, hit = self.height - RADIUS, True
        if hit:
            self.v_left = self.v_right = 0.0
        self.contact = hit
        self.x, self.y = x, y
        # Battery: a stalled motor still draws current, as it would for real.
        amps = IDLE_A + MOTOR_A * (abs(left) + abs(right))
        self._drawn_as += amps * dt
        k = dt / SAG_TAU
        self._sag += (amps * R_INT - self._sag) * (k if k < 1 else 1)

    def distance_cm(self):
        """Ray from the nose along the heading to the wall ahead, in cm."""
        c = cos(self.heading)
        s = sin(self.heading)
        nx = self.x + NOSE * c
        ny = self.y + NOSE * s
        t = 1e9
        if c > 1e-9:
            t = (self.width - nx) / c
        elif c < -1e-9:
            t = -nx / c
        if s > 1e-9:
            t = min(t, (self.height - ny) / s)
        elif s < -1e-9:
            t = min(t, -ny / s)
        self._distance_noise = r = _lcg(self._distance_noise)
        cm = t * 100 + (r / 32768 - 1) * self.noise_cm
        if cm > _MAX_CM:
            return None
        return cm if cm > _MIN_CM else float(_MIN_CM)

    def battery_v(self):
        rest = FULL_V - self._drawn_as * V_PER_AS
        if rest < EMPTY_V:
            rest = EMPTY_V
        return rest - self._sag

    def rssi(self):
        # A pretend access point in the room's corner at (0, 0).
        d = sqrt(self.x * self.x + self.y * self.y)
        self._rssi_noise = r = _lcg(self._rssi_noise)
        return int(-40 - 8.685889638 * log(1 + d) + (r / 32768 - 1) * 2)  # 20 log10(1 + d) dB

    def pose(self):
        return (self.x, self.y, self.heading)

    def room(self):
        return self._room

