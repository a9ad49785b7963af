# DRAWS mockup. `make demo` to watch it work, `make test` to check it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export DRAWS_COUCHDB_URL ?= http://127.0.0.1:5984

.PHONY: install prerequisites server stop test demo bench bench-scale clean

install: prerequisites $(VENV)/.installed node_modules/.installed
	@# Compiled now, so that a Python started per OUS (Pipeline Driver, Pipeline) does not
	@# compile our modules again each time (it cannot save them where PYTHONDONTWRITEBYTECODE is set).
	@$(BIN)/python -m compileall -q draws dashboard

# Each missing tool on one line, with the Debian/Ubuntu package that has it.
# ssh is needed only for a cache on another host, so its absence is a note.
prerequisites:
	@missing=0; \
	for need in "$(PYTHON) python3" "node nodejs" "npm npm" "rsync rsync"; do \
	  set -- $$need; \
	  command -v $$1 >/dev/null 2>&1 || { echo "missing: $$1 (apt-get install $$2)"; missing=1; }; \
	done; \
	if command -v $(PYTHON) >/dev/null 2>&1 && ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then \
	  echo "missing: $(PYTHON)'s venv module (apt-get install python3-venv)"; missing=1; \
	fi; \
	command -v ssh >/dev/null 2>&1 || \
	  echo "note: ssh is missing (apt-get install openssh-client); only a cache on another host needs it"; \
	exit $$missing

# The demo needs only the runtime packages; the test and bench extras come
# with `make test` and `make bench`, so a first `make demo` does not wait for
# them. pip and npm are quiet for long stretches, so a line every 10 s says
# the step is still at work.
TICKING = ( while sleep 10; do echo "   ... still at work"; done ) & ticker=$$!;
TICKED  = status=$$?; kill $$ticker; exit $$status
PIP     = $(BIN)/pip install --progress-bar off

$(VENV)/.installed: pyproject.toml
	@echo "== Python packages into $(VENV)/ (pip, about half a minute)"
	$(PYTHON) -m venv $(VENV)
	@$(TICKING) $(PIP) -e . ; $(TICKED)
	touch $@

$(VENV)/.test: $(VENV)/.installed
	@echo "== the test tools (pytest, pytest-xdist, selenium) into $(VENV)/"
	@$(TICKING) $(PIP) -e '.[test]' ; $(TICKED)
	touch $@

# Optional packages are left out: PouchDB Server's sqlite3 back end (compiled
# from C source for minutes) is never used. The on-disk one, leveldown with
# its prebuilt binary, is a dependency of ours in package.json, so not optional.
node_modules/.installed: package.json package-lock.json
	@echo "== the embedded server, PouchDB Server, into node_modules/ (npm ci, about 15 s)"
	@$(TICKING) npm ci --omit=optional --no-audit --no-fund --loglevel=error; $(TICKED)
	touch $@

server: install          ## start PouchDB Server, or Apache CouchDB from DRAWS_COUCHDB_RELEASE (no-op if one answers)
	$(BIN)/python -m draws server start

stop:                    ## stop the server started by `make server` (and nothing else)
	$(BIN)/python -m draws server stop

# On Apache CouchDB: make test DRAWS_TEST_SERVER=couchdb DRAWS_COUCHDB_RELEASE=/path/to/unpacked/release
# TEST_WORKERS tests run at once, each worker with its own session server; a file
# whose tests share one site (pytestmark xdist_group) runs whole in one worker.
TEST_WORKERS ?= 2
test: install $(VENV)/.test ## the whole test suite (starts its own servers: PouchDB Server by default)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

demo: install            ## everything on one host, driven for you; watch http://localhost:5000
	$(BIN)/python tools/demo.py

bench: install $(VENV)/.bench  ## measurements; writes BENCHMARKS.md and docs/bench-*.png
	$(BIN)/python tools/bench.py

bench-scale: install $(VENV)/.bench  ## costs against the history (N = 0, 5,000, 50,000 OUSs; long): BENCHMARKS.md, docs/bench-scale.png
	$(BIN)/python tools/bench_scale.py

$(VENV)/.bench: $(VENV)/.installed
	@echo "== the test tools and matplotlib (for the pictures) into $(VENV)/"
	@$(TICKING) $(PIP) -e '.[test,bench]' ; $(TICKED)
	touch $@

clean: stop
	rm -rf var
