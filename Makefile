# Every target builds its own .venv on a fresh machine; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench reliability clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH bash scripts/demo.sh

# Tests start the CLI hundreds of times: byte-compile once, since PYTHONDONTWRITEBYTECODE
# (set on some machines) would make every start compile the package again.
test: $(STAMP)
	$(BIN)/python -m compileall -q reconciler
	$(BIN)/pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/ruff format --check reconciler tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The reliability suites at full size (issue 6); `make test` runs them short.
reliability: $(STAMP)
	$(BIN)/python -m compileall -q reconciler
	rm -f reliability-report.jsonl
	RELIABILITY_SIZE=full RELIABILITY_REPORT=$(CURDIR)/reliability-report.jsonl \
		$(BIN)/pytest -n 2 -q -m reliability tests
	$(BIN)/python -m tests.reliability.report reliability-report.jsonl

bench: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench

clean:
	rm -rf $(VENV) state/cache state/*.db* state/demo
