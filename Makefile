# The two commands of the README: `make run` (install + start everything) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install install-dev

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(STAMP)
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(STAMP)
install-dev: $(VENV)/.installed-dev

# UI + scheduler + webhook receiver on the embedded PostgreSQL (or DATABASE_URL).
run: install
	$(BIN)/python -m core serve

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)
