# Freeze Tether into a MicroPython firmware you build yourself (firmware/README.md):
#
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/tether/firmware/manifest.py
#
# Frozen modules run from flash: no .mpy files on the filesystem, no RAM spent
# loading bytecode, and the viper code in wsserver/_native.py is compiled for the
# board by the port's own mpy-cross. boot.py, main.py, web/ and config.json stay
# on the filesystem (`make deploy` or `make image` put them there).
#
# MicroPython's manifest tool runs this file with its own folder as the working
# directory, so "../lib" is this repository's lib/.

# Everything the port freezes by default (asyncio, _boot, inisetup, ...).
include("$(PORT_DIR)/boards/manifest.py")

# Our packages. The order doesn't matter; each is a directory under lib/.
package("wsserver", base_path="../lib")
package("hardware", base_path="../lib")
package("car", base_path="../lib")
# The MQTT client is imported only by a car with `fleet` in its config;
# frozen, it costs a plain car no RAM.
package("mqtt", base_path="../lib")
# The WebSocket client: in flash, it costs a car that never dials out no RAM.
package("wsclient", base_path="../lib")
# The WebSocket URL parser (the client's handshake and the uplink's config check).
module("wsurl.py", base_path="../lib")
