# Tether — every task a maker or CI runs. `make help` lists them.
SHELL := /bin/bash
VENV        ?= .venv
PY          := $(VENV)/bin/python
MICROPYTHON := $(VENV)/bin/micropython
STAMP       := $(VENV)/.installed-$(shell md5sum requirements.txt 2>/dev/null | cut -c1-8)
PYTHON2     ?= /root/.pyenv/versions/2.7.18/bin/python
VENV2       ?= .venv2
HOST        ?= 127.0.0.1
SIM_PORT    ?= 8080

.PHONY: help sim test conformance web clean

help:
	@echo "make sim          run the firmware on this computer with a simulated car (http://$(HOST):$(SIM_PORT))"
	@echo "make test         run the whole test suite (installs what it needs into $(VENV))"
	@echo "make conformance  run the Autobahn|Testsuite (cases 1-10) against the server"
	@echo "make bench        benchmark the server against microdot and a raw TCP echo (reports/bench.md)"

# One venv with every host tool; re-installed when requirements.txt changes.
$(STAMP): requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

web: $(STAMP)
	@if [ -f tools/build_web.py ]; then $(PY) tools/build_web.py; fi

sim: $(STAMP) web
	$(MICROPYTHON) main.py --host $(HOST) --port $(SIM_PORT)

test: $(STAMP) web
	$(PY) -m pytest -q tests

# Autobahn|Testsuite needs Python 2.7: its own virtualenv, made once.
$(VENV2)/bin/wstest: tools/requirements-conformance.txt
	$(PYTHON2) -m pip install -q 'virtualenv<20.22'
	$(PYTHON2) -m virtualenv -q $(VENV2)
	$(VENV2)/bin/pip install -q -r tools/requirements-conformance.txt
	@touch $@

conformance: $(STAMP) $(VENV2)/bin/wstest
	$(PY) tools/conformance.py --wstest $(VENV2)/bin/wstest --micropython $(MICROPYTHON)

# Tether vs microdot vs raw TCP echo on this machine; prints a table, writes reports/bench.md.
.PHONY: bench
bench: $(STAMP)
	$(PY) tools/bench.py --micropython $(MICROPYTHON)

clean:
	rm -rf build reports test-artifacts web/*.gz
