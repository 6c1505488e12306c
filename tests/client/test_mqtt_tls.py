"""mqtts://: the session over TLS against mosquitto's TLS listener on
loopback, with a throwaway CA made by openssl for the test. A context with
the CA connects; one without it is refused by the certificate check."""
import asyncio
import shutil
import ssl
import subprocess

import pytest

from support.processes import free_port
from support.mqtt import Broker, Client, have_mosquitto, run_until
from mqtt.session import Session
from mqtt.transport import opener

pytestmark = pytest.mark.skipif(not have_mosquitto() or not shutil.which("openssl"),
                                reason="needs mosquitto and openssl")


def make_certs(d):
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
        "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "server.crt", "-extfile", "ext.cnf")


@pytest.mark.slow
def test_mqtts_with_the_ca_connects_and_without_it_is_refused(tmp_path):
    make_certs(tmp_path)
    tls_port = free_port()
    broker = Broker(tmp_path, extra="listener %d 127.0.0.1\ncafile %s/ca.crt\ncertfile %s/server.crt\n"
                                    "keyfile %s/server.key\n" % (tls_port, tmp_path, tmp_path, tmp_path))
    url = "mqtts://127.0.0.1:%d" % tls_port
    try:
        async def main():
            ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
            c = Client(url, "tls", [("tls/#", 1)])
            c.session.open_transport = opener(url, ssl_context=ctx)
            await c.start()
            await asyncio.sleep(0.1)
            c.publish("tls/x", b"secret", qos=1)
            await c.wait(lambda: c.on("tls/x"), 3, "own message over TLS")
            await c.stop()
            logs = []
            s = Session(opener(url), "untrusted", log=logs.append, backoff_min_ms=50)
            await run_until(s, lambda: logs)
            return logs, s.connects
        logs, connects = asyncio.run(asyncio.wait_for(main(), 30))
        assert connects == 0
        assert "CERTIFICATE_VERIFY_FAILED" in logs[0] or "certificate" in logs[0].lower(), logs
    finally:
        broker.kill()
