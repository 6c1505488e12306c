# Turns throttle/steer into left/right motor values, and decides what the
# motors actually get each control tick: limits, slew-rate ramp, obstacle guard.
# Pure arithmetic, no hardware, no clock: the caller passes elapsed time.


def mix(throttle, steer):
    """Arcade mix: steer > 0 turns right (left wheel faster). |result| <= 1."""
    left = throttle + steer
    right = throttle - steer
    biggest = max(abs(left), abs(right))
    if biggest > 1:
        left /= biggest
        right /= biggest
    return left, right


def ramp(current, target, step):
    """Move current toward target by at most step."""
    if target > current + step:
        return current + step
    if target < current - step:
        return current - step
    return target


def guard(left, right, blocked):
    """Refuse forward motion when blocked: keep the turning part and any
    reverse, drop the forward part (so turning in place still works)."""
    forward = (left + right) / 2
    if not blocked or forward <= 0:
        return left, right
    turn = (left - right) / 2
    return turn, -turn


class Drive:
    def __init__(self, max_speed=1.0, slew=4.0, stop_distance_cm=20):
        self.max_speed = max_speed
        self.slew = slew  # motor units per second
        self.stop_distance_cm = stop_distance_cm
        self.speed_limit = 1.0  # set by the driver, 0.1..1
        self.blocked = False
        self.stop()  # (left, right) pairs: `target` the command, `output` the motors'

    def command(self, throttle, steer):
        """The target: the mixed command, scaled by the limits."""
        left, right = mix(throttle, steer)
        scale = self.max_speed * self.speed_limit
        self.target = (left * scale, right * scale)

    def set_speed_limit(self, value):
        # Re-scale the current command so a lower limit takes effect now.
        old = self.speed_limit
        self.speed_limit = value
        if old:
            left, right = self.target
            self.target = (left * value / old, right * value / old)

    def stop(self):
        """Emergency stop: target and output zero at once, no ramp."""
        zero = 0.0  # (0.0, 0.0) would be a constant tuple, kept in the heap
        self.target = self.output = (zero, zero)

    def step(self, dt_ms, distance_cm):
        """Advance one control tick: the output, ramped toward the target
        and guarded; returns it, the (left, right) for the motors."""
        self.blocked = (distance_cm is not None and self.stop_distance_cm > 0
                        and distance_cm < self.stop_distance_cm)
        left, right = guard(self.target[0], self.target[1], self.blocked)
        step = self.slew * dt_ms / 1000
        left = ramp(self.output[0], left, step)
        right = ramp(self.output[1], right, step)
        # Guard the output too: forward motion already under way stops at
        # once near an obstacle instead of ramping down into it.
        self.output = guard(left, right, self.blocked)
        return self.output
