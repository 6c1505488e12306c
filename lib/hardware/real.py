# The real car on an ESP32 / ESP8266. Only the pins named in the config are
# touched; an optional part whose pin is null is simply absent. A part the
# board refuses (machine raises for its pin) is left out with a message, and
# motors that cannot be set up leave the car without motors: never a crash
# at boot, which on a board is a reset loop.
import sys

from hardware.base import Base


def _part(key, make, *args):
    try:
        return make(*args)
    except Exception as e:  # ValueError "invalid pin", "PWM not supported on pin 16", ...
        print("hardware.%s: %s: %s; %s off" % (key, type(e).__name__, e, key))
        return None


class RealHardware(Base):
    simulated = False

    def __init__(self, cfg, platform=None):
        import machine  # lazy: the Unix port never gets here in normal use

        if not hasattr(machine, "Pin"):  # the Unix port (a maker's mistake, not a crash)
            # Here, not in create(): names a sim car never loads cost no heap.
            print('hardware.mode is "real" but this is a computer: the real hardware needs an '
                  'ESP32/ESP8266 board. Use "auto" (the simulated car here, the real one on a '
                  'board) or "sim".')
            raise SystemExit(2)
        from hardware.motors import make_motors

        Base.__init__(self, cfg)
        # cfg["chip"]: a config checked for an ESP8266 on a computer (the test stand-ins)
        esp8266 = (platform or sys.platform) == "esp8266" or cfg["chip"] == "esp8266"
        self._motors = None  # no motors: config pins null, or the board refused them
        if cfg["pins"] is not None:
            self._motors = _part("pins", make_motors, machine, cfg)
        self._invert = (cfg["invert_left"], cfg["invert_right"])
        self._brake = cfg["stop_mode"] == "brake"
        self._ultrasonic = self._battery = self._light = self._buzzer = self._servo = None
        self._wlan = None
        us = cfg["ultrasonic"]
        if us:
            from hardware.sensors import Ultrasonic
            # time_pulse_us busy-waits for the echo to start, then to end, up to
            # the timeout each (extmod/machine_pulse.c); on the ESP8266 its hook
            # only feeds the soft WDT (esp_mphal.h), WiFi waits. There at most
            # 12 ms: an echo from 2.06 m (58.3 us/cm), plenty to stop in time.
            t = us["timeout_us"]
            if esp8266 and t > 12000:
                t = 12000
            self._ultrasonic = _part("ultrasonic", Ultrasonic, machine, us["trig"], us["echo"], t)
        bat = cfg["battery"]
        if bat:
            from hardware.sensors import Battery
            self._battery = _part("battery", Battery, machine, bat["pin"], bat["divider"], esp8266)
        if cfg["light"] is not None or cfg["buzzer"] is not None or cfg["servo"] is not None:
            from hardware import outputs
            if cfg["light"] is not None:
                self._light = _part("light", outputs.Light, machine, cfg["light"])
            if cfg["buzzer"] is not None:
                # ESP8266: one PWM frequency for all pins, at most 1 kHz, so the
                # buzzer uses the motors' frequency rather than retuning them.
                f = cfg["buzzer_freq"]
                if esp8266 and f:
                    f = cfg["pwm_freq"]
                self._buzzer = _part("buzzer", outputs.Buzzer, machine, cfg["buzzer"], f)
            if cfg["servo"] is not None:
                self._servo = _part("servo", outputs.Servo, machine, cfg["servo"])

    def _write(self, left, right):
        m = self._motors
        if m is None:  # no motors: telemetry's `applied` says so
            self._left = self._right = 0.0
            return
        inv = self._invert
        m[0].drive(-left if inv[0] else left)
        m[1].drive(-right if inv[1] else right)

    def _halt(self):
        for m in self._motors or ():
            if self._brake:
                m.brake()
            else:
                m.drive(0)

    def distance_cm(self):
        return self._ultrasonic.cm() if self._ultrasonic else None

    def battery_v(self):
        # No battery sense wired: report 0.0 (a float, as promised) rather than guess.
        return self._battery.volts() if self._battery else 0.0

    def set_light(self, on):
        Base.set_light(self, on)
        if self._light:
            self._light.set(self.light)

    def set_horn(self, on):
        Base.set_horn(self, on)
        if self._buzzer:
            self._buzzer.set(self.horn)

    def set_pan(self, deg):
        Base.set_pan(self, deg)
        if self._servo:
            self._servo.set(self.pan)

    def rssi(self):
        """Signal of the access point we joined (dBm); None in AP mode or offline."""
        try:
            if self._wlan is None:
                import network
                self._wlan = network.WLAN(network.STA_IF)
            if not self._wlan.isconnected():
                return None
            return int(self._wlan.status("rssi"))
        except Exception:  # no network module, radio off, firmware without 'rssi'
            return None
