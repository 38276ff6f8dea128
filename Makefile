# vChat: `make run` starts the app on http://localhost:8005, `make test` runs every test.
# Both create .venv when it is missing and install the pinned requirements into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8005

.PHONY: run test lint bench clean install install-dev browser

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

# The browser tests drive Debian's chromium (Playwright cannot download a browser here). As root,
# install it when it is missing; otherwise say how. `make test` requires it: no browser, a failed run.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = "0" ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
		else \
			echo "chromium is missing: run 'sudo apt-get install -y chromium' (the browser tests fail without it)" >&2; \
		fi; \
	fi

test: $(VENV)/.installed-dev browser
	$(PY) -m ruff check .
	$(PY) -m pytest

bench: $(VENV)/.installed-dev
	$(PY) bench/media.py

clean:
	rm -rf $(VENV) .pytest_cache
