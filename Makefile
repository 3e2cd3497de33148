# The two commands of the README. Each sets itself up on a fresh clone: only Python 3.11 and make needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo ui lint install clean chromium

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==24.3.1"
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## The browser tests drive Debian's chromium (Playwright never downloads a browser here).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		|| { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; \
	elif [ "$$CI" = true ]; then echo "CI needs $(CHROMIUM) and there is no apt-get to install it" >&2; exit 1; \
	else echo "note: no $(CHROMIUM) and no apt-get: the browser tests will skip"; fi

## make test: install, lint, then the whole test suite (Postgres/Redis tests run when CI=true).
test: lint chromium
	$(BIN)/python -m pytest

## make demo: the main job on the embedded default (SQLite, local files, the sandbox).
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## make ui: Airflow's UI on http://127.0.0.1:8080 (loopback only) with this provider and the sandbox,
## until Ctrl-C, SIGTERM or SIGHUP (every child stopped). scripts/airflow.sh: its CLI, same config.
ui: $(STAMP)
	exec $(BIN)/python scripts/ui.py

clean:
	rm -rf $(VENV) .demo
