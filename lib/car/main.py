# The firmware's entry point, called by the main.py stub. It lives here, not in
# main.py, because main.py is compiled from source into RAM and its bytecode
# stays there while the car runs; this module is a .mpy (in flash when lib/ is
# in ROMFS or frozen). Kept small: its code stays resident while the car runs,
# so what start-up alone needs (the command line, an update resumed, the
# trial watchdog) is car.start's, dropped before the car is built.
# On the board (after boot.py brought up WiFi): start the car with a hardware
#   watchdog fed by the control loop; if the app ever crashes, its motors are
#   stopped first (car.app.run stops them in a finally), the error is printed
#   and the board resets a few seconds later.
# On a computer: micropython main.py --port N [--host H] [--config FILE]
#   runs the same firmware against the simulated car.
import sys


def main(path):
    """path: main.py's (config.json and web/ sit beside it)."""
    board = sys.platform.startswith("esp")  # esp32, esp8266
    if board:
        import machine
        import time
    args = None
    try:
        args = arguments(path)
        from car import app

        app.run(**args)  # stops the motors on any exit
    except SystemExit:  # an update asks for a reboot; a bad command line
        if not board:
            raise
        machine.reset()
    except KeyboardInterrupt:
        if board:
            print("stopped; motors are off. A running watchdog still resets the board"
                  " (limits.watchdog_ms: 0 turns it off for REPL work).")
        else:  # app.run has already stopped the motors
            print("\nstopped; motors are off")
        return
    except Exception as e:
        if not board:  # the messages for it are start-up's: loaded again, only now
            from car import start

            return start.crashed(e, args)
        print("Tether crashed; motors stopped. Resetting in 3 s.")
        sys.print_exception(e)
    time.sleep(3)  # time to read the error (or press Ctrl-C) before the reset
    machine.reset()


def arguments(path):
    # A function of its own, not lines in main(): main()'s frame lasts as
    # long as the car runs, and a value stack slot it once used keeps
    # pointing at what it held (car.start's functions, and through them all
    # of car.start) for the conservative GC. This frame is gone, and its
    # memory reused, once it returns.
    from car import drop, start

    try:
        return start.arguments(path, watchdog)
    finally:
        drop("start")


def watchdog(timeout_ms):
    import machine

    if not timeout_ms:
        return None
    timeout_ms = max(timeout_ms, 1000)
    try:
        return machine.WDT(timeout=timeout_ms)
    except (TypeError, ValueError):
        # ESP8266: the timeout is fixed at 5 s and any other value raises
        # ValueError (ports/esp8266/machine_wdt.c); WDT() takes that default.
        return machine.WDT()
