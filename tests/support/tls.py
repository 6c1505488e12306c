"""Certificates the TLS tests make, and a TLS car to test against."""
import json
import os
import ssl
import sys

from support import ROOT
sys.path.insert(0, ROOT)
from tools.board import cert  # noqa: E402  (tools/board/cert.py: what `make cert` runs)

sys.path.pop(0)


def make_certs(out, name="tether-car", **kw):
    """A CA and a car certificate valid for localhost and 127.0.0.1 too (the
    tests reach the car there); returns the car's folder."""
    return cert.make(str(out), name, dns=["localhost"], ips=["127.0.0.1"], **kw)


def tls_config(tmp_path, car_dir, limits=None, server=None, **tls):
    cfg = {"limits": dict({"telemetry_hz": 50, "deadman_ms": 500, "slew": 100.0}, **(limits or {})),
           "hardware": {"mode": "sim", "min_duty": 0.0, "sim": {"noise_cm": 0.0}},
           "server": dict({"max_clients": 4,
                           "tls": dict({"cert": os.path.join(car_dir, "cert.der"),
                                        "key": os.path.join(car_dir, "key.der")}, **tls)},
                          **(server or {}))}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def client_context(ca_dir):
    """What a phone that trusts the maker's CA does: verify the chain and the name."""
    return ssl.create_default_context(cafile=os.path.join(str(ca_dir), "ca.crt.pem"))


def client_hello():
    """The first flight of a real TLS client (CPython's), as bytes."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()
