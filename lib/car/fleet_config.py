# The fleet section of config.json, checked (docs/protocol.md): loaded by
# car.config only when config.json has a fleet section, and dropped with it,
# so a plain car's boot neither loads these names nor keeps them interned.
from car.config import check as check_value, copy

FLEET_DEFAULTS = {"url": None, "id": None, "username": None, "password": None,
                  "telemetry_hz": 2, "keepalive_s": 15}


def check(user, cfg, errors):
    """The fleet link's settings (docs/protocol.md), or None (link off) when
    fleet.url is missing or bad; other bad keys fall back to their defaults."""
    if type(user) is not dict:
        errors.append("fleet: must be an object with a url (fleet link off)")
        return None
    fleet = copy(FLEET_DEFAULTS)
    fleet["id"] = cfg["wifi"]["hostname"]
    local_hz = cfg["limits"]["telemetry_hz"]
    fleet["telemetry_hz"] = min(2, local_hz)
    for key in user:
        if key not in FLEET_DEFAULTS:
            errors.append("fleet.%s: unknown key (ignored)" % key)
    url = user.get("url")
    why = None
    try:
        from mqtt.dial import split_url  # not the codec (docs/fleet.md, Memory)

        split_url(url)
    except ValueError as e:
        why = str(e)
    finally:
        import sys

        sys.modules.pop("mqtt.dial", None)
        sys.modules["mqtt"].__dict__.pop("dial", None)  # the import set mqtt.dial
    if why:
        errors.append("fleet.url: %s; mqtt://host[:port], mqtts://, ws://host:port/path or wss:// "
                      "(fleet link off)" % why)
        return None
    fleet["url"] = url
    for key, kind, lo, hi in [("id", "h", 1, 32), ("username", "s", 1, 64), ("password", "s", 1, 64),
                              ("telemetry_hz", "i", 1, local_hz), ("keepalive_s", "i", 2, 600)]:
        if key in user:
            value = user[key]
            why = None if value is None and (key == "username" or key == "password") else \
                check_value(kind, value, lo, hi)
            if why:
                extra = " (at most limits.telemetry_hz)" if key == "telemetry_hz" else ""
                errors.append("fleet.%s: %s%s" % (key, why, extra))
            else:
                fleet[key] = value
    if fleet["password"] is not None and fleet["username"] is None:
        errors.append("fleet.password: needs fleet.username (MQTT sends no password alone); ignored")
        fleet["password"] = None
    return fleet
