# platformdb: `make demo` and `make test` are all a fresh clone needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG15_BIN := /usr/lib/postgresql/15/bin
# The embedded server keeps its data where the bare `platformdb` command does ($PLATFORMDB_HOME, else
# ~/.local/share/platformdb), so `platformdb server status` after `make demo` sees the same server.

.PHONY: demo test lint typecheck snapshot docs reliability server-stop clean system-deps
.PHONY: bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[all,test,bench]"
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

# The suite also runs on the machine's PostgreSQL 15 (Debian), and the docs need Graphviz's `dot`. Install
# them when we can (root with apt); otherwise say what is missing (the test summary names any server not run).
system-deps:
	@missing=""; \
	[ -x $(PG15_BIN)/postgres ] || missing="$$missing postgresql-15"; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing (Debian packages)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "NOTE: missing$$missing; install them (Debian) for the full suite" >&2; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools examples
	$(BIN)/ruff format --check src tests bench tools examples

typecheck: $(STAMP)
	$(BIN)/mypy

## snapshot / docs: regenerate docs/schema-snapshot.txt / docs/schema/ from a freshly migrated database
snapshot: $(STAMP)
	$(BIN)/python -m tools.regenerate snapshot

docs: $(STAMP) system-deps
	$(BIN)/python -m tools.regenerate docs

## bench: measure the catalog queries (scales 1 and 10; BENCH_SCALES=1,10,100 for the committed report), ingest,
## audited writes and the mixed workload on a throwaway PostgreSQL 18;
## writes bench/results/, docs/PERFORMANCE.md and its charts (about 25 minutes on 2 cores)
BENCH_SCALES ?= 1,10
bench: $(STAMP)
	$(BIN)/python -m bench --scales $(BENCH_SCALES)

## reliability: run the reliability tests and regenerate docs/RELIABILITY.md with the figures they counted
reliability: $(STAMP) system-deps
	rm -f .platformdb/reliability.json
	PLATFORMDB_RELIABILITY_REPORT=$(CURDIR)/.platformdb/reliability.json $(BIN)/python -m pytest tests/reliability tests/security tests/cli -q
	$(BIN)/python -m tools.render_reliability .platformdb/reliability.json > docs/RELIABILITY.md

server-stop: $(STAMP)
	$(BIN)/platformdb server stop

clean:
	-$(BIN)/platformdb server stop
	rm -rf $(VENV) .platformdb .pytest_cache .mypy_cache .ruff_cache
