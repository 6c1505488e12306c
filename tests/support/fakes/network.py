# Stand-in for the ESP `network` module (tests only): a station interface
# whose connection state and RSSI the test sets, and an access point.
STA_IF = 0
AP_IF = 1
CONNECTED = [True]
RSSI = [-61]
ACTIVE = {STA_IF: False, AP_IF: False}  # WiFi on: ESP32 ADC2 reads 0 (fakes/machine.py)


class WLAN:
    def __init__(self, interface):
        self.interface = interface

    def active(self, on=None):
        if on is None:
            return ACTIVE[self.interface]
        ACTIVE[self.interface] = bool(on)

    def isconnected(self):
        return CONNECTED[0]

    def status(self, param=None):
        if param == "rssi":
            return RSSI[0]
        return 1010

    def connect(self, ssid, password=None):
        self.ssid = ssid

    def disconnect(self):
        pass

    def config(self, *args, **kw):
        if args:
            raise ValueError("unknown config param")
        CONFIG.update(kw)

    def ifconfig(self):
        ip = "192.168.1.50" if self.interface == STA_IF else "192.168.4.1"
        return (ip, "255.255.255.0", ip[:-2] + "1", "8.8.8.8")


CONFIG = {}
HOSTNAME = [None]


def hostname(name=None):
    if name is None:
        return HOSTNAME[0]
    HOSTNAME[0] = name
