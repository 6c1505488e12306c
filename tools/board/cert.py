#!/usr/bin/env python3
"""Make a TLS key and certificate for a car, signed by a small local CA.

    python tools/board/cert.py --name tether-car            (make cert NAME=tether-car)
    python tools/board/cert.py --name tether-car --self-signed

Writes into certs/ (never served, never committed: see .gitignore):
  certs/ca.key.pem           the CA's private key: keep it on this computer
                             (whoever has it can make certificates every phone
                             that trusts the CA accepts)
  certs/ca.crt.pem, ca.crt.der  the CA certificate, to install on phones and
                             browsers (docs/security.md); one CA for all of a
                             maker's cars, made once and reused
  certs/<name>/cert.der      the car's certificate (DER: smaller to keep on the board)
  certs/<name>/key.der       the car's private key (EC P-256)
  certs/<name>/cert.pem      the same certificate as PEM, for clients and tests

The car's certificate names <name>, <name>.local and the access point's
address 192.168.4.1 (the address is only written into the certificate), plus
any --dns/--ip given. EC P-256 keys: a board's handshake with them is much
faster and smaller than with RSA. `make deploy` copies certs/<hostname>/ to
the board's /tls/ when config.json has server.tls.

Uses the `cryptography` package when it is installed (esptool brings it into
.venv), else the openssl command. CPython only.
"""
import argparse
import datetime
import ipaddress
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.common import ROOT  # noqa: E402
AP_ADDRESS = "192.168.4.1"  # MicroPython's default access-point address
LEAF_DAYS = 825  # Apple's limit for TLS server certificates, user-installed CAs included
CA_DAYS = 3650


class CertError(Exception):
    pass


def car_names(name, dns=(), ips=()):
    return [name, name + ".local"] + list(dns), [AP_ADDRESS] + list(ips)


# --- with the cryptography package -----------------------------------------

def _crypto():
    try:
        from cryptography import x509  # noqa: F401
        return True
    except ImportError:
        return False


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key):
    from cryptography.hazmat.primitives import serialization as s
    return key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())


def _der_key(key):
    # SEC1 "EC PRIVATE KEY" DER: what mbedtls_pk_parse_key reads on the board.
    from cryptography.hazmat.primitives import serialization as s
    return key.private_bytes(s.Encoding.DER, s.PrivateFormat.TraditionalOpenSSL, s.NoEncryption())


def _load_key(pem):
    from cryptography.hazmat.primitives import serialization as s
    return s.load_pem_private_key(pem, None)


def _build(subject, issuer, public_key, signing_key, days, ca, dns=(), ips=(), not_before=None):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    now = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(issuer if isinstance(issuer, x509.Name)
                      else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
         .public_key(public_key).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if ca:
        b = (b.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=True, crl_sign=True,
                                          encipher_only=False, decipher_only=False), critical=True))
    else:
        sans = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
        b = (b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=False, crl_sign=False,
                                          encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
             .add_extension(x509.SubjectAlternativeName(sans), critical=False))
    return b.sign(signing_key, hashes.SHA256())


def _write(path, data, private=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_with_cryptography(out, name, dns, ips, self_signed, days, not_before=None):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    ca_key_path, ca_crt_path = os.path.join(out, "ca.key.pem"), os.path.join(out, "ca.crt.pem")
    key = _new_key()
    if self_signed:
        cert = _build(name, name, key.public_key(), key, days, False, dns, ips, not_before)
    else:
        if os.path.exists(ca_key_path) and os.path.exists(ca_crt_path):
            with open(ca_key_path, "rb") as f:
                ca_key = _load_key(f.read())
            with open(ca_crt_path, "rb") as f:
                ca_cert = x509.load_pem_x509_certificate(f.read())
        else:
            ca_key = _new_key()
            ca_cert = _build("Tether local CA", "Tether local CA", ca_key.public_key(), ca_key, CA_DAYS, True)
            _write(ca_key_path, _pem_key(ca_key), private=True)
            _write(ca_crt_path, ca_cert.public_bytes(Encoding.PEM))
            _write(os.path.join(out, "ca.crt.der"), ca_cert.public_bytes(Encoding.DER))
        cert = _build(name, ca_cert.subject, key.public_key(), ca_key, days, False, dns, ips, not_before)
    car = os.path.join(out, name)
    _write(os.path.join(car, "key.der"), _der_key(key), private=True)
    _write(os.path.join(car, "key.pem"), _pem_key(key), private=True)
    _write(os.path.join(car, "cert.der"), cert.public_bytes(Encoding.DER))
    _write(os.path.join(car, "cert.pem"), cert.public_bytes(Encoding.PEM))


# --- with the openssl command ----------------------------------------------

def _openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True)
    if r.returncode:
        raise CertError("openssl %s failed: %s" % (args[0], r.stderr.strip()))


def make_with_openssl(out, name, dns, ips, self_signed, days):
    car = os.path.join(out, name)
    os.makedirs(car, exist_ok=True)
    ca_key, ca_crt = os.path.join(out, "ca.key.pem"), os.path.join(out, "ca.crt.pem")
    key_pem, cert_pem = os.path.join(car, "key.pem"), os.path.join(car, "cert.pem")
    sans = ",".join(["DNS:" + n for n in dns] + ["IP:" + a for a in ips])
    leaf_ext = ("basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n" % sans)
    with tempfile.TemporaryDirectory() as tmp:
        ext = os.path.join(tmp, "leaf.ext")
        with open(ext, "w") as f:
            f.write(leaf_ext)
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key_pem)
        if self_signed:
            _openssl("req", "-new", "-x509", "-key", key_pem, "-subj", "/CN=" + name, "-days", str(days),
                     "-addext", "subjectAltName=" + sans, "-addext", "basicConstraints=critical,CA:false",
                     "-addext", "extendedKeyUsage=serverAuth", "-out", cert_pem)
        else:
            if not (os.path.exists(ca_key) and os.path.exists(ca_crt)):
                _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ca_key)
                os.chmod(ca_key, 0o600)
                _openssl("req", "-new", "-x509", "-key", ca_key, "-subj", "/CN=Tether local CA",
                         "-days", str(CA_DAYS), "-addext", "basicConstraints=critical,CA:true,pathlen:0",
                         "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", ca_crt)
                _openssl("x509", "-in", ca_crt, "-outform", "DER", "-out", os.path.join(out, "ca.crt.der"))
            csr = os.path.join(tmp, "leaf.csr")
            _openssl("req", "-new", "-key", key_pem, "-subj", "/CN=" + name, "-out", csr)
            _openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
                     "-days", str(days), "-extfile", ext, "-out", cert_pem)
    os.chmod(key_pem, 0o600)
    _openssl("ec", "-in", key_pem, "-outform", "DER", "-out", os.path.join(car, "key.der"))
    os.chmod(os.path.join(car, "key.der"), 0o600)
    _openssl("x509", "-in", cert_pem, "-outform", "DER", "-out", os.path.join(car, "cert.der"))


def make(out, name, dns=(), ips=(), self_signed=False, days=LEAF_DAYS, backend=None, not_before=None):
    """Write the CA (unless self-signed; reused when present) and the car's key and certificate."""
    if not name or not all(c.isalnum() or c == "-" for c in name) or len(name) > 32:
        raise CertError("NAME must be the car's wifi.hostname: 1-32 letters, digits and '-'")
    dns, ips = car_names(name, dns, ips)
    for a in ips:
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise CertError("--ip %s is not an IP address" % a)
    backend = backend or ("cryptography" if _crypto() else "openssl")
    if backend == "cryptography":
        make_with_cryptography(out, name, dns, ips, self_signed, days, not_before)
    else:
        make_with_openssl(out, name, dns, ips, self_signed, days)
    return os.path.join(out, name)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Make a car's TLS key and certificate (and a local CA).")
    ap.add_argument("--name", default=os.environ.get("NAME"), help="the car's wifi.hostname")
    ap.add_argument("--out", default=os.path.join(ROOT, "certs"))
    ap.add_argument("--dns", action="append", default=[], help="another DNS name for the car")
    ap.add_argument("--ip", action="append", default=[], help="another IP address for the car")
    ap.add_argument("--self-signed", action="store_true", help="no CA: a self-signed certificate")
    ap.add_argument("--days", type=int, default=LEAF_DAYS)
    ap.add_argument("--backend", choices=("cryptography", "openssl"))
    args = ap.parse_args(argv)
    if not args.name:
        print("error: NAME=<the car's wifi.hostname> is needed, e.g. make cert NAME=tether-car", file=sys.stderr)
        return 2
    try:
        car = make(args.out, args.name, args.dns, args.ip, args.self_signed, args.days, args.backend)
    except CertError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    rel = os.path.relpath(car)
    print("made %s/cert.der and %s/key.der for %s" % (rel, rel, ", ".join(sum(car_names(args.name, args.dns, args.ip), []))))
    if not args.self_signed:
        print("CA to install on phones and browsers: %s (docs/security.md)" % os.path.relpath(os.path.join(args.out, "ca.crt.pem")))
    print('config.json: "server": {"tls": {}} serves https on port 443; make deploy copies %s to /tls/' % rel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
