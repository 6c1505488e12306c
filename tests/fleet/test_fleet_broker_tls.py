"""The fleet link verifies its broker (config fleet.ca, fleet.fingerprint):
real cars on the Unix port against one mosquitto with a TLS listener per
certificate, all made here by tools/board/cert.py. The good broker is reached; a
wrong CA, a wrong hostname, an expired certificate and a wrong pin are each
refused with the reason on the console and at the car's GET /fleet."""
import datetime
import os
import urllib.request

import pytest

from support.polling import wait_until
from support.processes import free_port
from support.fleet import car_config, wait_status
from support.mqtt import Broker, can_unshare, have_mosquitto, have_wsclient, run_in_netns
from support.tls import cert

pytestmark = pytest.mark.skipif(not have_mosquitto(), reason="needs mosquitto")


def broker_cert(out, name, **kw):
    """A broker certificate from tools/board/cert.py; the tests reach it as localhost."""
    d = cert.make(str(out), name, dns=["localhost"] if name == "broker" else [], **kw)
    return d


@pytest.mark.slow
def test_broker_is_verified_and_bad_certificates_are_refused(start_micropython, tmp_path):
    good_ca, other_ca = tmp_path / "ca", tmp_path / "other-ca"
    good = broker_cert(good_ca, "broker")
    wrong_name = broker_cert(good_ca, "elsewhere")  # signed by the right CA, for another host
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    expired = broker_cert(tmp_path / "ca-expired", "broker", days=1, not_before=old)
    # The expired one is signed by its own CA: trust that CA for its car, so
    # the date is the only thing wrong with it.
    broker_cert(other_ca, "broker")
    self_signed = broker_cert(tmp_path / "self", "broker", self_signed=True)
    ports = {name: free_port() for name in ("good", "wrong_name", "expired", "self_signed")}
    extra = ""
    for name, d in (("good", good), ("wrong_name", wrong_name), ("expired", expired),
                    ("self_signed", self_signed)):
        extra += ("listener %d 127.0.0.1\ncertfile %s/cert.pem\nkeyfile %s/key.pem\n"
                  % (ports[name], d, d))
    broker = Broker(tmp_path, extra=extra)
    cases = {
        # car id: (listener, fleet settings, what its status must say)
        "good-ca": ("good", {"ca": str(good_ca / "ca.crt.pem")}, None),
        # A self-signed broker pinned by its own certificate as fleet.ca.
        "pinned": ("self_signed", {"ca": os.path.join(self_signed, "cert.pem")}, None),
        "wrong-ca": ("good", {"ca": str(other_ca / "ca.crt.pem")}, "not signed by fleet.ca (wrong CA)"),
        "wrong-name": ("wrong_name", {"ca": str(good_ca / "ca.crt.pem")},
                       "not for localhost (hostname mismatch)"),
        "expired": ("expired", {"ca": str(tmp_path / "ca-expired" / "ca.crt.pem")}, "has expired"),
        "other-pin": ("self_signed", {"ca": os.path.join(good, "cert.pem")}, "not signed by fleet.ca"),
    }
    try:
        cars = {}
        for car_id, (listener, fleet, _) in cases.items():
            url = "mqtts://localhost:%d" % ports[listener]
            cars[car_id] = start_micropython("main.py", ["--config", car_config(
                tmp_path, car_id, url, fleet=fleet)])
        for car_id, (_, _, reason) in cases.items():
            proc = cars[car_id]
            if reason is None:
                s = wait_status(proc, lambda s: s["connected"])
                assert s["error"] is None and s["connects"] == 1
            else:
                s = wait_status(proc, lambda s: s["error"] is not None)
                assert not s["connected"] and s["connects"] == 0
                assert "broker certificate refused" in s["error"] and reason in s["error"], s
                assert reason in proc.output()  # on the console too
                print("%-10s %s" % (car_id, s["error"]))
    finally:
        broker.kill()


@pytest.mark.slow
@pytest.mark.skipif(not have_wsclient(), reason="needs lib/wsclient (MQTT over WebSocket)")
@pytest.mark.skipif(not can_unshare(), reason="needs unshare -n (mosquitto's WebSocket listener binds every interface)")
def test_fleet_over_wss_in_a_network_namespace():
    result = run_in_netns(os.path.join("tests", "fleet", "netns", "test_fleet_wss_inside.py"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout, result.stdout[-2000:]
    for line in result.stdout.splitlines():
        if line.startswith("car "):
            print(line)


@pytest.mark.slow
def test_a_relative_fleet_ca_is_read_from_the_config_files_folder(start_micropython, tmp_path):
    # The car runs with the repository as its working directory; its config
    # sits elsewhere, and fleet.ca names the CA relative to the config's folder.
    conf = tmp_path / "conf"
    (conf / "certs").mkdir(parents=True)
    good = broker_cert(conf / "certs", "broker")
    port = free_port()
    broker = Broker(tmp_path, extra="listener %d 127.0.0.1\ncertfile %s/cert.pem\nkeyfile %s/key.pem\n"
                    % (port, good, good))
    url = "mqtts://localhost:%d" % port
    cases = {"below": "certs/ca.crt.pem", "beside": "../conf/certs/ca.crt.pem"}
    try:
        cars = {car_id: start_micropython("main.py", ["--config", car_config(
            conf, car_id, url, fleet={"ca": ca})]) for car_id, ca in cases.items()}
        # Not found from the car's own working directory: only the config's folder has it.
        assert not os.path.exists(cases["below"]) and os.path.exists(conf / cases["below"])
        missing = start_micropython("main.py", ["--config", car_config(
            conf, "missing", url, fleet={"ca": "certs/none.pem"})])
        for car_id, proc in cars.items():
            s = wait_status(proc, lambda s: s["connected"])
            assert s["error"] is None and s["connects"] == 1, (car_id, s)
        # The error names the path it tried: the config's folder joined with fleet.ca.
        want = "config error: fleet.ca: cannot read %s/certs/none.pem (fleet link off)" % conf
        wait_until(lambda: want in missing.output(), 10, what="%r on the console" % want)
        with urllib.request.urlopen("http://127.0.0.1:%d/" % missing.port, timeout=5) as r:
            assert r.status == 200  # the car runs on without its link
    finally:
        broker.kill()
