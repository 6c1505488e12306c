# Tether firmware entry point. The code is in lib/car/main.py: this file is
# compiled from source into RAM on the board and stays there while the car
# runs, so it is kept to the few lines that find and call it.
#   micropython main.py --port N [--host H] [--config FILE]   (on a computer)
import sys

here = "."  # on a board: config.json and web/ sit in /, lib/ is on sys.path already
if not sys.platform.startswith("esp"):
    # This script's folder. From sys.argv, not __file__: the ESP8266 port (and
    # its proxy) has no __file__.
    here = sys.argv[0]
    here = here[:here.rfind("/")] if "/" in here else "."
    sys.path.insert(0, here + "/lib")
from car.main import main

main(here)
