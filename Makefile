# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

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

# tests/test_digest_in_browser.py opens the digest in Debian's Chromium through Playwright;
# `playwright install` would download a browser of its own, which this machine's network refuses.
$(CHROMIUM):
	@echo "$@ is missing: installing Debian's chromium for the browser test of the digest"
	@if [ "$$(id -u)" -ne 0 ]; then echo "run as root: apt-get install -y --no-install-recommends chromium" >&2; exit 1; fi
	DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

## test: lint, type-check and run the whole test suite
test: $(STAMP) $(CHROMIUM)
	$(BIN)/ruff check monitor spiders tests bench
	$(BIN)/ruff format --check monitor spiders tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
