# vChat: `make run` starts the app on http://localhost:8005, `make test` runs every test.
# Both create .venv when it is missing and install the pinned requirements into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8005

.PHONY: run test lint bench clean install install-dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(PY) -m streamlit run Home.py --server.port $(PORT)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .

test: $(VENV)/.installed-dev
	$(PY) -m ruff check .
	$(PY) -m pytest

bench: $(VENV)/.installed-dev
	$(PY) bench/media.py

clean:
	rm -rf $(VENV) .pytest_cache
