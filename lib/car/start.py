# The firmware's start-up, before the car is built: the command line (on a
# computer) and an update over the air resumed (with its trial watchdog).
# Loaded by car.main for this and dropped before the car runs: none of it is
# called again, so none of it stays in the heap, as car.main's code does for
# as long as the car runs. (After a crash on a computer, crashed() loads it
# again for its messages.)
import sys


def arguments(path, watchdog):
    """car.app.run's keyword arguments. path: main.py's (config.json and
    web/ sit beside it); watchdog: the board's watchdog factory (car.main's:
    the car calls it once built, so it must not be a function of this
    module, which would keep all of it in the heap). On a computer: from sys.argv (micropython main.py
    --port N [--host H] [--config FILE]); a bad command line prints the
    usage and exits 2."""
    if sys.platform.startswith("esp"):  # esp32, esp8266: everything in /
        return {"config_path": "config.json", "watchdog": update(".", watchdog)}
    here = path[:path.rfind("/")] if "/" in path else "."
    argv = sys.argv
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
    return {"config_path": config_path, "host": host, "port": port, "static_dir": here + "/web",
            "watchdog": update(here, None)}


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


def option(argv, name, default):
    if name in argv:
        i = argv.index(name)
        if i + 1 >= len(argv):
            raise ValueError(name + " needs a value")
        return argv[i + 1]
    return default


def crashed(e, args):
    """On a computer, after car.app.run raised e (the motors are stopped):
    a sentence for a port in use, a reboot (exit 75) for a new app on trial,
    else e raised again. args: what arguments() returned, or None."""
    import errno

    if args is None:
        raise e
    if args["watchdog"] is None and isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
        # Most often `make sim` and `make vboard` on one port. A message, not
        # sys.exit(): SystemExit in main.py soft-resets a board (and the
        # vboard), which would retry the same port forever.
        print("port %d is in use by another program (another `make sim` or `make vboard`?): "
              "choose another with --port" % args["port"])
        return
    if args["watchdog"] is None:
        raise e
    # A new app on trial crashed: reboot, as a board would, so that the
    # next boot rolls it back.
    sys.print_exception(e)
    print("the new app crashed on trial; rebooting to roll back")
    sys.exit(75)
