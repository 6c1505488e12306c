# PWM helpers for both MicroPython PWM APIs: duty_u16 (0-65535, current) and
# duty (0-1023, older ESP8266/ESP32 firmware).

_u16 = True  # all PWM objects on a board share one API; learnt from the first


def new_pwm(machine, gpio, freq):
    """PWM on gpio, silent from the first instant (the pin is driven low
    before the PWM peripheral takes it, and starts at duty 0)."""
    global _u16
    pin = machine.Pin(gpio, machine.Pin.OUT, value=0)
    try:
        pwm = machine.PWM(pin, freq=freq, duty_u16=0)
    except TypeError:  # firmware without the duty_u16 keyword
        pwm = machine.PWM(pin, freq=freq, duty=0)
    _u16 = hasattr(pwm, "duty_u16")
    return pwm


def set_duty(pwm, frac):
    """frac 0..1 of full duty."""
    if _u16:
        pwm.duty_u16(int(frac * 65535 + 0.5))
    else:
        pwm.duty(int(frac * 1023 + 0.5))
