PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: demo test test-unit test-faults test-faults-long lint bench bench-quick bench-memory-long bench-dashboard clean
.PHONY: bootstrap-demo bootstrap-test bootstrap-bench

# System packages each target needs, installed only when missing (see scripts/bootstrap).
bootstrap-demo bootstrap-test bootstrap-bench:
	@PYTHON=$(PYTHON) bash scripts/bootstrap $(@:bootstrap-%=%)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: bootstrap-demo $(STAMP)
	$(BIN)/outbox demo

test: bootstrap-test $(STAMP) lint
	$(BIN)/pytest -q -p no:cacheprovider --durations=15 -m 'not outage'

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit tests/contracts

test-faults: bootstrap-test $(STAMP)
	$(BIN)/pytest -q -m faults tests/integration

test-faults-long: bootstrap-test $(STAMP)
	OUTBOX_FAULTS_SCALE=long $(BIN)/pytest -q -s -m faults tests/integration

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: bootstrap-bench $(BENCH_STAMP)
	$(BIN)/python -m bench.run --full

bench-quick: bootstrap-bench $(BENCH_STAMP)
	$(BIN)/python -m bench.run --quick

# one worker per database to 5,000,000 messages (about an hour each here); docs/memory-long.*
bench-memory-long: bootstrap-bench $(STAMP)
	$(BIN)/python -m bench.memory --total 5000000 --step 100000 --long-step 250000 --report docs

bench-dashboard: bootstrap-bench $(STAMP)
	$(BIN)/python -m bench.dashboard

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
