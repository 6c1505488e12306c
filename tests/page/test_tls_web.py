"""The phone page over https in real Chromium, the test CA trusted the way a
maker's computer trusts it: added to an NSS certificate database (what
Chromium on Linux reads, in $HOME/.pki/nssdb) with certutil, in a HOME made
for the test. Certificate checks stay on: the chain is verified up to that CA
and the name (localhost) against the certificate, as for any site. (Chromium's
--ignore-certificate-errors-spki-list would instead accept any certificate
error for one pinned key, the name included, so it is not used.)

Needs certutil (Debian: libnss3-tools); skipped without it, failed under CI."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from support.tls import client_context, make_certs, tls_config
from support import ROOT
from support import unavailable
from support.browser import (CHROME_ARGS, Fingers, Observer, find_chromium, moving_forward,
                             push_stick, stopped, text, wait_online)

pytestmark = [pytest.mark.browser]


def need(what, why):
    unavailable("%s (%s)" % (what, why))


class TLSObserver(Observer):
    def __init__(self, url, ctx):
        from websockets.sync.client import connect
        self.ws = connect(url, open_timeout=10, legacy=True, proxy=None, compression=None,
                          max_queue=None, ssl=ctx)
        self.hello = json.loads(self.ws.recv(timeout=5))
        self.last = None


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs")
    return out, make_certs(out)


@pytest.fixture(scope="module")
def trusting_home(tmp_path_factory, certs):
    """A HOME whose NSS database trusts the test CA for websites (C,,)."""
    certutil = shutil.which("certutil")
    if not certutil:
        need("no certutil", "apt-get install libnss3-tools")
    home = tmp_path_factory.mktemp("home")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run([certutil, "-d", "sql:%s" % db, "-N", "--empty-password"], check=True)
    subprocess.run([certutil, "-d", "sql:%s" % db, "-A", "-t", "C,,", "-n", "tether-test-ca",
                    "-i", str(certs[0] / "ca.crt.pem")], check=True)
    listed = subprocess.run([certutil, "-d", "sql:%s" % db, "-L"], capture_output=True, text=True).stdout
    assert "tether-test-ca" in listed
    return str(home)


def launch(playwright, home):
    path = find_chromium()
    if not path:
        need("no Chromium", "apt-get install chromium")
    return playwright.chromium.launch(executable_path=path, args=CHROME_ARGS,
                                      env=dict(os.environ, HOME=home))


@pytest.fixture(scope="module")
def playwright_api():
    sys.path.insert(0, ROOT)
    try:
        from tools.web import build_web
    finally:
        sys.path.pop(0)
    assert build_web.main([]) == 0
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        yield p


def test_page_over_https_drives_the_car(start_micropython, tmp_path, certs, trusting_home, playwright_api):
    ca, car_dir = certs
    proc = start_micropython("main.py", args=["--config", tls_config(
        tmp_path, car_dir, limits={"telemetry_hz": 20, "deadman_ms": 5000})])
    url = "https://localhost:%d/" % proc.port
    browser = launch(playwright_api, trusting_home)
    errors = []
    try:
        ctx = browser.new_context(**playwright_api.devices["Pixel 7"])
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        wait_online(page)
        # The page picked wss:// by itself, and the certificate was valid for it.
        assert page.evaluate("location.protocol") == "https:"
        observer = TLSObserver("wss://localhost:%d/ws" % proc.port, client_context(ca))
        try:
            start = observer.latest()
            assert stopped(start)
            fingers = Fingers(page)
            push_stick(page, fingers)
            observer.wait(lambda t: moving_forward(t) and t["pose"]["x"] > start["pose"]["x"] + 0.05,
                          what="forward motion from the stick over wss")
            page.wait_for_selector("#role.driver")
            assert text(page, "#role") == "Driver"
            fingers.up(1)
            observer.wait(stopped, timeout=2.0, what="a stop after release")
        finally:
            observer.ws.close()
        page.screenshot(path=os.path.join(ROOT, "test-artifacts", "tls-page.png"))
        ctx.close()
    finally:
        browser.close()
    assert not errors, errors


def test_page_is_refused_without_the_ca(start_micropython, tmp_path, certs, playwright_api, tmp_path_factory):
    """The same browser without the CA in its database: the page does not load
    (net::ERR_CERT_AUTHORITY_INVALID), so the trust above came from the CA."""
    ca, car_dir = certs
    proc = start_micropython("main.py", args=["--config", tls_config(tmp_path, car_dir)])
    browser = launch(playwright_api, str(tmp_path_factory.mktemp("empty-home")))
    try:
        page = browser.new_page()
        with pytest.raises(Exception, match="ERR_CERT_AUTHORITY_INVALID"):
            page.goto("https://localhost:%d/" % proc.port)
    finally:
        browser.close()
