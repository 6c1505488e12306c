# HTTPS and WSS for the car (config server.tls; docs/security.md), and the
# checks of the TLS parts of config.json (server.tls, fleet.ca). Loaded by
# car/config.py only for a car with server.tls or a fleet link, and by
# car/app.py only with server.tls; a plain car never loads ssl or this.
def context(tls, base=""):
    """A server-side SSLContext with the car's certificate and key.

    tls: the config's server.tls ({"cert", "key", ...}); relative paths are
    taken from `base` (the config file's folder; "" on a board, where they
    are relative to /). Raises OSError or ValueError naming the file."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert, key = tls["cert"], tls["key"]
    if base and cert[0] != "/":
        cert = base + "/" + cert
    if base and key[0] != "/":
        key = base + "/" + key
    for path in (cert, key):
        try:
            open(path).close()
        except OSError:
            raise OSError("server.tls: cannot read %s (make cert NAME=<hostname>, then make deploy)" % path)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ValueError) as e:
        raise ValueError("server.tls: %s or %s is not a certificate and its key (%s)" % (cert, key, e))
    return ctx


def setup(tls, config_path, max_clients):
    """(SSLContext, WebSocket client limit), or (None, max_clients) with the
    reason printed when the certificate cannot be loaded: the car still
    boots, on plain HTTP, rather than not at all."""
    try:
        base = config_path[:config_path.rfind("/")] if "/" in config_path else ""
        return context(tls, base), min(max_clients, tls["max_clients"])
    except (OSError, ValueError) as e:
        print("config error:", e.args[0] if e.args and type(e.args[0]) is str else e)
        print("config error: server.tls: serving plain HTTP instead")
        return None, max_clients


# --- config.json's TLS keys (called by car/config.py's validate) ----------

def validate(user, cfg, errors):
    """server.tls and fleet.ca of a parsed config.json, into cfg; errors named."""
    server = user.get("server")
    if type(server) is dict and server.get("tls") is not None:
        cfg["server"]["tls"] = tls = _server_tls(server["tls"], errors)
        if tls is not None and "port" not in server:
            cfg["server"]["port"] = 443
    if cfg["fleet"]:
        # _fleet() does not know fleet.ca: take back its "unknown key" error.
        unknown = "fleet.ca: unknown key (ignored)"
        if unknown in errors:
            errors.remove(unknown)
        cfg["fleet"] = _broker_trust(user["fleet"], cfg["fleet"], errors)


TLS_DEFAULTS = {"cert": "tls/cert.der", "key": "tls/key.der", "max_clients": 2}


def _server_tls(value, errors):
    from car.config import check, copy  # being loaded: it is the caller
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


def _broker_trust(user, fleet, errors):
    from car.config import check
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
    if (url.startswith("mqtts:") or url.startswith("wss:")) and not fleet.get("ca"):
        errors.append("fleet.ca: needed for %s://: without it the broker cannot be verified "
                      "(fleet link off)" % url[:url.find(":")])
        return None
    return fleet
