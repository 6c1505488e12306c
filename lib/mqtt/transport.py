# Byte streams an MQTT session runs over. Every transport is an object with
#   async recv() -> bytes   the next chunk (b"" once the peer has closed)
#   async send(data)        returns when the bytes are handed to the socket
#   async close()
# so the session does not care whether the bytes go over TCP, TLS or
# WebSocket frames (the WebSocket client provides the same three methods).
import asyncio


def _text(n, *args):
    # An error text (mqtt/texts.py, through the codec's loader). The codec is
    # imported here, not at the top: car.fleet_config checks fleet.url with
    # split_url at boot, on top of the config checker, and the codec's code
    # and names (~70) would push the qstr pool's next chunk (4.7 KB in one
    # block) into that peak (docs/memory.md).
    from mqtt.codec import _text as text

    return text(n, *args)


READ_SIZE = 512  # a car's messages are small; one read allocates this much at most


class StreamTransport:
    """An asyncio stream pair (TCP, or TLS when opened with an SSL context)."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    async def recv(self):
        return await self.reader.read(READ_SIZE)

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def close(self):
        try:
            self.writer.close()
            await self.writer.wait_closed()
        except Exception:  # already reset by the peer: nothing left to close
            pass


async def open_tcp(host, port, ssl=None):
    """TCP, or TLS with an ssl.SSLContext (its certificate checks are the
    context's). The host name is looked up by the socket layer, which blocks
    on a board: give a numeric address there or keep the lookup fast."""
    if ssl is None:
        reader, writer = await asyncio.open_connection(host, port)
    else:
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl, server_hostname=host)
    return StreamTransport(reader, writer)


def split_url(url):
    """(scheme, host, port, path) of mqtt://, mqtts://, ws:// or wss:// URLs;
    ValueError names what is wrong."""
    if type(url) is not str or "://" not in url:
        raise ValueError(_text(38))  # must be a URL like mqtt://host:1883
    i = url.find("://")
    scheme = url[:i]
    rest = url[i + 3:]
    if scheme == "mqtt":
        port = 1883
    elif scheme == "mqtts":
        port = 8883
    elif scheme == "ws":
        port = 80
    elif scheme == "wss":
        port = 443
    else:
        raise ValueError(_text(39, scheme))  # scheme %s: must be mqtt, mqtts, ws or wss
    slash = rest.find("/")
    path = "/"
    if slash >= 0:
        path = rest[slash:]
        rest = rest[:slash]
    if scheme[0] == "m" and path != "/":
        raise ValueError(_text(40))  # mqtt:// and mqtts:// take no path
    if rest.startswith("["):  # [::1]:1883
        end = rest.find("]")
        if end < 0:
            raise ValueError(_text(41))  # unclosed [ in the host
        host = rest[1:end]
        rest = rest[end + 1:]
        if rest and rest[0] != ":":
            raise ValueError(_text(42))  # junk after ]
        port_text = rest[1:] if rest else ""
    else:
        colon = rest.find(":")
        host = rest if colon < 0 else rest[:colon]
        port_text = "" if colon < 0 else rest[colon + 1:]
    if not host:
        raise ValueError(_text(43))  # has no host
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(_text(44, port_text))  # port %s: must be 1 to 65535
        port = int(port_text)
    return scheme, host, port, path


def opener(url, ssl_context=None, ws_options=None):
    """An async function that opens a new transport to url each time it is
    called (the session calls it on every reconnect). ssl_context: for
    mqtts:// and wss:// (default: a new client context, which checks
    certificates where the platform has CA data). ws_options: extra
    arguments for the WebSocket client (max_message, buffer_size, ...)."""
    scheme, host, port, path = split_url(url)
    if scheme == "wss" or scheme == "ws":
        async def open_ws():
            # MQTT over WebSocket: binary messages, subprotocol "mqtt", through
            # the WebSocket client's byte stream (the same three methods).
            from wsclient.bytestream import open_byte_stream  # only for ws:// and wss://

            return await open_byte_stream(url, subprotocol="mqtt", ssl=ssl_context, **(ws_options or {}))
        return open_ws

    async def open_stream_tcp():
        ctx = ssl_context
        if scheme == "mqtts" and ctx is None:
            import ssl

            ctx = ssl.create_default_context() if hasattr(ssl, "create_default_context") \
                else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return await open_tcp(host, port, ctx)
    return open_stream_tcp
