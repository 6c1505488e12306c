# HTTP responses: a route's handler, a static file from one folder (the page
# in web/, found safely by os.stat and streamed through the server's
# buffer), and the error answers (`fail`: the one place an exception becomes
# an HTTP status). Loaded by exchange.py for a request that is not a
# WebSocket upgrade, or for an error: a WebSocket's accepted upgrade (its
# 101 is upgrade.py's) never loads it.

import os
import sys

from .errors import HTTPError
from .http import unquote

# Lookup tables as one string each ("|key value|key value|") rather than
# dicts: a string constant stays in flash (frozen or ROMFS), where a dict
# would be built in the heap at import.
_REASONS = ("|101 Switching Protocols|200 OK|304 Not Modified|400 Bad Request|403 Forbidden"
            "|404 Not Found|405 Method Not Allowed|406 Not Acceptable|408 Request Timeout"
            "|409 Conflict|411 Length Required|413 Content Too Large|414 URI Too Long"
            "|426 Upgrade Required|431 Request Header Fields Too Large"
            "|500 Internal Server Error|503 Service Unavailable|505 HTTP Version Not Supported"
            "|507 Insufficient Storage|")


def table_lookup(table, key, default):
    """The value for `key` in a "|key value|..." table string, else `default`."""
    if "|" in key:
        return default
    start = table.find("|" + key + " ")
    if start < 0:
        return default
    start += len(key) + 2
    return table[start:table.find("|", start)]


def reason_phrase(status):
    """The standard reason phrase for `status` ("Unknown" for codes we never send)."""
    return table_lookup(_REASONS, str(status), "Unknown")


def response_head(status, headers=()):
    """headers: (name, value) pairs, or "Name: value" strings for fixed ones
    (one long string stays out of the qstr pool and builds no tuple)."""
    lines = ["HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status))]
    for h in headers:
        lines.append((h if isinstance(h, str) else "%s: %s" % h) + "\r\n")
    lines.append("\r\n")
    return "".join(lines).encode()


def error_response(status, reason, headers=None, head_only=False):
    """A complete plain-text error response that names the problem."""
    body = (reason + "\n").encode()
    h = ["Content-Type: text/plain; charset=utf-8", ("Content-Length", len(body)),
         "Connection: close"]
    if headers:
        h.extend(headers)
    return response_head(status, h) + (b"" if head_only else body)


async def fail(server, stream, e, head_only):
    """Answer the request that raised `e`, then the caller closes: an
    HTTPError with its status and reason, a MemoryError (this request, or
    another at the same time, found no room) with 503 and a retry, anything
    else (a bug) with 500, the server serving everyone else on."""
    if isinstance(e, MemoryError):
        e = HTTPError(503, "server out of memory: retry", ["Retry-After: 2"])
        head_only = False
    elif not isinstance(e, HTTPError):
        if server.debug:
            sys.print_exception(e)
        e = HTTPError(500, "internal error")
        head_only = False
    try:
        stream.write(error_response(e.status, e.reason, e.headers, head_only))
        await stream.drain()
    except OSError:
        pass


async def route(server, stream, request, route, extra):
    handler, methods, max_body, timeout_ms = route
    method = request.method
    if (" " + methods.replace(",", " ") + " ").find(" " + method + " ") < 0:
        raise HTTPError(405, "allowed here: " + methods, [("Allow", methods)])
    if method == "POST" or method == "PUT":
        # Imported by the first body: a server without them never loads
        # the module (nor interns its names).
        from .body import Body
        request.body = Body(server, stream, request, max_body, extra, timeout_ms or server.request_timeout_ms)
    result = handler(request)
    if hasattr(result, "send"):  # a coroutine (a generator on MicroPython)
        result = await result
    status = 200
    ctype = "text/plain; charset=utf-8"
    if isinstance(result, tuple) or isinstance(result, list):
        status, result, ctype = result
    body = result.encode() if isinstance(result, str) else result
    stream.write(response_head(status, [("Content-Type", ctype), ("Content-Length", len(body)),
                                        "Cache-Control: no-store", "Connection: close"]))
    if request.method != "HEAD":
        stream.write(body)
    await stream.drain()


async def file(server, stream, request):
    if server.static_dir is None:
        raise HTTPError(404, "not found")
    if request.method != "GET" and request.method != "HEAD":
        raise HTTPError(405, "only GET and HEAD are allowed here", ["Allow: GET, HEAD"])
    path, size, etag, ctype, gzipped = find(
        server.static_dir, request.path, request.headers.get("accept-encoding", ""))
    headers = [("Content-Type", ctype), ("ETag", etag), "Cache-Control: no-cache",
               "Vary: Accept-Encoding", "Connection: close"]
    if gzipped:
        headers.append("Content-Encoding: gzip")
    match = request.headers.get("if-none-match")
    if match and (etag in match or match.strip() == "*"):  # "*": any current version
        stream.write(response_head(304, headers))
        await stream.drain()
        return
    headers.append(("Content-Length", size))
    stream.write(response_head(200, headers))
    if request.method == "HEAD":
        await stream.drain()
        return
    # Stream in chunks through the shared buffer: a file is never read whole.
    buf = server.buf
    view = server.view
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            stream.write(view[:n])  # whatever the socket doesn't take now is copied
            await stream.drain()


# A table string, as _REASONS (see table_lookup): it stays in flash.
_TYPES = ("|html text/html; charset=utf-8|js text/javascript; charset=utf-8"
          "|css text/css; charset=utf-8|json application/json|svg image/svg+xml"
          "|png image/png|jpg image/jpeg|ico image/x-icon|txt text/plain; charset=utf-8"
          "|webmanifest application/manifest+json|wasm application/wasm|")


def content_type(name):
    return table_lookup(_TYPES, name[name.rfind(".") + 1:].lower(), "application/octet-stream")


def safe_relative_path(raw_path):
    """'/css/app.css' -> 'css/app.css'; raises HTTPError for anything that could leave the folder.

    Checked on the raw path before decoding, then on each decoded segment, so
    '..', '%2e%2e', '%2f', backslashes and NUL never reach the filesystem.
    """
    if "\\" in raw_path or "%2f" in raw_path.lower() or "%5c" in raw_path.lower():
        raise HTTPError(400, "encoded or back slashes are not allowed in paths")
    path = unquote(raw_path)
    if path.endswith("/"):
        path += "index.html"
    segments = path.split("/")[1:]
    for seg in segments:
        if not seg or seg[0] == "." or "\x00" in seg or "\\" in seg:
            # '', '.', '..', hidden files: never served.
            raise HTTPError(404, "not found")
    return "/".join(segments)


def _stat(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st[0] & 0o170000 != 0o100000:  # regular files only
        return None
    return st


def find(root, raw_path, accept_encoding=""):
    """Resolve a request path to (fs_path, size, etag, content_type, gzipped).

    Prefers 'X.gz' when the client accepts gzip, so the board can ship only
    compressed assets.
    """
    rel = safe_relative_path(raw_path)
    full = root + "/" + rel
    ctype = content_type(rel)
    # Does Accept-Encoding let us send gzip: "gzip" (or "*" when gzip is not
    # named) with a q-value above 0 (RFC 9110 12.5.3)? Inline, not a function
    # of its own: one interned name fewer.
    gzip = star = False
    for item in accept_encoding.lower().split(","):
        parts = item.split(";")
        name = parts[0].strip()
        if name != "gzip" and name != "*":
            continue
        q = 1.0
        for param in parts[1:]:
            param = param.strip()
            if param[:2] == "q=":
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if name == "*":
            star = q > 0
        else:
            gzip = q > 0
            break
    else:
        gzip = star
    if gzip:
        st = _stat(full + ".gz")
        if st:
            return full + ".gz", st[6], _etag(st, "g"), ctype, True
    st = _stat(full)
    if st:
        return full, st[6], _etag(st, ""), ctype, False
    if _stat(full + ".gz"):
        raise HTTPError(406, "only a gzip-compressed copy exists and the client does not accept gzip")
    raise HTTPError(404, "not found")


def _etag(st, suffix):
    return '"%x-%x%s"' % (st[6], st[8], suffix)
