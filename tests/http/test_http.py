"""HTTP side of the server: limits, static files, traversal, methods."""
import gzip
import os
import socket
import time

import pytest

from support.micropython import MicroPythonProcess
from support.wsraw import raw_request, request

SECRET = b"top secret outside web root"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "secret.txt").write_bytes(SECRET)
    web = root / "web"
    (web / "css").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>Tether</title>")
    (web / "css" / "app.css").write_text("body{color:#000}")
    (web / "app.js").write_text("console.log('plain');" * 20)
    (web / "app.js.gz").write_bytes(gzip.compress(b"console.log('gz');" * 20))
    (web / "big.bin").write_bytes(os.urandom(50000))
    (web / "board.js.gz").write_bytes(gzip.compress(b"only compressed, as on a board"))
    (web / ".hidden").write_text("hidden")
    return root


@pytest.fixture(scope="module")
def server(site):
    p = MicroPythonProcess("tests/support/servers/app_server.py",
                           ["--static", str(site / "web"), "--request-timeout-ms", "500"])
    yield p
    p.stop()


def test_index_served_with_content_type(server):
    status, headers, body = request(server.port, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert body == b"<!doctype html><title>Tether</title>"
    status, headers, body = request(server.port, "/css/app.css")
    assert (status, headers["content-type"].split(";")[0]) == (200, "text/css")


def test_gzip_variant_only_when_accepted(server):
    status, headers, body = request(server.port, "/app.js", {"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == b"console.log('gz');" * 20
    assert headers["content-type"].startswith("text/javascript")
    status, headers, body = request(server.port, "/app.js")
    assert "content-encoding" not in headers
    assert body == b"console.log('plain');" * 20


def test_etag_gives_304(server):
    status, headers, _ = request(server.port, "/css/app.css")
    etag = headers["etag"]
    status, headers, body = request(server.port, "/css/app.css", {"If-None-Match": etag})
    assert status == 304 and body == b""
    status, _, _ = request(server.port, "/css/app.css", {"If-None-Match": '"other"'})
    assert status == 200


def test_large_file_streamed_intact(server, site):
    status, headers, body = request(server.port, "/big.bin")
    assert status == 200
    assert int(headers["content-length"]) == 50000
    assert body == (site / "web" / "big.bin").read_bytes()


def test_head_has_no_body(server):
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"HEAD /css/app.css HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"\r\n\r\n")


def test_missing_file_404(server):
    assert request(server.port, "/nope.html")[0] == 404
    assert request(server.port, "/.hidden")[0] == 404


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/css/../../secret.txt",
    "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt", "/..\\secret.txt", "/%5c..%5csecret.txt",
    "//etc/passwd", "/./index.html", "/css/%00app.css",
])
def test_traversal_refused(server, path):
    status, _, body = request(server.port, path)
    assert status in (400, 404)
    assert SECRET not in body


def test_absolute_path_refused(server):
    status, _, body = raw_request(server.port, b"GET http://x/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400
    status, _, body = request(server.port, "/etc/passwd")
    assert status == 404


def test_methods_other_than_get_head_405(server):
    status, headers, _ = request(server.port, "/index.html", method="POST")
    assert status == 405 and "GET" in headers["allow"]
    assert request(server.port, "/index.html", method="DELETE")[0] == 405


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n", b"GET /\r\n\r\n", b"GET / HTTP/1.1 extra\r\n\r\n",
    b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
    b"GET / FTP/1.0\r\n\r\n", b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_malformed_request_400(server, data):
    assert raw_request(server.port, data)[0] == 400


def test_uri_too_long_414(server):
    assert request(server.port, "/" + "a" * 600)[0] == 414
    # Refused as soon as the line is too long, without waiting for the end of the head.
    assert raw_request(server.port, b"GET /" + b"a" * 2000)[0] == 414


def test_headers_too_large_431(server):
    assert request(server.port, "/", {"X-Big": "b" * 3000})[0] == 431
    many = {"X-H%d" % i: "v" for i in range(40)}
    assert request(server.port, "/", many)[0] == 431


def test_incomplete_request_times_out_408(server):
    t0 = time.monotonic()
    status, _, body = raw_request(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert status == 408
    assert 0.4 < time.monotonic() - t0 < 3


def test_server_survives_all_of_the_above(server):
    assert request(server.port, "/")[0] == 200
    assert server.poll() is None


def test_if_none_match_star_gives_304(server):
    status, headers, body = request(server.port, "/css/app.css", {"If-None-Match": "*"})
    assert status == 304 and body == b""
    status, _, _ = request(server.port, "/css/app.css", {"If-None-Match": '"other"'})
    assert status == 200


@pytest.mark.parametrize("value,gzipped", [
    ("gzip;q=0", False), ("gzip; q=0.0, deflate", False), ("*;q=0", False), ("identity", False),
    ("gzip;q=0.5", True), ("deflate, *", True), ("GZIP", True), ("*, gzip;q=0", False),
])
def test_accept_encoding_q_values_are_honoured(server, value, gzipped):
    status, headers, body = request(server.port, "/app.js", {"Accept-Encoding": value})
    assert status == 200 and ("content-encoding" in headers) == gzipped, (value, headers)
    # Only a .gz copy (a board's web/): 406 with a body that says why, on any host.
    status, headers, body = request(server.port, "/board.js", {"Accept-Encoding": value})
    if gzipped:
        assert status == 200 and headers["content-encoding"] == "gzip"
    else:
        assert status == 406 and b"gzip" in body, (status, body)


@pytest.mark.parametrize("head", [b"GET / HTTP/1.1\nHost: x\n\n", b"GET / HTTP/1.1\r\nHost: x\n\n"])
def test_bare_lf_line_endings_get_400_at_once(server, head):
    started = time.monotonic()
    status, _, body = raw_request(server.port, head)
    elapsed = time.monotonic() - started
    # The server's request timeout is 500 ms here (6 s on the car): a 400 well before it.
    assert status == 400 and b"CRLF" in body and elapsed < 0.3, (status, body, elapsed)
