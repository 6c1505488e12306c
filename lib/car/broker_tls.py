# How the fleet link trusts its broker over mqtts:// and wss:// (config
# fleet.ca; docs/security.md), and how the uplink trusts a wss:// server
# (uplink.ca, the same rules). Imported only by a car whose fleet URL is a
# TLS one.
#
# fleet.ca: a CA certificate file on the board (PEM or DER). The broker's
# chain must lead to it, be in its validity period, and name the host in
# fleet.url (mbedTLS checks the name given as server_hostname). A broker
# with a self-signed certificate is pinned by giving that certificate
# itself as fleet.ca. (A pinned SHA-256 fingerprint is not offered: this
# MicroPython's SSLSocket has no getpeercert(), and its verify_callback is
# not called without a CA chain, so nothing could compare the digest.)
# A refusal raises ValueError with the reason, which the session logs and
# the link shows at GET /fleet.
import ssl
from binascii import a2b_base64

# mbedTLS's verify messages (x509_crt_verify_info) -> what to tell a maker.
REASONS = [
    ("expired", "the broker's certificate has expired"),
    ("future", "the broker's certificate is not valid yet (is the car's clock set?)"),
    ("Common Name", "the broker's certificate is not for %s (hostname mismatch)"),
    ("not correctly signed", "the broker's certificate is not signed by fleet.ca (wrong CA)"),
    ("trusted CA", "the broker's certificate is not signed by fleet.ca (wrong CA)"),
]


def context(fleet, base="", key="fleet.ca"):
    """A client SSLContext for fleet.url's broker (or, key "uplink.ca", for
    the uplink's server); base: the config file's folder, for a relative ca."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca = fleet.get("ca")
    if not ca:
        raise ValueError(key + ": needed for TLS (its CA certificate, or its own)")
    if base and ca[0] != "/":
        ca = base + "/" + ca
    try:
        with open(ca, "rb") as f:
            data = f.read()
    except OSError:
        raise OSError("%s: cannot read %s" % (key, ca))
    try:
        ctx.load_verify_locations(cadata=der(data))
    except ValueError:
        raise ValueError("%s: %s is not a certificate (PEM or DER)" % (key, ca))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def der(data):
    """The first certificate of a PEM file as DER (this MicroPython's
    load_verify_locations takes DER only: PEM gives "invalid cert");
    DER is returned as it is."""
    start = data.find(b"-----BEGIN CERTIFICATE-----")
    if start < 0:
        return data
    end = data.find(b"-----END", start)
    return a2b_base64(data[start + 27:end].replace(b"\r", b"").replace(b"\n", b""))


def explain(e, host):
    text = str(e)
    for needle, reason in REASONS:
        if needle in text:
            return reason % host if "%s" in reason else reason
    return None


def refusal(e, host):
    why = explain(e, host)
    return ValueError("broker certificate refused: " + why) if why else e


class Checked:
    """A transport whose certificate refusals name their reason. The TLS
    handshake runs inside the first send or receive (asyncio wraps the
    socket with do_handshake_on_connect=False), so that is where mbedTLS's
    verdict arrives."""

    def __init__(self, transport, host):
        self.transport = transport
        self.host = host

    async def send(self, data):
        try:
            return await self.transport.send(data)
        except (OSError, ValueError) as e:
            raise refusal(e, self.host)

    async def recv(self):
        try:
            return await self.transport.recv()
        except (OSError, ValueError) as e:
            raise refusal(e, self.host)

    async def close(self):
        await self.transport.close()


def checked(open_transport, host):
    """Wrap a transport opener so certificate refusals name the reason."""
    async def open_checked():
        try:
            return Checked(await open_transport(), host)
        except (OSError, ValueError) as e:
            raise refusal(e, host)
    return open_checked
