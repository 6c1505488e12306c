# Which chip the firmware runs on: asked at boot (the config stamp's board,
# hardware.create() for mode "auto") and by the config checker. Its own
# module, not defaults.py's: a car whose config was checked (and merged
# with the chip's defaults) by the tools boots without loading that table,
# whose ~30 names would stay interned for good (docs/memory.md).


def on_board():
    """The chip on an ESP32/ESP8266 board ("esp32", "esp32s3", "esp32c3",
    "esp8266" or another "esp32.."), None on a computer. Chip names are not
    written as literals: every short string a module holds is interned for
    good (docs/memory.md)."""
    import sys

    p = sys.platform
    if p[:3] != "esp":
        return None
    if len(p) > 5:  # "esp8266"
        return p
    # "<board> with ESP32S3": py/mpconfig.h MICROPY_BANNER_MACHINE, from the
    # boards' MICROPY_HW_MCU_NAME ("ESP32", "ESP32-D2WD", "ESP32S3", "ESP32C3").
    mcu = sys.implementation._machine.split()[-1].lower()
    return p if mcu[5:6] == "-" else mcu
