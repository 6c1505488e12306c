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
