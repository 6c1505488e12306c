# A control client that dials out: the fleet link (car.fleet, over MQTT) and
# the uplink (car.uplink, over a WebSocket of the car's own making). Both
# are one more client of the car's control, exactly like a connection to
# its /ws: car.handle() decides, so the driver lock, the deadman, the stop
# rules and the access token are the same. Imported only with one of them.
#
# What such a link adds is delay (a broker, a stalled socket holding
# messages and delivering them in a burst), so a drive command carries
# `at`, the car's own uptime when it was sent (a sender learns the car's
# clock from a `ping`: the pong carries `uptime_ms`); one older than
# limits.deadman_ms is refused as stale, because by then the deadman would
# have stopped the car anyway. One rule, one place (docs/protocol.md).
from time import ticks_ms

from car import protocol
from car.access import DRIVER, equal


class Remote:
    id = 0  # the control client id telemetry's `driver` shows for the link
    over = "the link"  # for the error messages: "a drive over <over> carries ..."

    def __init__(self, car):
        self.car = car
        # Access.authorized(client) reads client.data (DRIVER or None): set
        # per message from the message's own "token" (a WebSocket client of
        # /ws brings it once, in the URL; over a link every command carries it).
        self.request = self
        self.data = None
        self.token = car.access.token if car.access else None
        self.max_age_ms = car.limits["deadman_ms"]
        self.errors = 0  # commands refused (bad JSON, stale, ...), for tests and logs

    def act(self, text, msg):
        """The reply (JSON text) to one client message, or None. text: what
        came (car.handle parses and names its faults); msg: it parsed as
        JSON, or None when it is not."""
        car = self.car
        kind = None
        if type(msg) is dict:
            kind = msg.get("type")
            token = msg.get("token")
            self.data = DRIVER if self.token is not None and type(token) is str and equal(token, self.token) else None
            if kind == "drive":
                stale = self.stale(msg.get("at"))
                if stale:
                    return stale
        reply = car.handle(self, text)
        if reply and kind == "ping" and '"pong"' in reply:
            # The car's clock for the sender's `at` (see above).
            reply = reply[:-1] + ', "uptime_ms": %d}' % car.uptime_ms(ticks_ms())
        elif reply and '"error"' in reply:
            self.errors += 1
        return reply

    def stale(self, at):
        if not protocol.is_number(at):
            return self.refuse("bad_field", 0, (self.over,))
        age = self.car.uptime_ms(ticks_ms()) - at
        if age > self.max_age_ms:
            return self.refuse("stale", 1, (age, self.max_age_ms))
        if age < -self.max_age_ms:
            return self.refuse("stale", 2, (-age,))
        return None

    def refuse(self, code, n, args=()):
        """The error reply with text n of car/refusals.py (formatted with
        args), which is loaded for it and dropped again: a link that
        refuses nothing does not hold the texts."""
        from car import drop, refusals

        drop("refusals")
        self.errors += 1
        field, text = refusals.TEXTS[n]
        return protocol.error(code, field, text % args)
