# Request bodies (POST/PUT with Content-Length) for the server's routes.
# Imported by the server when the first body arrives, so a server whose
# clients never send one does not keep this code or its names.
import asyncio

from .connection import ticks_diff, ticks_ms
from .errors import HTTPError


def body_length(headers, max_body):
    """The request body's length from its head (RFC 9112 section 6): chunked
    bodies are refused (411), a missing length is an empty body (a route that
    needs one answers 411 itself), and a body over max_body is refused (413)
    before any of it is read."""
    if "transfer-encoding" in headers:
        raise HTTPError(411, "chunked bodies are not accepted: send Content-Length")
    value = headers.get("content-length")
    if value is None:
        return 0
    if not value.isdigit():  # "5, 5" (two headers), "-1", "0x10"
        raise HTTPError(400, "Content-Length is not a number of bytes")
    length = int(value) if len(value) < 16 else max_body + 1  # no big int for a silly length
    if length > max_body:
        raise HTTPError(413, "body of %d bytes is over this URL's limit of %d" % (length, max_body))
    return length


class Body:
    """A request body, handed to a route handler in pieces (request.body).

    `await body.read(limit)` returns the next piece: a memoryview into the
    server's shared buffer, valid until the next await (hash it, write it,
    copy it), or b"" once the body is complete. A body is never held whole
    in the heap. Each piece must arrive within request_timeout_ms of the
    last and the whole body within the route's timeout_ms, else 408; a
    client that closes early gets 400 (and the handler an HTTPError).
    """

    def __init__(self, server, stream, request, max_body, extra, timeout_ms):
        headers = request.headers
        self.left = self.length = body_length(headers, max_body)  # left: bytes still to come
        self._server = server
        self._stream = stream
        self._extra = extra  # body bytes that came with the head
        self._task = asyncio.current_task()
        self._started = ticks_ms()
        self._timeout_ms = timeout_ms
        self._continue = headers.get("expect", "").lower() == "100-continue"

    async def read(self, limit=0x3FFFFFFF):
        left = self.left
        if left <= 0:
            return b""
        server = self._server
        n = min(left, limit, len(server.buf))
        extra = self._extra
        if extra:
            piece = memoryview(extra)[:n]
            n = len(piece)
            self._extra = extra[n:] if n < len(extra) else None
        else:
            if self._continue:  # the client waits for this before sending (curl does)
                self._continue = False
                self._stream.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await self._stream.drain()
            got = await self._stream.readinto(server.view[:n])
            if not got:
                raise HTTPError(400, "body ended after %d of %d bytes" % (self.length - left, self.length))
            now = ticks_ms()
            if ticks_diff(now, self._started) > self._timeout_ms:
                raise HTTPError(408, "request body not complete within %d ms" % self._timeout_ms)
            server.pending[self._task] = now  # it moves: the idle deadline starts again
            piece = server.view[:got]
            n = got
        self.left = left - n
        return piece
