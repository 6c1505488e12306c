# Car configuration: config.json merged over safe defaults, every key checked.
# A bad value never stops the car from booting: it is reported by its dotted
# name ("limits.deadman_ms: must be an int between 50 and 5000") and replaced
# by the default, so the car comes up with motors off and a working page.
import json
import sys

import hardware
from car import DEFAULT_AP_PASSWORD

DEFAULTS = {
    "wifi": {
        "networks": [],  # station networks tried in order: [{"ssid", "password"}]
        "ap": {"ssid": "tether-car", "password": DEFAULT_AP_PASSWORD, "open": False},
        "hostname": "tether-car",
        "timeout_s": 10,  # per station network
    },
    "hardware": hardware.DEFAULTS,
    "limits": {
        "max_speed": 1.0,  # scales every motor command, 0..1
        "deadman_ms": 500,  # no drive command for this long -> stop
        "telemetry_hz": 20,
        "stop_distance_cm": 20,  # forward refused closer than this; 0 = off
        "slew": 4.0,  # max change of a motor value per second (4 -> 0..1 in 250 ms)
        "watchdog_ms": 8000,  # board resets if the control loop stalls; 0 = off
    },
    # tls: null, or {"cert", "key", "max_clients"} to serve HTTPS/WSS (docs/security.md)
    "server": {"port": 80, "max_clients": 4, "tls": None},
    # docs/reliability.md: who may connect (origins) and drive (token).
    "access": {"token": None, "viewers_need_token": False, "allow_no_origin": True, "origins": []},
    # null: no fleet link (car.fleet is then never imported). Checked by car.fleet_config.
    "fleet": None,
    # null: no uplink (car.uplink is then never imported). Checked by _uplink().
    "uplink": None,
}


_MISSING = object()


def copy(value):
    if type(value) is dict:
        return {k: copy(v) for k, v in value.items()}
    if type(value) is list:
        return [copy(v) for v in value]
    return value


def get(tree, dotted, default=_MISSING):
    for part in dotted.split("."):
        if type(tree) is not dict or part not in tree:
            return default
        tree = tree[part]
    return tree


def put(tree, dotted, value):
    parts = dotted.split(".")
    for part in parts[:-1]:
        tree = tree[part]
    tree[parts[-1]] = value


def check(kind, v, lo, hi, open_ap=False):
    """None when v is acceptable, else what it must be."""
    if kind == "i":
        if type(v) is int and lo <= v <= hi:
            return None
        return "must be an int between %d and %d" % (lo, hi)
    if kind == "f":
        if hardware.is_number(v) and lo <= v <= hi:
            return None
        return "must be a number between %s and %s" % (lo, hi)
    if kind == "b":
        return None if type(v) is bool else "must be true or false"
    if kind == "t":
        if v is None or (type(v) is str and lo <= len(v) <= hi
                         and all(c.isalpha() or c.isdigit() or c in "-._~" for c in v)):
            return None  # a token travels in a URL query: only characters that need no escaping
        return ("must be null or %d to %d characters: letters, digits, - . _ ~"
                " (it goes in a URL)" % (lo, hi))
    if kind == "p" and open_ap:
        return None if type(v) is str else "must be a string"
    if type(v) is not str or not lo <= len(v) <= hi:
        if kind == "p":
            return ("must be %d to %d characters (WPA2); an open access point "
                    "needs wifi.ap.open set to true" % (lo, hi))
        return "must be a string of %d to %d characters" % (lo, hi)
    if kind == "h":
        for c in v:
            if not (c.isalpha() or c.isdigit() or c == "-"):
                return "must contain only letters, digits and '-'"
    return None


def _networks(value, errors):
    if type(value) is not list:
        errors.append("wifi.networks: must be a list of {\"ssid\", \"password\"}")
        return []
    good = []
    for i, net in enumerate(value):
        name = "wifi.networks[%d]" % i
        if type(net) is not dict:
            errors.append(name + ": must be an object with ssid and password")
            continue
        ssid, password = net.get("ssid"), net.get("password", "")
        why = check("s", ssid, 1, 32)
        if why:
            errors.append(name + ".ssid: " + why)
        elif type(password) is not str or len(password) > 63:
            errors.append(name + ".password: must be a string of at most 63 characters")
        else:
            good.append({"ssid": ssid, "password": password})
    return good


def _origins(value, errors):
    # Extra page origins allowed to open the WebSocket, as browsers send
    # them: "http://name:port" (no path, default port omitted), or "*".
    if type(value) is not list:
        errors.append('access.origins: must be a list like ["http://192.168.1.20:8080"]')
        return []
    good = []
    for i, origin in enumerate(value):
        sep = origin.find("://") if type(origin) is str else -1  # no str.partition on the ESP8266
        scheme, rest = (origin[:sep], origin[sep + 3:]) if sep > 0 else ("", "")
        if origin == "*" or (scheme in ("http", "https") and rest and "/" not in rest
                             and len(origin) <= 100):
            good.append(origin.lower())
        else:
            errors.append("access.origins[%d]: must be \"*\" or an origin like "
                          "\"http://name:port\" (no path)" % i)
    return good


def _unknown(user, defaults, prefix, errors):
    # A misspelt key would otherwise be silently ignored.
    for key, value in user.items():
        name = prefix + key
        if key not in defaults:
            errors.append(name + ": unknown key (ignored)")
        elif (key == "fleet" or key == "uplink") and not prefix:
            pass  # checked by car.fleet_config, _uplink()
        elif type(defaults[key]) is dict:
            if type(value) is not dict:
                errors.append(name + ": must be an object")
            elif key != "hardware":
                _unknown(value, defaults[key], name + ".", errors)


def _hardware(user, errors):
    # The hardware layer checks its own section (keys come back dotted,
    # "hardware.pins.left_in1"). A part with a bad pin is left out (null):
    # never a default pin the owner may not have wired, and never a crash
    # that resets the board in a loop; bad motor pins leave the car without
    # motors (pins: null), its page still up. Any other bad key falls back to
    # its default as a whole; if that still does not validate, the whole
    # section does.
    section = copy(user) if type(user) is dict else {}
    found = hardware.validate(section)
    for key, message in found:
        parts = key.split(".")
        top = parts[1] if len(parts) > 1 else ""
        if top == "pins" or top == "light" or top == "buzzer" or top == "servo" or (
                len(parts) > 2 and (parts[2] == "trig" or parts[2] == "echo" or parts[2] == "pin")):
            if top == "pins":
                errors.append("%s: %s; motors off" % (key, message))
            else:
                errors.append("%s: %s; %s off" % (key, message, top))
            section[top] = None
            continue
        errors.append("%s: %s" % (key, message))
        if top in section:
            del section[top]  # merged() fills in the chip's default
    if found and hardware.validate(section):
        errors.append("hardware: still invalid, using the default hardware section")
        section = {}
    return hardware.merged(section)


def validate(user):
    """(config, errors) from a parsed JSON object; config is always usable."""
    errors = []
    cfg = copy(DEFAULTS)
    if type(user) is not dict:
        errors.append("config: must be a JSON object")
        cfg["hardware"] = hardware.merged(None)  # the chip's own pins, not the ESP32's table
        return cfg, errors
    _unknown(user, DEFAULTS, "", errors)
    if user.get("fleet") is not None or user.get("uplink") is not None:
        # A link car takes the qstr pool's next chunk during its boot (its
        # names pass the 620 the first five hold: 4.6 KB in one block,
        # docs/memory.md). Collected often from here on (car.app.run sets
        # the running car's threshold), the check's garbage does not spread
        # its survivors over the whole heap, and a block that size is left.
        import gc

        if hasattr(gc, "threshold"):  # MicroPython's: CPython (tools/board/stage.py's check) has none
            gc.threshold(4096)
    # A local, not a module constant: a module-level name is interned for good.
    # dotted key, kind, low, high. Kinds: i int, f number, b bool, s string
    # (length low..high), h hostname, p AP password, t token (null or string).
    rules = (
        ("wifi.ap.ssid", "s", 1, 32),
        ("wifi.ap.open", "b", 0, 0),
        ("wifi.ap.password", "p", 8, 63),
        ("wifi.hostname", "h", 1, 32),
        ("wifi.timeout_s", "i", 1, 60),
        ("limits.max_speed", "f", 0, 1),
        ("limits.deadman_ms", "i", 50, 5000),
        ("limits.telemetry_hz", "i", 1, 50),
        ("limits.stop_distance_cm", "f", 0, 400),
        ("limits.slew", "f", 0.1, 100),
        ("limits.watchdog_ms", "i", 0, 60000),
        ("server.port", "i", 1, 65535),
        ("server.max_clients", "i", 1, 8),
        ("access.token", "t", 8, 64),
        ("access.viewers_need_token", "b", 0, 0),
        ("access.allow_no_origin", "b", 0, 0),
    )
    open_ap = get(user, "wifi.ap.open") is True  # open only when explicitly true
    for key, kind, lo, hi in rules:
        value = get(user, key)
        if value is _MISSING:
            continue
        why = check(kind, value, lo, hi, open_ap)
        if why:
            errors.append("%s: %s" % (key, why))
        else:
            put(cfg, key, float(value) if kind == "f" else value)
    networks = get(user, "wifi.networks")
    if networks is not _MISSING:
        cfg["wifi"]["networks"] = _networks(networks, errors)
    origins = get(user, "access.origins")
    if origins is not _MISSING:
        cfg["access"]["origins"] = _origins(origins, errors)
    if cfg["access"]["viewers_need_token"] and cfg["access"]["token"] is None:
        errors.append("access.viewers_need_token: has no effect without access.token")
    cfg["hardware"] = _hardware(user.get("hardware"), errors)
    if user.get("fleet") is not None:
        # In a module of its own: a plain car's boot never loads (or interns) it.
        from car import fleet_config

        try:
            cfg["fleet"] = fleet_config.check(user["fleet"], cfg, errors)
        finally:
            sys.modules.pop("car.fleet_config", None)
            sys.modules["car"].__dict__.pop("fleet_config", None)  # the import set car.fleet_config
    server = user.get("server")
    if cfg["fleet"] or type(server) is dict and server.get("tls") is not None:
        # server.tls and fleet.ca are checked by car/tls.py, loaded only for a
        # car with TLS or a fleet link (and no new names here: each name a
        # module compiled at boot interns stays in the qstr pool, and one
        # more pool chunk cost a 160K heap its boot).
        from car import tls
        tls.validate(user, cfg, errors)
    if user.get("uplink") is not None:
        cfg["uplink"] = _uplink(user["uplink"], cfg, errors)
    return cfg, errors


def _uplink(user, cfg, errors):
    # In its own module, imported only for a config with an uplink and
    # dropped after start-up with this one (car.load_config).
    from car.uplink_config import settings

    return settings(user, cfg["limits"]["telemetry_hz"], errors)


def load(path="config.json"):
    """(config, errors) from a file; an unreadable file gives the defaults,
    one that is not valid JSON keeps the sections that parse."""
    try:
        with open(path) as f:
            user = json.load(f)
    except OSError:
        return validate({})[0], [path + ": cannot be read, using defaults"]  # the chip's defaults
    except ValueError:
        user = None
    else:
        return validate(user)
    # Only for a broken file: its own module, so a good config costs nothing.
    from car.salvage import salvage

    with open(path) as f:
        text = f.read()
    errors = []
    user = salvage(text, path, errors)
    errors.insert(0, path + ": not valid JSON, " + (
        "kept the sections that parse: " + ", ".join(user) if user else "using defaults"))
    if "wifi" not in user:
        errors.append("wifi: not read from %s: the access point uses the DEFAULT password %r, which "
                      "anyone nearby can look up; fix %s" % (path, DEFAULT_AP_PASSWORD, path))
    cfg, more = validate(user)
    return cfg, errors + more
