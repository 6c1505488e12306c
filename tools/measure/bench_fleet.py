#!/usr/bin/env python3
"""make bench-fleet: the fleet link through a real mosquitto, in one run.

    python tools/measure/bench_fleet.py [--cars 20] [--pings 300] [--seconds 10] [--telemetry-hz 5]

- round trip through the broker: `ping` on tether/<id>/cmd -> `pong` on
  tether/<id>/reply, one at a time, p50/p99, beside the direct round trip of
  a `ping` over the same car's own WebSocket;
- telemetry delivered per second from N cars (MicroPython processes running
  the real firmware with the simulated car) to one subscriber, against what
  they are configured to send.
Clients are this CPython process (lib/mqtt's session, websockets). mosquitto
listens on 127.0.0.1 only. Writes reports/bench-fleet.md and .json.
"""
import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.common import LIB, ROOT, free_port, stop_all, wait_port as _listening  # noqa: E402
sys.path.insert(0, LIB)
from mqtt.session import Session  # noqa: E402
from mqtt.transport import opener  # noqa: E402

REPORTS = os.path.join(ROOT, "reports")


def wait_port(port, proc, timeout=10):
    if not _listening(port, proc, timeout):
        raise RuntimeError("nothing listening on port %d (or the process exited)" % port)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def bench(args, broker_url, car_ports):
    import websockets

    seen = {}
    replies = asyncio.Queue()
    counts = {"telemetry": 0}

    def got(topic, payload, retain):
        parts = topic.split("/")
        if parts[2] == "status":
            seen[parts[1]] = json.loads(payload).get("online")
        elif parts[2] == "telemetry":
            counts["telemetry"] += 1
        elif parts[2] == "reply":
            replies.put_nowait(json.loads(payload))
    s = Session(opener(broker_url), "bench", subscriptions=[("tether/+/status", 1), ("tether/+/telemetry", 0),
                                                            ("tether/car-01/reply", 0)],
                on_message=got, log=lambda *a: None, max_queue=64)
    task = asyncio.ensure_future(s.run())
    t0 = time.monotonic()
    ids = ["car-%02d" % (i + 1) for i in range(args.cars)]
    while not all(seen.get(i) for i in ids):
        if time.monotonic() - t0 > 20:
            raise RuntimeError("cars not online: %s" % [i for i in ids if not seen.get(i)])
        await asyncio.sleep(0.05)
    online_s = time.monotonic() - t0

    # telemetry delivered per second
    await asyncio.sleep(1)
    c0, w0 = counts["telemetry"], time.monotonic()
    await asyncio.sleep(args.seconds)
    delivered = (counts["telemetry"] - c0) / (time.monotonic() - w0)

    # round trip through the broker
    broker_rtt = []
    for i in range(args.pings):
        t = time.perf_counter()
        s.publish("tether/car-01/cmd", json.dumps({"type": "ping", "id": i}))
        while True:
            msg = await asyncio.wait_for(replies.get(), 5)
            if msg.get("id") == i:
                break
        broker_rtt.append((time.perf_counter() - t) * 1000)

    # the same car, directly over its WebSocket
    direct_rtt = []
    async with websockets.connect("ws://127.0.0.1:%d/ws" % car_ports[0], max_queue=None) as ws:
        for i in range(args.pings):
            t = time.perf_counter()
            await ws.send(json.dumps({"type": "ping", "id": i}))
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "pong" and msg["id"] == i:
                    break
            direct_rtt.append((time.perf_counter() - t) * 1000)
    await s.close()
    await task
    return {
        "cars": args.cars, "subscriber_saw_all_online_s": round(online_s, 2), "telemetry_hz_each": args.telemetry_hz,
        "telemetry_expected_per_s": args.cars * args.telemetry_hz,
        "telemetry_delivered_per_s": round(delivered, 1),
        "broker_rtt_ms": {"p50": round(pct(broker_rtt, 50), 2), "p99": round(pct(broker_rtt, 99), 2)},
        "direct_rtt_ms": {"p50": round(pct(direct_rtt, 50), 2), "p99": round(pct(direct_rtt, 99), 2)},
        "pings": args.pings,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cars", type=int, default=20)
    parser.add_argument("--pings", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--telemetry-hz", type=int, default=5)
    parser.add_argument("--reports", default=REPORTS, help="where bench-fleet.md/.json go")
    parser.add_argument("--micropython", default=os.path.join(os.path.dirname(sys.executable), "micropython"))
    parser.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-fleet-")
    port = free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n" % port)
        if os.geteuid() == 0:
            f.write("user root\n")
    procs = [subprocess.Popen([args.mosquitto, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    car_ports = []
    try:
        wait_port(port, procs[0])
        for i in range(args.cars):
            car_id = "car-%02d" % (i + 1)
            cfg = {"wifi": {"hostname": car_id}, "hardware": {"mode": "sim"}, "limits": {"telemetry_hz": 10},
                   "fleet": {"url": "mqtt://127.0.0.1:%d" % port, "telemetry_hz": args.telemetry_hz}}
            path = os.path.join(tmp, car_id + ".json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            car_port = free_port()
            procs.append(subprocess.Popen([args.micropython, "main.py", "--port", str(car_port), "--config", path],
                                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
            car_ports.append(car_port)
        for p, cp in zip(procs[1:], car_ports):
            wait_port(cp, p)
        r = asyncio.run(bench(args, "mqtt://127.0.0.1:%d" % port, car_ports))
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        "# Fleet benchmark (make bench-fleet)",
        "",
        "%d simulated cars (MicroPython Unix port, real firmware) on one mosquitto %s, loopback, %d cores."
        % (r["cars"], subprocess.run([args.mosquitto, "-h"], capture_output=True, text=True).stdout.split("\n")[0]
           .replace("mosquitto version ", ""), os.cpu_count()),
        "",
        "| figure | value |",
        "|---|---|",
        "| round trip through the broker (`ping` on cmd -> `pong` on reply), %d pings | p50 %.2f ms, p99 %.2f ms |"
        % (r["pings"], r["broker_rtt_ms"]["p50"], r["broker_rtt_ms"]["p99"]),
        "| direct round trip (`ping` over the car's WebSocket), same car | p50 %.2f ms, p99 %.2f ms |"
        % (r["direct_rtt_ms"]["p50"], r["direct_rtt_ms"]["p99"]),
        "| telemetry delivered to one subscriber, %d cars x %d Hz | %.1f messages/s (%d sent per second) |"
        % (r["cars"], r["telemetry_hz_each"], r["telemetry_delivered_per_s"], r["telemetry_expected_per_s"]),
    ]
    os.makedirs(args.reports, exist_ok=True)
    with open(os.path.join(args.reports, "bench-fleet.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.reports, "bench-fleet.json"), "w") as f:
        json.dump(r, f, indent=1)
    print("\n".join(lines))
    print("\nwritten: %s/bench-fleet.md, .json" % os.path.relpath(args.reports, ROOT))


if __name__ == "__main__":
    main()
