# The TLS parts of config.json (server.tls, fleet.ca): checked here, loaded by
# car/config.py only when a config has them, so a plain car's boot does not
# compile or hold this code.
from car.config import check, copy

TLS_DEFAULTS = {"cert": "tls/cert.der", "key": "tls/key.der", "max_clients": 2}


def server_tls(value, errors):
    # Each TLS session holds mbedTLS's record buffers (~23 KB on a board,
    # docs/security.md), so TLS has its own, lower client limit.
    if value is None:
        return None
    if type(value) is not dict:
        errors.append('server.tls: must be null or an object like {"cert": "tls/cert.der", '
                      '"key": "tls/key.der"}; serving plain HTTP')
        return None
    good = copy(TLS_DEFAULTS)
    for key in value:
        if key not in good:
            errors.append("server.tls.%s: unknown key (ignored)" % key)
    for key in ("cert", "key"):
        if key in value:
            why = check("s", value[key], 1, 128)
            if why:
                errors.append("server.tls.%s: %s (a file on the board)" % (key, why))
                return None
            good[key] = value[key]
    if "max_clients" in value:
        why = check("i", value["max_clients"], 1, 4)
        if why:
            errors.append("server.tls.max_clients: " + why)
        else:
            good["max_clients"] = value["max_clients"]
    return good


def broker_trust(user, fleet, errors):
    # How a TLS broker is verified (car/broker_tls.py): its CA's certificate
    # (or its own, to pin it). Without it a TLS broker cannot be verified.
    ca = user.get("ca")
    if ca is not None:
        why = check("s", ca, 1, 128)
        if why:
            errors.append("fleet.ca: %s (a CA certificate file on the board)" % why)
        else:
            fleet["ca"] = ca
    url = fleet["url"]
    if (url.startswith("mqtts:") or url.startswith("wss:")) and not fleet["ca"]:
        errors.append("fleet.ca: needed for %s://: without it the broker cannot be verified "
                      "(fleet link off)" % url[:url.find(":")])
        return None
    return fleet
