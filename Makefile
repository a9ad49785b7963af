# DRAWS mockup. `make demo` to watch it work, `make test` to check it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export DRAWS_COUCHDB_URL ?= http://127.0.0.1:5984

.PHONY: install server stop test demo bench clean

install: $(VENV)/.installed node_modules/.installed
	@# Compiled now, so that a Python started per OUS (Pipeline Driver, Pipeline) does not
	@# compile our modules again each time (it cannot save them where PYTHONDONTWRITEBYTECODE is set).
	@$(BIN)/python -m compileall -q draws dashboard

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

server: install          ## start the embedded CouchDB-compatible server (no-op if one answers)
	$(BIN)/python -m draws server start

stop:                    ## stop the embedded server started by `make server`
	$(BIN)/python -m draws server stop

test: install            ## the whole test suite (starts its own servers)
	$(BIN)/python -m pytest

demo: install            ## everything on one host, driven for you; watch http://localhost:5000
	$(BIN)/python -m draws demo

bench: install $(VENV)/.bench  ## measurements; writes BENCHMARKS.md and docs/bench-*.png
	$(BIN)/python -m draws.benchmarks

$(VENV)/.bench: pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

clean: stop
	rm -rf var
