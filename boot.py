# Runs first on the board: bring up WiFi (station from config.json, else the
# car's own WPA2 access point) and print the URL. main.py then starts the car.
# Never lets an exception escape: a board that cannot boot cannot be fixed
# over the air. Does nothing on the Unix port (no `network` module).
try:
    import network  # noqa: F401  (absent on the Unix port)
except ImportError:
    network = None

if network is not None:
    try:
        import sys

        from car import wifi

        wifi.start("config.json")
        sys.modules.pop("car.wifi", None)  # not needed again: give its heap back
        del wifi
    except Exception as e:  # keep booting: main.py still stops the motors safely
        import sys

        print("boot: WiFi set-up failed:")
        sys.print_exception(e)
