# Real sensors: HC-SR04 ultrasonic ranger and battery voltage via ADC.
from time import sleep_us

MAX_CM = 400  # HC-SR04 rated range; beyond it the reading is noise


class Ultrasonic:
    def __init__(self, machine, trig, echo, timeout_us):
        Pin = machine.Pin
        self.trig = Pin(trig, Pin.OUT, value=0)
        self.echo = Pin(echo, Pin.IN)
        self.timeout_us = timeout_us
        self.time_pulse_us = machine.time_pulse_us

    def cm(self):
        """Distance in cm, or None when no echo came back in range.
        Blocks up to ~2 x timeout_us (wait for the echo to start, then time it)."""
        t = self.trig
        t.value(0)
        sleep_us(2)
        t.value(1)
        sleep_us(10)  # HC-SR04 wants a >= 10 us trigger pulse
        t.value(0)
        us = self.time_pulse_us(self.echo, 1, self.timeout_us)
        if us < 0:  # -1/-2: timed out
            return None
        cm = us * 0.01715  # 343 m/s, there and back: us / 58.3
        return cm if cm <= MAX_CM else None


class Battery:
    """Battery volts = voltage at the ADC pin x divider ((R_top+R_bottom)/R_bottom)."""

    def __init__(self, machine, pin, divider, esp8266):
        ADC = machine.ADC
        self.divider = divider
        if esp8266:
            self.adc = ADC(0)  # the single A0 input
            self.full_scale_v = 1.0
        else:
            self.adc = adc = ADC(machine.Pin(pin))
            adc.atten(ADC.ATTN_11DB)  # ~0-3.3 V input range
            self.full_scale_v = 3.3

    def volts(self):
        adc = self.adc
        total = 0
        # Four samples: the ESP ADCs are noisy and this costs ~100 us.
        if hasattr(adc, "read_uv"):  # ESP32: factory-calibrated microvolts
            for _ in range(4):
                total += adc.read_uv()
            pin_v = total / 4e6
        elif hasattr(adc, "read_u16"):
            for _ in range(4):
                total += adc.read_u16()
            pin_v = total * self.full_scale_v / (4 * 65535)
        else:  # old ESP8266 firmware: read() 0-1023
            for _ in range(4):
                total += adc.read()
            pin_v = total * self.full_scale_v / (4 * 1023)
        return pin_v * self.divider
