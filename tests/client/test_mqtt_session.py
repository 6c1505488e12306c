"""The asyncio MQTT session (lib/mqtt/session.py) against a real mosquitto,
under CPython: publish/subscribe, retained messages and the will, a refused
login named, keepalive, reconnect with backoff, QoS 1 redelivery after a
reconnect, a bounded queue that never blocks the caller, and a malformed
packet from the broker ending the connection with a clear error."""
import asyncio
import signal
import subprocess
import time

import pytest

from support.processes import free_port
from support.mqtt import Broker, Client, have_mosquitto, run_until
from mqtt.session import Session
from mqtt.dial import split_url
from mqtt.transport import opener

pytestmark = pytest.mark.skipif(not have_mosquitto(), reason="needs mosquitto (apt install mosquitto)")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_publish_subscribe_qos0_qos1_and_retained(broker):
    async def main():
        sub = await Client(broker.url, "sub", [("t/#", 1)]).start()
        pub = await Client(broker.url, "pub").start()
        await sub.wait(lambda: sub.session.next_id and not sub.session.urgent, 2, "subscribed")
        await asyncio.sleep(0.1)
        pub.publish("t/a", b"zero")
        pub.publish("t/b", b"one", qos=1)
        pub.publish("t/r", b"kept", qos=1, retain=True)
        await sub.wait(lambda: len(sub.messages) >= 3, 5, "3 messages")
        assert [(m[0], m[1]) for m in sub.messages] == [("t/a", b"zero"), ("t/b", b"one"), ("t/r", b"kept")]
        await pub.wait(lambda: not pub.session.inflight, 2, "PUBACKs")
        late = await Client(broker.url, "late", [("t/r", 0)]).start()
        await late.wait(lambda: late.on("t/r"), 5, "the retained message")
        assert late.on("t/r")[0][1:3] == (b"kept", True)
        for c in (sub, pub, late):
            await c.stop()
    run(main())


@pytest.mark.slow
def test_will_is_published_when_the_connection_dies_not_on_a_clean_close(broker):
    async def main():
        watcher = await Client(broker.url, "watcher", [("w/#", 1)]).start()
        await asyncio.sleep(0.2)
        will = ("w/dies", b'{"online": false}', 1, True)
        dies = await Client(broker.url, "dies", will=will).start()
        polite = await Client(broker.url, "polite", will=("w/polite", b"gone", 1, True)).start()
        await polite.stop()  # DISCONNECT: the broker drops the will
        dies.task.cancel()  # no DISCONNECT: the socket just closes
        dies.session.transport.writer.transport.abort()
        await watcher.wait(lambda: watcher.on("w/dies"), 5, "the will")
        assert watcher.on("w/dies")[0][1] == b'{"online": false}'
        await asyncio.sleep(0.3)
        assert not watcher.on("w/polite")
        await watcher.stop()
    run(main())


def test_a_refused_login_names_the_connack_code(tmp_path):
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "car", "secret"], check=True,
                   capture_output=True)
    b = Broker(tmp_path, extra="password_file %s\n" % pw)
    b_conf = open(b.conf).read()
    assert "allow_anonymous true" in b_conf
    b.kill()
    with open(b.conf, "w") as f:
        f.write(b_conf.replace("allow_anonymous true", "allow_anonymous false"))
    b.start()
    logs = []

    async def main():
        s = Session(opener(b.url), "x", username="car", password="wrong", log=logs.append,
                    backoff_min_ms=50)
        await run_until(s, lambda: logs)
        ok = await Client(b.url, "y", username="car", password="secret").start()
        await ok.stop()
        return s
    try:
        s = run(main())
    finally:
        b.kill()
    assert logs and "CONNACK return code 5: not authorized" in logs[0], logs
    assert "reconnecting in" in logs[0]
    assert s.connects == 0


@pytest.mark.slow
def test_keepalive_notices_a_silent_broker_and_reconnects_after_restart(broker):
    async def main():
        c = Client(broker.url, "k", [("k/#", 0)], keepalive_s=1)
        errors = []
        c.session.log = errors.append
        await c.start()
        broker.proc.send_signal(signal.SIGSTOP)  # alive, accepts nothing: a stalled broker
        t0 = time.monotonic()
        await c.wait(lambda: not c.session.connected, 3, "keepalive to notice")
        noticed = time.monotonic() - t0
        await c.wait(lambda: errors, 1, "the error")
        assert "no packet from the broker" in errors[0], errors
        broker.kill()
        broker.start()
        t1 = time.monotonic()
        await c.wait(lambda: c.session.connected, 5, "reconnect")
        back = time.monotonic() - t1
        c.publish("k/x", b"after")  # the subscription was renewed on the new broker
        await c.wait(lambda: c.on("k/x"), 3, "own message back")
        await c.stop()
        return noticed, back
    noticed, back = run(main())
    print("stalled broker noticed after %.2f s (keepalive 1 s); back %.2f s after its restart" % (noticed, back))
    assert noticed < 1.6, noticed
    assert back < 2.0, back


def test_unacknowledged_qos1_is_sent_again_after_a_reconnect(broker):
    async def main():
        c = await Client(broker.url, "q", keepalive_s=1).start()
        broker.proc.send_signal(signal.SIGSTOP)
        c.publish("q/r", b"once", qos=1, retain=True)
        await c.wait(lambda: c.session.inflight, 2, "in flight")
        broker.kill()  # never acknowledged
        broker.start()
        await c.wait(lambda: c.session.connected and not c.session.inflight, 6, "redelivered and acked")
        late = await Client(broker.url, "late", [("q/r", 1)]).start()
        await late.wait(lambda: late.on("q/r"), 3, "the redelivered retained message")
        assert late.on("q/r")[0][1] == b"once"
        await c.stop()
        await late.stop()
    run(main())


def test_publish_never_blocks_and_the_queue_drops_oldest_telemetry_first(broker):
    async def main():
        c = await Client(broker.url, "slow").start()
        c.session.max_queue = 8
        broker.proc.send_signal(signal.SIGSTOP)
        c.publish("s/status", b"keep me", qos=1, retain=True)
        t0 = time.perf_counter()
        for i in range(20000):  # far more than the socket buffers hold
            c.publish("s/telemetry", b"%d" % i + b"." * 200)
        spent = time.perf_counter() - t0
        q = c.session.queue
        assert len(q) <= 8
        assert ["s/status", b"keep me", 1, True] in q or 1 in [v[2] for v in c.session.inflight.values()]
        assert q[-1][1].startswith(b"19999")  # the newest is kept
        assert c.session.dropped > 19000
        broker.proc.send_signal(signal.SIGCONT)
        await c.stop()
        return spent
    spent = run(main())
    print("20000 publishes to a stalled broker took %.3f s" % spent)
    assert spent < 2.0, spent  # ~20 us per call; it never waited on the socket


def test_qos0_published_while_offline_is_dropped_not_queued(tmp_path):
    s = Session(opener("mqtt://127.0.0.1:%d" % free_port()), "off", log=lambda *a: None)
    assert s.publish("a/b", b"x") is False and s.dropped == 1 and not s.queue
    assert s.publish("a/b", b"x", qos=1) is True and len(s.queue) == 1


def test_backoff_doubles_with_jitter_up_to_the_cap():
    s = Session(None, "b", backoff_min_ms=500, backoff_max_ms=8000)
    for failures, full in ((1, 500), (2, 1000), (3, 2000), (4, 4000), (5, 8000), (9, 8000), (40, 8000)):
        s.failures = failures
        values = [s.backoff() for _ in range(200)]
        assert all(full // 2 <= v <= full for v in values), (failures, min(values), max(values))
        assert max(values) - min(values) > full // 4  # jittered, not one fixed value


def test_a_malformed_packet_from_the_broker_ends_the_connection_with_a_clear_error():
    # A scripted broker on a real socket: CONNACK, then a PUBLISH with QoS 3.
    hits = []

    async def main():
        async def handle(reader, writer):
            hits.append(await reader.read(100))
            writer.write(b"\x20\x02\x00\x00" + b"\x36\x03\x00\x01a")
            await writer.drain()
            await asyncio.sleep(1)
            writer.close()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        logs = []
        s = Session(opener("mqtt://127.0.0.1:%d" % port), "m", log=logs.append, backoff_min_ms=50)
        await run_until(s, lambda: len(logs) >= 2)
        server.close()
        return s, logs
    s, logs = run(main())
    assert "PUBLISH with QoS 3" in logs[0], logs
    assert s.connects >= 2  # it reconnected after the error
    assert hits[0][0] == 0x10  # it had sent CONNECT


def test_split_url():
    assert split_url("mqtt://broker") == ("mqtt", "broker", 1883, "/")
    assert split_url("mqtts://b.example:8884") == ("mqtts", "b.example", 8884, "/")
    assert split_url("ws://127.0.0.1:9001/mqtt") == ("ws", "127.0.0.1", 9001, "/mqtt")
    assert split_url("wss://h") == ("wss", "h", 443, "/")
    assert split_url("mqtt://[::1]:1884") == ("mqtt", "::1", 1884, "/")
    for bad, word in (("http://x", "scheme http"), ("mqtt://", "no host"), ("mqtt://h:0", "port 0"),
                      ("mqtt://h:x", "port x"), ("mqtt://h/p", "no path"), ("h:1883", "URL")):
        with pytest.raises(ValueError, match=word):
            split_url(bad)
