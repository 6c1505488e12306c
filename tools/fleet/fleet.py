"""make fleet: one mosquitto (TCP and WebSocket listeners, config from
tools/fleet/mosquitto.conf) and N simulated cars connected to it, each with
its own id (car-1..car-N) and local page (port 8081..). Waits until every
car's retained status says online, prints the addresses, runs until Ctrl-C.

  python tools/fleet/fleet.py [--cars 3] [--tcp-port 1883] [--ws-port 9001] [--base-port 8081]
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.common import LIB, ROOT, stop_all  # noqa: E402
sys.path.insert(0, LIB)
from mqtt.session import Session  # noqa: E402
from mqtt.transport import opener  # noqa: E402


def write_configs(out, args):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(ROOT, "tools", "fleet", "mosquitto.conf")) as f:
        conf = f.read()
    conf = (conf.replace("TCP_PORT", str(args.tcp_port)).replace("WS_PORT", str(args.ws_port))
            .replace("HTTP_DIR", args.web).replace("DIR", out))
    if os.geteuid() == 0:  # mosquitto would switch to its own user, who cannot write build/
        conf += "user root\n"
    conf_path = os.path.join(out, "mosquitto.conf")
    with open(conf_path, "w") as f:
        f.write(conf)
    cars = []
    for i in range(1, args.cars + 1):
        car_id = "car-%d" % i
        cfg = {"wifi": {"hostname": car_id}, "hardware": {"mode": "sim"},
               "fleet": {"url": "mqtt://127.0.0.1:%d" % args.tcp_port}}
        path = os.path.join(out, car_id + ".json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        cars.append((car_id, path, args.base_port + i - 1))
    return conf_path, cars


async def wait_online(url, ids, timeout):
    online = set()

    def got(topic, payload, retain):
        try:
            if json.loads(payload).get("online"):
                online.add(topic.split("/")[1])
        except ValueError:
            pass
    s = Session(opener(url), "make-fleet-%d" % os.getpid(), subscriptions=[("tether/+/status", 1)],
                on_message=got, log=lambda *a: None, backoff_min_ms=100, backoff_max_ms=500)
    task = asyncio.ensure_future(s.run())
    deadline = time.monotonic() + timeout
    while not set(ids) <= online and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await s.close()
    await task
    return online


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cars", type=int, default=int(os.environ.get("N", "3")))
    parser.add_argument("--tcp-port", type=int, default=1883)
    parser.add_argument("--ws-port", type=int, default=9001)
    parser.add_argument("--base-port", type=int, default=8081)
    parser.add_argument("--micropython", default=os.path.join(os.path.dirname(sys.executable), "micropython"))
    parser.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "fleet"))
    parser.add_argument("--web", default=os.path.join(ROOT, "build", "fleet-web"),
                        help="the built dashboard (tools/web/build_fleet.py)")
    parser.add_argument("--exit-when-online", action="store_true", help="for tests: stop once all are online")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.web, "index.html")):
        sys.exit("no dashboard in %s: run python tools/web/build_fleet.py (make fleet does)" % args.web)
    conf, cars = write_configs(args.out, args)
    procs = [subprocess.Popen([args.mosquitto, "-c", conf])]
    try:
        time.sleep(0.3)
        if procs[0].poll() is not None:
            sys.exit("mosquitto exited (%s); see %s/mosquitto.log" % (procs[0].returncode, args.out))
        for car_id, path, port in cars:
            log = open(os.path.join(args.out, car_id + ".log"), "w")
            procs.append(subprocess.Popen([args.micropython, "main.py", "--port", str(port), "--config", path],
                                          cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        t0 = time.monotonic()
        ids = [c[0] for c in cars]
        online = asyncio.run(wait_online("mqtt://127.0.0.1:%d" % args.tcp_port, ids, 15))
        print("broker: mqtt://127.0.0.1:%d (cars), ws://127.0.0.1:%d (browsers); log %s/mosquitto.log"
              % (args.tcp_port, args.ws_port, args.out))
        for car_id, path, port in cars:
            print("  %s %s  http://127.0.0.1:%d/" % (car_id, "online " if car_id in online else "OFFLINE",
                                                     port))
        print("%d of %d cars online after %.1f s" % (len(online & set(ids)), len(ids), time.monotonic() - t0))
        print("dashboard: http://127.0.0.1:%d/" % args.ws_port)
        if len(online & set(ids)) < len(ids):
            sys.exit(1)
        if not args.exit_when_online:
            print("Ctrl-C stops the fleet")
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        stop_all(reversed(procs))


if __name__ == "__main__":
    main()
