# The uplink's config.json section, checked (docs/protocol.md, "Uplink").
# Imported by car.config only when config.json has `uplink`, and dropped with
# it after start-up (car.load_config): a running car does not hold this code.
import sys

from wsurl import parse_url  # not from wsclient: that would load the client at boot

sys.modules.pop("wsurl", None)  # freed with this module; the client loads it again to connect


def _name(v, hi):
    # An HTTP token (RFC 9110 §5.6.2) of 1..hi characters: a header name or
    # a subprotocol, which go into the handshake as they are.
    return type(v) is str and 0 < len(v) <= hi and all(
        c.isalpha() or c.isdigit() or c in "!#$%&'*+-.^_`|~" for c in v)


def settings(user, local_hz, errors):
    """The uplink's settings from config.json's `uplink` (docs/protocol.md),
    or None (uplink off) when uplink.url is missing or bad; other bad keys
    are named in errors and fall back to their defaults."""
    if type(user) is not dict:
        errors.append("uplink: must be an object with a url (uplink off)")
        return None
    uplink = {"url": None, "headers": {}, "subprotocol": None, "telemetry_hz": min(2, local_hz), "ca": None}
    for key in user:
        if key not in uplink:
            errors.append("uplink.%s: unknown key (ignored)" % key)
    url = user.get("url")
    why = "missing" if url is None else None
    if type(url) is str and len(url) <= 256:
        try:
            parse_url(url)
        except ValueError as e:
            why = str(e)
    elif why is None:
        why = "must be a string of at most 256 characters"
    if why:
        errors.append("uplink.url: %s; ws://host[:port]/path or wss://host[:port]/path (uplink off)" % why)
        return None
    uplink["url"] = url
    ca = user.get("ca")
    if ca is not None:
        if type(ca) is str and 0 < len(ca) <= 128:
            uplink["ca"] = ca
        else:
            errors.append("uplink.ca: must be a file name of 1 to 128 characters (the server's CA "
                          "certificate on the board)")
    if url.startswith("wss:") and not uplink["ca"]:
        errors.append("uplink.ca: needed for wss://: without it the server cannot be verified "
                      "(uplink off)")
        return None
    headers = user.get("headers", {})
    if type(headers) is not dict:
        errors.append('uplink.headers: must be an object like {"Authorization": "Bearer ..."}')
        headers = {}
    for name, value in headers.items():
        lower = name.lower()
        if not _name(name, 64):
            errors.append("uplink.headers.%s: not a valid header name (letters, digits, -)" % name)
        elif lower in ("host", "upgrade", "connection") or lower.startswith("sec-websocket-"):
            errors.append("uplink.headers.%s: set by the WebSocket handshake itself (ignored)" % name)
        elif type(value) is not str or len(value) > 1024 or "\r" in value or "\n" in value:
            errors.append("uplink.headers.%s: must be a string of at most 1024 characters, "
                          "no line breaks" % name)
        else:
            uplink["headers"][name] = value
    if user.get("subprotocol") is not None:
        if _name(user["subprotocol"], 64):
            uplink["subprotocol"] = user["subprotocol"]
        else:
            errors.append("uplink.subprotocol: must be null or 1 to 64 letters, digits, - . _ "
                          "(one name, no commas)")
    if "telemetry_hz" in user:
        hz = user["telemetry_hz"]
        if type(hz) is int and 1 <= hz <= local_hz:
            uplink["telemetry_hz"] = hz
        else:
            errors.append("uplink.telemetry_hz: must be an int between 1 and %d (at most "
                          "limits.telemetry_hz)" % local_hz)
    return uplink
