# WiFi on the board (called from boot.py): join a configured network, or
# start the car's own WPA2 access point, then print the page's URL.
# Every network call that differs between ESP32 and ESP8266 is guarded.
import sys
import time

import network

from car import DEFAULT_AP_PASSWORD, load_config


def _no_power_save(wlan):
    # Modem sleep adds 100+ ms of latency to incoming packets: bad for a
    # deadman heartbeat. ESP32 (and newer ESP8266): pm=PM_NONE.
    try:
        wlan.config(pm=wlan.PM_NONE)
        return
    except (AttributeError, ValueError, TypeError, OSError):
        pass
    try:
        import esp  # ESP8266

        esp.sleep_type(esp.SLEEP_NONE)
    except (ImportError, AttributeError):
        pass


def _hostname(name):
    try:
        network.hostname(name)  # MicroPython 1.20+
    except (AttributeError, ValueError, OSError):
        try:
            network.WLAN(network.STA_IF).config(dhcp_hostname=name)
        except (AttributeError, ValueError, TypeError, OSError):
            pass


def station(networks, timeout_s):
    """Join the first reachable network; its IP address, or None."""
    if not networks:
        return None
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    _no_power_save(sta)
    for net in networks:
        print("WiFi: joining %r ..." % net["ssid"])
        sta.connect(net["ssid"], net["password"])
        deadline = time.ticks_add(time.ticks_ms(), timeout_s * 1000)
        while not sta.isconnected() and time.ticks_diff(deadline, time.ticks_ms()) > 0:
            time.sleep_ms(100)
        if sta.isconnected():
            return sta.ifconfig()[0]
        print("WiFi: %r not reached in %d s" % (net["ssid"], timeout_s))
        sta.disconnect()
    sta.active(False)
    return None


def access_point(ap_cfg):
    """Start the car's own access point; its IP address. WPA2 unless the
    config says open: true explicitly (config.py refuses short passwords)."""
    ap = network.WLAN(network.AP_IF)
    ap.active(True)
    if ap_cfg["open"] is True:
        settings = {"authmode": getattr(network, "AUTH_OPEN", 0)}
    else:
        settings = {"authmode": getattr(network, "AUTH_WPA2_PSK", 3),
                    "password": ap_cfg["password"]}
    try:
        ap.config(ssid=ap_cfg["ssid"], **settings)
    except (TypeError, ValueError):  # older firmware calls it essid
        ap.config(essid=ap_cfg["ssid"], **settings)
    _no_power_save(ap)
    return ap.ifconfig()[0]


def start(config_path="config.json"):
    cfg, errors = load_config(config_path)
    for error in errors:
        if error.startswith("wifi") or error.startswith(config_path):
            print("config error:", error)
    wifi = cfg["wifi"]
    _hostname(wifi["hostname"])
    ip = joined = station(wifi["networks"], wifi["timeout_s"])
    if ip:
        network.WLAN(network.AP_IF).active(False)  # ESP8266 starts one by itself
        print("WiFi: connected, IP", ip)
    else:
        ap = wifi["ap"]
        ip = access_point(ap)
        print("WiFi: access point %r (%s), IP %s" % (
            ap["ssid"], "OPEN" if ap["open"] else "WPA2", ip))
        if not ap["open"] and ap["password"] == DEFAULT_AP_PASSWORD:
            print("WiFi: the access point uses the DEFAULT password; set wifi.ap.password")
    port = cfg["server"]["port"]
    suffix = "" if port == 80 else ":%d" % port
    print("Tether: open http://%s%s/" % (ip, suffix))
    # mDNS answers for <hostname>.local only on an ESP32 that joined a
    # network: ports/esp32/network_wlan.c starts it on the station's GOT_IP
    # (in access-point mode nothing answers); the ESP8266 has none.
    if joined and sys.platform == "esp32":
        print("Tether: or http://%s.local%s/" % (wifi["hostname"], suffix))
    return ip
