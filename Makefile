# Two commands do all set-up on a fresh Debian machine with Python 3.11:
#   make serve   -> the token service + demo page on http://127.0.0.1:8000 (demo/demo)
#   make test    -> the whole test suite
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
STAMP := .make/installed

.PHONY: install serve test lint bench soak mutate clean

$(STAMP): pyproject.toml
	$(PIP) install -q -e '.[test,bench]'
	@mkdir -p .make && touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(PYTHON) -m silentauth serve --demo $(ARGS)

test: $(STAMP)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PYTHON) -m ruff check src tests bench tools
	$(PYTHON) -m mypy

bench: $(STAMP)
	$(PYTHON) -m bench $(ARGS)

soak: $(STAMP)
	SILENTAUTH_SOAK_SECONDS=1800 SILENTAUTH_CRASH_ROUNDS=5 $(PYTHON) -m pytest tests/reliability $(PYTEST_ARGS)

# Mutation testing over [tool.mutmut] only_mutate; the score counts every mutant
# that was not killed (survived, no tests, timeout) against the suite.
mutate: $(STAMP)
	$(PYTHON) -m mutmut run --max-children $(or $(JOBS),2)
	$(PYTHON) -m tools.mutation_score

clean:
	rm -rf .make mutants build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
