# Two commands do all set-up on a fresh Debian machine with Python 3.11+:
#   make serve   -> the token service + demo page on http://127.0.0.1:8000 (demo/demo)
#   make test    -> the test suite but its slow suites (under 10 minutes on 2 cores)
#   make test-slow -> the slow suites (browsers, concurrency, crashes); CI runs both
# Both work in a virtual environment of their own (.venv), made on first use:
# Debian's python refuses `pip install` outside one (PEP 668, externally-managed-environment).
# `make serve` installs only what serving needs; `make test` adds the test tools.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP_SERVE := .make/serve-installed
STAMP_TEST := .make/test-installed

.PHONY: install serve test test-slow lint types bench soak mutate clean

$(PY):
	@$(PYTHON) -m venv $(VENV) || { echo "make: cannot create $(VENV): on Debian, apt-get install python3-venv" >&2; exit 1; }
	@$(PY) -m pip install -q --upgrade pip

$(STAMP_SERVE): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[server]'
	@mkdir -p .make && touch $(STAMP_SERVE)

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test,bench]'
	@mkdir -p .make && touch $(STAMP_TEST) $(STAMP_SERVE)

install: $(STAMP_TEST)

serve: $(STAMP_SERVE)
	$(PY) -m silentauth serve --demo $(ARGS)

# The node oidc-provider peer (and the Node.js 22 it runs on) from its lock file;
# without npm the bench reports those peers as skipped.
OIDC := bench/peers/oidc
OIDC_DEPS := $(OIDC)/node_modules/.installed

$(OIDC_DEPS): $(OIDC)/package-lock.json
	@if command -v npm >/dev/null; then \
		cd $(OIDC) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "make: npm not found: the oidc-provider peers will be reported as skipped" >&2; fi

# Tests marked `slow` (many browser tabs, crash rounds, failovers, storms) run in
# `make test-slow`, so `make test` stays under 10 minutes on a 2-core machine.
test: $(STAMP_TEST) $(OIDC_DEPS)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP_TEST) $(OIDC_DEPS)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

# Node tools for the browser client (typescript, axios), from tests/web/package-lock.json.
WEB := tests/web
NODE_DEPS := $(WEB)/node_modules/.installed
TSC := $(WEB)/node_modules/.bin/tsc

$(NODE_DEPS): $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_DEPS)

lint: $(STAMP_TEST) $(NODE_DEPS)
	$(PY) -m ruff check src tests bench tools
	$(PY) -m mypy
	$(TSC) -p tsconfig.json
	node $(WEB)/types.mjs --check
	$(TSC) -p $(WEB)/types/tsconfig.json
	$(VENV)/bin/lint-imports

# Regenerate the shipped .d.ts files from the browser client's JSDoc.
types: $(NODE_DEPS)
	node $(WEB)/types.mjs --write

bench: $(STAMP_TEST) $(OIDC_DEPS)
	$(PY) -m bench $(ARGS)

soak: $(STAMP_TEST)
	SILENTAUTH_SOAK_SECONDS=1800 SILENTAUTH_CRASH_ROUNDS=5 $(PY) -m pytest tests/reliability $(PYTEST_ARGS)

# Mutation testing over [tool.mutmut] only_mutate; the score counts every mutant
# that was not killed (survived, no tests, timeout) against the suite.
mutate: $(STAMP_TEST)
	$(PY) -m mutmut run --max-children $(or $(JOBS),2)
	$(PY) -m tools.mutation_score

clean:
	rm -rf .make $(VENV) mutants build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
