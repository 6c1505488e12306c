# Reading what can be read of a config.json that is not valid JSON as a whole
# (car/config.py imports this only then).
import json


def _end_of_value(text, k):
    """Index of the "," or "}" that ends the JSON value starting at k (depth 0,
    outside strings), or len(text)."""
    depth = 0
    quoted = False
    n = len(text)
    while k < n:
        c = text[k]
        if quoted:
            if c == "\\":
                k += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "{" or c == "[":
            depth += 1
        elif c == "}" or c == "]":
            if not depth:
                return k
            depth -= 1
        elif c == "," and not depth:
            return k
        k += 1
    return n


def salvage(text, path, errors):
    """The top-level sections ("wifi": {...}) of a file that is not valid JSON
    as a whole, each parsed on its own: a typo in one section must not reset
    another (above all the access point's password). Errors name the section
    and its line (MicroPython's json gives no position)."""
    user = {}
    i = text.find("{") + 1
    while i > 0:
        q = text.find('"', i)
        colon = text.find(":", q + 1) if q >= 0 else -1
        if colon < 0:
            break
        key = text[q + 1:colon].strip().rstrip('"')
        end = _end_of_value(text, colon + 1)
        try:
            user[key] = json.loads(text[colon + 1:end])
        except ValueError:
            errors.append('%s: "%s" (from line %d) is not valid JSON, using its defaults'
                          % (path, key, text.count("\n", 0, q) + 1))
        if end >= len(text) or text[end] == "}":
            break
        i = end + 1
    return user
