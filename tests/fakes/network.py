# Stand-in for the ESP `network` module (tests only): one station interface
# whose connection state and RSSI the test sets.
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
