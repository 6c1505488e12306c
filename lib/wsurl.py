# A WebSocket URL taken apart (RFC 6455 §3), for the WebSocket client's
# handshake and for car.uplink_config, which checks uplink.url at boot. A
# module outside the wsclient package: importing anything from the package
# runs wsclient/__init__, which loads the client (~6 KB of heap as .mpy
# files, ~40 names) on top of the config checker, the boot's peak.


def parse_url(url):
    """"ws://host:port/path?q" -> (secure, host, port, target).

    IPv6 literals go in brackets ("ws://[::1]:8080/"). Raises ValueError
    naming what is wrong.
    """
    if url.startswith("ws://"):
        secure = False
        rest = url[5:]
    elif url.startswith("wss://"):
        secure = True
        rest = url[6:]
    else:
        raise ValueError("WebSocket URL must start with ws:// or wss://: %r" % url)
    cut = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if 0 <= i < cut:
            cut = i
    authority = rest[:cut]
    target = rest[cut:]
    hash_at = target.find("#")
    if hash_at >= 0:
        target = target[:hash_at]  # a fragment is never sent (§3)
    if not target.startswith("/"):
        target = "/" + target
    if "@" in authority:
        raise ValueError("credentials in a WebSocket URL are not sent: pass headers={'Authorization': ...}")
    port = 443 if secure else 80
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise ValueError("unclosed [ in the IPv6 address of %r" % url)
        host = authority[1:close]
        tail = authority[close + 1:]
    else:
        colon = authority.find(":")
        host = authority if colon < 0 else authority[:colon]
        tail = "" if colon < 0 else authority[colon:]
    if tail:
        if tail[0] != ":" or not tail[1:].isdigit() or not 0 < int(tail[1:]) < 65536:
            raise ValueError("bad port in WebSocket URL %r" % url)
        port = int(tail[1:])
    if not host:
        raise ValueError("no host in WebSocket URL %r" % url)
    for c in " \t\r\n":
        if c in url:
            raise ValueError("WebSocket URL contains whitespace: %r" % url)
    return secure, host, port, target
