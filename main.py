# Tether firmware entry point: the code is in lib/car/main.py (a .mpy, so
# none of it is compiled into RAM here). On a computer:
#   micropython main.py --port N [--host H] [--config FILE]
import sys

if sys.platform not in ("esp32", "esp8266"):
    sys.path.insert(0, (__file__.rpartition("/")[0] or ".") + "/lib")
from car.main import main

main(__file__)
