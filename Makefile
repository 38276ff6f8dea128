# vChat: `make run` starts the app on http://localhost:8005, `make test` runs every test.
# Both create .venv when it is missing and install the pinned requirements into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8005

.PHONY: run test lint bench clean install install-dev browser

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# GEMINI_ONLY=1: the app and Gemini without the local model's packages (no torch, transformers, peft,
# accelerate: about 6.5 GB less to download). The project itself is installed too (editable: the
# checkout is what runs), for the `vchat` and `vchat-finetune` commands in .venv/bin.
REQUIREMENTS := $(if $(GEMINI_ONLY),requirements-base.txt,requirements.txt)
INSTALLED := $(VENV)/.installed$(if $(GEMINI_ONLY),-base,)

$(INSTALLED): $(REQUIREMENTS) requirements-base.txt pyproject.toml $(VENV)/bin/python
	$(PY) -m pip install --quiet -r $(REQUIREMENTS)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(INSTALLED)
install-dev: $(VENV)/.installed-dev

run: $(INSTALLED)
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
