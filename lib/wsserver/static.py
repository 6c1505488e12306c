# Static files from one folder (the page in web/), safely.

import os

from .errors import HTTPError
from .http import table_lookup, unquote

# A table string, as http._REASONS (see table_lookup): it stays in flash.
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
