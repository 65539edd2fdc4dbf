# Two commands do all set-up on a fresh Debian machine with Python 3.11:
#   make serve   -> the token service + demo page on http://127.0.0.1:8000 (demo/demo)
#   make test    -> the whole test suite
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
STAMP := .make/installed

.PHONY: install serve test lint types bench soak clean

# Node tools for the browser client (typescript, axios), from tests/web/package-lock.json.
WEB := tests/web
NODE_DEPS := $(WEB)/node_modules/.installed
TSC := $(WEB)/node_modules/.bin/tsc

$(STAMP): pyproject.toml
	$(PIP) install -q -e '.[test,bench]'
	@mkdir -p .make && touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(PYTHON) -m silentauth serve --demo $(ARGS)

test: $(STAMP)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

$(NODE_DEPS): $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_DEPS)

lint: $(STAMP) $(NODE_DEPS)
	$(PYTHON) -m ruff check src tests bench
	$(PYTHON) -m mypy
	$(TSC) -p tsconfig.json
	node $(WEB)/types.mjs --check
	$(TSC) -p $(WEB)/types/tsconfig.json
	lint-imports

# Regenerate the shipped .d.ts files from the browser client's JSDoc.
types: $(NODE_DEPS)
	node $(WEB)/types.mjs --write

bench: $(STAMP)
	$(PYTHON) -m bench $(ARGS)

soak: $(STAMP)
	SILENTAUTH_SOAK_SECONDS=1800 SILENTAUTH_CRASH_ROUNDS=5 $(PYTHON) -m pytest tests/reliability $(PYTEST_ARGS)

clean:
	rm -rf .make build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
