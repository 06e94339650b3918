PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit test-faults test-faults-long lint bench bench-quick bench-dashboard clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/outbox demo

test: $(STAMP) lint
	$(BIN)/pytest -q -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit tests/contracts

test-faults: $(STAMP)
	$(BIN)/pytest -q -m faults tests/integration

test-faults-long: $(STAMP)
	OUTBOX_FAULTS_SCALE=long $(BIN)/pytest -q -s -m faults tests/integration

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run --full

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

bench-dashboard: $(STAMP)
	$(BIN)/python -m bench.dashboard

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
