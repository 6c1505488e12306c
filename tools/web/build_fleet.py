#!/usr/bin/env python3
"""Build the fleet dashboard into build/fleet-web/ (what mosquitto's http_dir
serves): fleet/index.html, fleet.js, fleet.css and MQTT.js's browser bundle
from npm (`mqtt`, pinned in fleet/package-lock.json, installed into
fleet/node_modules by `make node-deps`, which `make fleet` and `make test` run).
No CDN: the page loads nothing from anywhere but the broker that serves it.

  python tools/web/build_fleet.py [--out build/fleet-web]
"""
import argparse
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLEET = os.path.join(ROOT, "fleet")
PAGE = ("index.html", "fleet.js", "fleet.css")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "fleet-web"))
    args = parser.parse_args(argv)
    with open(os.path.join(FLEET, "package.json")) as f:
        pinned = json.load(f)["dependencies"]["mqtt"]
    bundle = os.path.join(FLEET, "node_modules", "mqtt", "dist", "mqtt.min.js")
    installed = os.path.join(FLEET, "node_modules", "mqtt", "package.json")
    version = json.load(open(installed))["version"] if os.path.exists(installed) else None
    if version != pinned:
        sys.exit("fleet/node_modules has mqtt %s, fleet/package.json pins %s: run make node-deps"
                 " (npm ci in fleet/; needs Node.js and npm)" % (version or "(none)", pinned))
    os.makedirs(args.out, exist_ok=True)
    for name in PAGE:
        shutil.copyfile(os.path.join(FLEET, name), os.path.join(args.out, name))
    shutil.copyfile(bundle, os.path.join(args.out, "mqtt.min.js"))
    total = sum(os.path.getsize(os.path.join(args.out, n)) for n in PAGE + ("mqtt.min.js",))
    print("fleet dashboard: %s (MQTT.js %s), %d bytes" % (os.path.relpath(args.out, ROOT), version, total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
