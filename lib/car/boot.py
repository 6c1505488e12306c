# The car's start-up: the config, the hardware, the server, the access
# rules and the links, built once by car.app.run, which drops this module
# as soon as the car is built: none of this code runs again, so none of it
# stays in the heap (docs/memory.md). What a running car calls (the Car, its
# handlers in attach()) lives in car.app: a function keeps its module's
# globals, so nothing built here may be defined here.
import gc
import sys

import hardware
from wsserver import Server

from car import load_config, protocol
from car.access import Access
from car.app import Car, attach


def own_hosts(host):
    """Names a page served by us may have, besides the hostname and (on a
    board) its WiFi addresses: on a computer the loopback names, the address
    we listen on when it is a specific one, and the computer's own addresses
    when we listen on all of them."""
    if sys.platform.startswith("esp"):
        return []
    hosts = ["127.0.0.1", "localhost", "::1"]
    if host and host != "0.0.0.0" and host != "::":
        hosts.append(host)
    else:
        from car import lan

        hosts += lan.addresses()
    return hosts


def build(config_path, host, port, static_dir, watchdog):
    """[car, port, tls, urls]: the car built and attached to its server,
    the port to listen on, the server's SSLContext (or None) and the URLs to
    print. The motors are stopped if anything here fails."""
    # Compiling the modules so far (from source) left garbage spread over the
    # heap; the config checker is the next big compile and needs room.
    gc.collect()
    cfg, errors = load_config(config_path)
    for error in errors:
        print("config error:", error)
    gc.collect()
    # The server's receive buffer, the biggest block the car keeps: taken
    # now, while the config checker's garbage has just gone, rather than
    # after the hardware and the app have scattered their objects over it.
    buf = bytearray(1024)
    hw = hardware.create(cfg["hardware"], checked=True)  # load_config gives it checked
    try:
        hw.stop()
        if watchdog:
            watchdog = watchdog(cfg["limits"]["watchdog_ms"])
        # Sized for a board (docs/memory.md): client messages are < 512
        # bytes, static files stream through the buffer in 1 KB pieces, and
        # a slow client is better served the newest telemetry than 8 old ones.
        max_clients = cfg["server"]["max_clients"]
        tls = cfg["server"]["tls"]
        if tls is not None:
            from car.tls import setup  # only for a car with server.tls: loads ssl
            tls, max_clients = setup(tls, config_path, max_clients)
        limits = {"max_tls": max_clients + 1} if tls else {}  # + 1: room to answer 503
        server = Server(static_dir=static_dir, max_clients=max_clients,
                        max_message=2 * protocol.MAX_TEXT, buffer=buf, max_queue=4, **limits)
        del limits, buf
        port = port or cfg["server"]["port"]
        hosts = own_hosts(host)
        car = Car(cfg, hw, server, watchdog, Access(cfg["access"], cfg["wifi"]["hostname"], port, hosts),
                  errors)
        del errors
        attach(server, car)
        # The config file's folder: a relative fleet.ca or uplink.ca is read from there.
        folder = config_path[:config_path.rfind("/")] if "/" in config_path else ""
        if cfg["fleet"]:  # imported only when configured: a plain car never loads MQTT
            from car import fleet

            try:
                car.links.append(fleet.Link(car, cfg["fleet"], folder))
            except (OSError, ValueError) as e:  # fleet.ca unreadable: the car runs without the link
                print("config error: %s (fleet link off)" % (e.args[0] if e.args else e))
        if cfg["uplink"]:  # the same: a plain car never loads the WebSocket client
            from car import uplink

            car.links.append(uplink.Link(car, cfg["uplink"], folder))
    except BaseException:
        hw.stop()
        raise
    # Listening on every address of a computer: print the URLs of its own
    # addresses (0.0.0.0 is not one a phone can open).
    urls = hosts[3:] + ["127.0.0.1"] if (host == "0.0.0.0" or host == "::") and hosts else None
    return [car, port, tls, urls]
