# The two commands of the quick start: `make run` and `make test`. Each sets itself up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The services stack: PostgreSQL and Redis on this machine (what CI runs against too).
SERVICES_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
SERVICES_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: setup run test test-services fuzz lint format clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py runstack

test: $(STAMP)
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest $(PYTEST_ARGS)

# The browser tests run once, in `make test`: the pages do not depend on the stack.
test-services: $(STAMP)
	DATABASE_URL=$(SERVICES_DATABASE_URL) REDIS_URL=$(SERVICES_REDIS_URL) $(BIN)/pytest -m "not browser" $(PYTEST_ARGS)

# schemathesis, every operation with --checks all, against a live services stack (uvicorn, a
# worker, the relay emulator on PostgreSQL and Redis); fails on any server error, undocumented
# status or schema violation. Uses (drops and recreates) the database `fuzz`.
FUZZ_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/fuzz
FUZZ_REDIS_URL ?= redis://127.0.0.1:6379/14
FUZZ_ARGS ?=
fuzz: $(STAMP)
	FUZZ_DATABASE_URL=$(FUZZ_DATABASE_URL) FUZZ_REDIS_URL=$(FUZZ_REDIS_URL) $(BIN)/python -m tests.fuzz $(FUZZ_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
