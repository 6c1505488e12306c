# Tether firmware entry point. The code is in lib/car/main.py: this file is
# compiled from source into RAM on the board and stays there while the car
# runs, so it is kept to the few lines that find and call it.
#   micropython main.py --port N [--host H] [--config FILE]   (on a computer)
import sys

if not sys.platform.startswith("esp"):  # on a board, lib/ is on sys.path already
    sys.path.insert(0, (__file__.rpartition("/")[0] or ".") + "/lib")
from car.main import main

main(__file__)
