# Tether firmware entry point. The code is in lib/car/main.py: this file is
# compiled from source into RAM on the board and stays there while the car
# runs, so it is kept to the few lines that find and call it.
#   micropython main.py --port N [--host H] [--config FILE]   (on a computer)
# This script's path comes from sys.argv, not __file__: the ESP8266 port (and
# its board proxy) has no __file__.
import sys

if not sys.platform.startswith("esp"):  # on a board, lib/ is on sys.path already
    path = sys.argv[0]
    sys.path.insert(0, (path[:path.rfind("/")] if "/" in path else ".") + "/lib")
from car.main import main

main(sys.argv[0] if sys.argv else "")
