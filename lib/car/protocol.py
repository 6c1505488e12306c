# The car's JSON messages (docs/protocol.md): parse and check what clients
# send, build what the car sends. Checking is strict because a bad value must
# never reach a motor: every rejected message gets an error naming the field.
import json

from hardware import is_number

MAX_TEXT = 512  # longer messages are refused before parsing (heap)
TYPES = "drive, stop, resume, actuator, speed_limit, ping"


def _bad(code, field, message):
    # Built when needed: a constant (code, field, message) tuple would be an
    # object kept in the heap for as long as the module is loaded.
    return None, (code, field, message)


def _number(msg, field, lo, hi):
    """The value of a numeric field, or an error tuple naming it."""
    if field not in msg:
        return ("bad_field", field, "%s: missing; must be a number from %s to %s" % (field, lo, hi))
    v = msg[field]
    if not is_number(v) or not lo <= v <= hi:
        return ("bad_field", field, "%s: must be a number from %s to %s" % (field, lo, hi))
    return v


def _load(text):
    try:
        return json.loads(text)
    except ValueError:
        pass
    # MicroPython's json refuses NaN/Infinity outright. Re-read them as an
    # infinite number so the error can name the field that carried them.
    if "NaN" in text or "Infinity" in text:
        try:
            return json.loads(text.replace("NaN", "1e999").replace("Infinity", "1e999"))
        except ValueError:
            pass
    raise ValueError


def parse(text):
    """(message dict, None) or (None, (code, field, message))."""
    if type(text) is not str:
        return _bad("bad_json", None, "messages must be JSON text frames, not binary")
    if len(text) > MAX_TEXT:
        return _bad("too_large", None, "message longer than %d characters" % MAX_TEXT)
    try:
        msg = _load(text)
    except ValueError:
        return _bad("bad_json", None, "not valid JSON")
    if type(msg) is not dict:
        return _bad("bad_json", None, "message must be a JSON object")
    kind = msg.get("type")
    if kind is None:
        return _bad("bad_field", "type", "type: missing; must be one of " + TYPES)
    if kind == "drive":
        v = _number(msg, "throttle", -1, 1)
        if type(v) is not tuple:
            v = _number(msg, "steer", -1, 1)
        if type(v) is tuple:
            return None, v
    elif kind == "actuator":
        name = msg.get("name")
        if name != "light" and name != "horn" and name != "pan":
            return _bad("bad_field", "name", "name: must be one of light, horn, pan")
        if name == "pan":
            v = _number(msg, "value", -90, 90)
            if type(v) is tuple:
                return None, v
        elif type(msg.get("value")) is not bool:
            return _bad("bad_field", "value", "value: must be true or false for " + name)
    elif kind == "speed_limit":
        v = _number(msg, "value", 0.1, 1)
        if type(v) is tuple:
            return None, v
    elif kind == "ping":
        ident = msg.get("id")
        if not (ident is None or type(ident) in (str, bool) or is_number(ident)):
            return _bad("bad_field", "id", "id: must be a string, a number or null")
    elif kind == "stop":
        if type(msg.get("latch", True)) is not bool:
            return _bad("bad_field", "latch", "latch: must be true or false (default true)")
    elif kind != "resume":
        return _bad("unknown_type", "type", "type: unknown; must be one of " + TYPES)
    return msg, None


def error(code, field, message):
    return json.dumps({"type": "error", "code": code, "field": field, "message": message})


def role(name):
    return '{"type":"role","role":"%s"}' % name


def pong(ident):
    return json.dumps({"type": "pong", "id": ident})


def hello(firmware, device, client_id, role_name, limits, simulated, room, errors):
    return json.dumps({
        "type": "hello", "firmware": firmware, "device": device, "id": client_id,
        "role": role_name, "limits": limits, "simulated": simulated, "room": room,
        "config_errors": errors})


def _opt(fmt, v):
    return "null" if v is None else fmt % v


def _bool(v):
    return "true" if v else "false"


def telemetry(*, seq, uptime_ms, motor, applied, distance_cm, battery_v, rssi,
              heap_free, heap_alloc, driver, stopped_by, speed_limit, light, horn, pose):
    # Keyword-only: fifteen values, several of the same type, that a
    # positional call could swap without an error. Keywords cost the board
    # nothing extra: no dict is made for them, and the names are the
    # parameters' own. Formatted by hand: one string, no intermediate dict;
    # 3 decimals are plenty for a -1..1 motor value and keep the frame short.
    return (
        '{"type":"telemetry","seq":%d,"uptime_ms":%d,'
        '"motor":{"left":%.3f,"right":%.3f},"applied":{"left":%.3f,"right":%.3f},'
        '"distance_cm":%s,"battery_v":%s,"rssi":%s,"heap_free":%d,"heap_alloc":%d,'
        '"driver":%s,"stopped_by":%s,"speed_limit":%.2f,"light":%s,"horn":%s,"pose":%s}' % (
            seq, uptime_ms, motor[0], motor[1], applied[0], applied[1],
            _opt("%.1f", distance_cm), _opt("%.2f", battery_v), _opt("%d", rssi),
            heap_free, heap_alloc, _opt("%d", driver), _opt("%d", stopped_by), speed_limit,
            _bool(light), _bool(horn),
            "null" if pose is None else '{"x":%.3f,"y":%.3f,"heading":%.3f}' % pose))
