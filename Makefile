# Entry points for a fresh machine with Python 3.11+:
#   make serve   install into .venv and run falco-risk on its embedded default
#   make test    install with the test extras and run lint, type check and tests
#   make bench   install with the test extras (rotel) and run the benchmark
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

serve: $(VENV)/.installed
	$(BIN)/falco-risk serve

test: $(VENV)/.installed-test
	$(BIN)/ruff check processor tests bench
	$(BIN)/ruff format --check processor tests bench
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
