# The car's JSON messages (docs/protocol.md): parse and check what clients
# send, build what the car sends. Checking is strict because a bad value must
# never reach a motor: every rejected message gets an error naming the field.
import json

from hardware import is_number

MAX_TEXT = 512  # longer messages are refused before parsing (heap)


def _bad(code, n, args=(), field=None):
    # The error's field (unless given) and text are car/refusals.py's text n
    # (formatted with args), loaded to word this one and dropped again: a car whose
    # clients send valid messages keeps none of the texts in its heap. Built
    # when needed: a constant (code, field, message) tuple would be an
    # object kept in the heap for as long as the module is loaded.
    from car import drop, refusals

    drop("refusals")
    text = refusals.TEXTS[n]
    return None, (code, field or text[0], text[1] % args)


def _number(msg, field, lo, hi):
    """The value of a numeric field, or an error tuple naming it."""
    if field not in msg:
        return _bad("bad_field", 4, (field, lo, hi), field)[1]
    v = msg[field]
    if not is_number(v) or not lo <= v <= hi:
        return _bad("bad_field", 5, (field, lo, hi), field)[1]
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
        return _bad("bad_json", 6)
    if len(text) > MAX_TEXT:
        return _bad("too_large", 7, (MAX_TEXT,))
    try:
        msg = _load(text)
    except ValueError:
        return _bad("bad_json", 8)
    if type(msg) is not dict:
        return _bad("bad_json", 9)
    kind = msg.get("type")
    if kind is None:
        return _bad("bad_field", 10)
    if kind == "drive":
        v = _number(msg, "throttle", -1, 1)
        if type(v) is not tuple:
            v = _number(msg, "steer", -1, 1)
        if type(v) is tuple:
            return None, v
    elif kind == "actuator":
        name = msg.get("name")
        if name != "light" and name != "horn" and name != "pan":
            return _bad("bad_field", 11)
        if name == "pan":
            v = _number(msg, "value", -90, 90)
            if type(v) is tuple:
                return None, v
        elif type(msg.get("value")) is not bool:
            return _bad("bad_field", 12, (name,))
    elif kind == "speed_limit":
        v = _number(msg, "value", 0.1, 1)
        if type(v) is tuple:
            return None, v
    elif kind == "ping":
        ident = msg.get("id")
        if not (ident is None or type(ident) in (str, bool) or is_number(ident)):
            return _bad("bad_field", 13)
    elif kind == "stop":
        if type(msg.get("latch", True)) is not bool:
            return _bad("bad_field", 14)
    elif kind != "resume":
        return _bad("unknown_type", 15)
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
