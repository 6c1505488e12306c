# The firmware's entry point, called by the main.py stub. It lives here, not in
# main.py, because main.py is compiled from source into RAM and its bytecode
# stays there while the car runs; this module is a .mpy (in flash when lib/ is
# in ROMFS or frozen). Kept small: its functions and names stay resident too.
# On the board (after boot.py brought up WiFi): start the car with a hardware
#   watchdog fed by the control loop; if the app ever crashes, its motors are
#   stopped first (car.app.run stops them in a finally), the error is printed
#   and the board resets a few seconds later.
# On a computer: micropython main.py --port N [--host H] [--config FILE]
#   runs the same firmware against the simulated car.
import sys


def update(here, watchdog):
    """Resume an update over the air (docs/updates.md) before any other app
    module is imported. Returns the watchdog factory to run with: on a plain
    boot (one failed stat) the one given; with a new app on trial, one that
    confirms the app once it has ticked long enough. Raises SystemExit(75)
    to reboot."""
    import os

    try:
        os.stat(here + "/.ota")
    except OSError:
        return watchdog
    from car import update

    return update.update(here, watchdog)


def main(path):
    """path: main.py's (config.json and web/ sit beside it)."""
    if not sys.platform.startswith("esp"):  # esp32, esp8266
        return host_main(sys.argv, path[:path.rfind("/")] if "/" in path else ".")
    import machine
    import time

    try:
        dog = update(".", watchdog)  # on a board main.py, config.json and web/ are in /
        from car import app

        app.run(config_path="config.json", watchdog=dog)  # stops motors on any exit
    except SystemExit:  # an update asks for a reboot
        machine.reset()
    except KeyboardInterrupt:
        print("stopped; motors are off. A running watchdog still resets the board"
              " (limits.watchdog_ms: 0 turns it off for REPL work).")
        return
    except Exception as e:
        print("Tether crashed; motors stopped. Resetting in 3 s.")
        sys.print_exception(e)
    time.sleep(3)  # time to read the error (or press Ctrl-C) before the reset
    machine.reset()


def option(argv, name, default):
    if name in argv:
        i = argv.index(name)
        if i + 1 >= len(argv):
            raise ValueError(name + " needs a value")
        return argv[i + 1]
    return default


def host_main(argv, here):
    try:
        port = int(option(argv, "--port", "8080"))
        host = option(argv, "--host", "127.0.0.1")
        config_path = option(argv, "--config", here + "/config.json")
        if not 0 < port < 65536:
            raise ValueError("--port must be 1-65535")
    except ValueError as e:
        print(e)
        print("usage: micropython main.py --port N [--host H] [--config FILE]")
        sys.exit(2)
    dog = update(here, None)
    try:
        from car import app

        app.run(config_path=config_path, host=host, port=port, static_dir=here + "/web", watchdog=dog)
    except KeyboardInterrupt:  # Ctrl-C: app.run has already stopped the motors
        print("\nstopped; motors are off")
    except Exception as e:
        import errno

        if dog is None and isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
            # Most often `make sim` and `make vboard` on one port. A message, not
            # sys.exit(): SystemExit in main.py soft-resets a board (and the
            # vboard), which would retry the same port forever.
            print("port %d is in use by another program (another `make sim` or `make vboard`?): "
                  "choose another with --port" % port)
            return
        if dog is None:
            raise
        # A new app on trial crashed: reboot, as a board would, so that the
        # next boot rolls it back.
        sys.print_exception(e)
        print("the new app crashed on trial; rebooting to roll back")
        sys.exit(75)


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
