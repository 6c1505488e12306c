# HTTPS and WSS for the car (config server.tls; docs/security.md). Imported
# only when server.tls is configured: a plain car never loads ssl or this.
import ssl


def context(tls, base=""):
    """A server-side SSLContext with the car's certificate and key.

    tls: the config's server.tls ({"cert", "key", ...}); relative paths are
    taken from `base` (the config file's folder; "" on a board, where they
    are relative to /). Raises OSError or ValueError naming the file."""
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
