# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: crawl the bundled demo sources into var/monitor.db and write this week's digest
demo: $(STAMP)
	$(BIN)/monitor demo

## test: lint, type-check and run the whole test suite
test: $(STAMP)
	$(BIN)/ruff check monitor spiders tests bench
	$(BIN)/ruff format --check monitor spiders tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
