"""Property-based fuzzing of the HTTP side (lib/wsserver/http.py, and answer.py's static
files, handshake.py) under CPython with Hypothesis: random and mutated request heads
raise nothing but HTTPError (with a status we document), valid heads parse
back to what was sent, and no path that leaves the static folder survives
safe_relative_path. `-s` prints the example counts."""
import sys
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import LIB
sys.path.insert(0, LIB)
from wsserver.errors import HTTPError  # noqa: E402
from wsserver.upgrade import choose_subprotocol  # noqa: E402
from wsserver.http import check_upgrade  # noqa: E402
from wsserver.http import find_head_end, parse_request  # noqa: E402
from wsserver.answer import safe_relative_path  # noqa: E402

pytestmark = [pytest.mark.fuzz]

SETTINGS = settings(max_examples=400, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
PARSE_STATUSES = {400, 414, 431, 505}
EXAMPLES = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    print("\nfuzz http examples:", dict(EXAMPLES), "total", sum(EXAMPLES.values()))


def parse_or_error(head, max_uri=512, max_headers=32):
    try:
        req = parse_request(head, max_uri, max_headers)
    except HTTPError as e:
        assert e.status in PARSE_STATUSES, e.status
        assert isinstance(e.reason, str) and e.reason
        return None
    assert isinstance(req.method, str) and isinstance(req.path, str) and req.path.startswith("/")
    assert len(req.target) <= max_uri
    assert len(req.headers) <= max_headers
    for k, v in req.headers.items():
        assert k == k.lower() and isinstance(v, str)
    for k, v in req.query.items():
        assert isinstance(k, str) and isinstance(v, str)
    return req


def head_end_or_error(data, max_uri=512):
    try:
        end = find_head_end(data, max_uri)
    except HTTPError as e:
        assert e.status in (400, 414)  # 400: a bare LF
        return str(e.status)
    assert end == -1 or data[end - 4:end] == b"\r\n\r\n"
    return end


token = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!$&'*+^`|", min_size=1,
                max_size=12)
header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF, blacklist_characters="\x7f"),
                       max_size=40).map(str.strip)
path_chars = st.text("abc/._-~%2e5cfAF?=&+é\\\x00", max_size=40)


@st.composite
def valid_head(draw):
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", draw(token)]))
    target = "/" + draw(st.text("abcdefgh/_-.~=&", max_size=40))
    headers = draw(st.dictionaries(token.map(str.lower), header_value, max_size=10))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
    lines = ["%s %s %s" % (method, target, version)] + ["%s: %s" % kv for kv in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), method, target, version, headers


def mutate(data, ops):
    data = bytearray(data)
    for kind, pos, byte in ops:
        if not data:
            break
        pos %= len(data)
        if kind == 0:
            data[pos] = byte
        elif kind == 1:
            data.insert(pos, byte)
        elif kind == 2:
            del data[pos]
        else:
            data[pos:pos] = data[pos:pos + 8]  # duplicate a run
    return bytes(data)


mutations = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 16),
                               st.sampled_from(b" :\r\n%/?=\x00\x7f\xff\xc3" + bytes(range(0x41, 0x47)))),
                     min_size=1, max_size=5)


@SETTINGS
@given(st.binary(max_size=700), st.sampled_from([16, 64, 512]), st.integers(1, 40))
def test_random_bytes(data, max_uri, max_headers):
    EXAMPLES["random_bytes"] += 1
    head_end_or_error(data, max_uri)
    parse_or_error(data, max_uri, max_headers)


@SETTINGS
@given(valid_head())
def test_valid_heads_parse_back(sample):
    EXAMPLES["valid_heads"] += 1
    data, method, target, version, headers = sample
    assert find_head_end(data, 512) == len(data)
    req = parse_request(data)
    assert (req.method, req.target, req.version) == (method, target, version)
    assert req.path == target.partition("?")[0]
    assert req.headers == headers


@SETTINGS
@given(valid_head(), mutations, st.lists(st.integers(1, 50), max_size=10))
def test_mutated_heads_only_http_errors(sample, ops, chunks):
    EXAMPLES["mutated_heads"] += 1
    data = mutate(sample[0], ops)
    whole = head_end_or_error(data)
    # As the server reads it: growing prefixes until the head ends.
    got, pos, found = b"", 0, -1
    for n in chunks + [len(data)]:
        got += data[pos:pos + n]
        pos += n
        found = head_end_or_error(got)
        if found != -1:
            break
    # Fed in pieces, the head ends at the same place (or the request line
    # was already too long: 414 as early as possible).
    assert found == whole or found == "414"
    req = parse_or_error(data if whole in (-1, "400", "414") else data[:whole])
    if req is not None:
        # The handshake checks on whatever parsed: HTTPError or fine, nothing else.
        try:
            check_upgrade(req)
        except HTTPError as e:
            assert e.status in (400, 405, 426)
        choose_subprotocol(req, ("a", "b"))


@SETTINGS
@given(st.dictionaries(st.sampled_from(["host", "upgrade", "connection", "sec-websocket-key",
                                        "sec-websocket-version", "sec-websocket-protocol"]),
                       st.text(max_size=30), max_size=6),
       st.sampled_from(["GET", "POST"]), st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
def test_handshake_headers(headers, method, version):
    EXAMPLES["handshake_headers"] += 1
    lines = ["%s /ws %s" % (method, version)] + ["%s: %s" % (k, v.replace("\r", "").replace("\n", ""))
                                                  for k, v in headers.items()]
    req = parse_or_error(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    if req is None:
        return
    try:
        check_upgrade(req)
    except HTTPError as e:
        assert e.status in (400, 405, 426)
    choose_subprotocol(req, ("chat",))


@SETTINGS
@given(st.one_of(path_chars.map(lambda p: "/" + p), st.text(max_size=40).map(lambda p: "/" + p)))
def test_static_paths_never_leave_the_folder(raw):
    EXAMPLES["static_paths"] += 1
    raw = raw.partition("?")[0]
    try:
        rel = safe_relative_path(raw)
    except HTTPError as e:
        assert e.status in (400, 404)
        return
    assert not rel.startswith("/")
    for seg in rel.split("/"):
        assert seg and seg not in (".", "..") and not seg.startswith(".")
        assert "\\" not in seg and "\x00" not in seg
