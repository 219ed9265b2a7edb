# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,distributed]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m hetero_opt.demo

lint: $(STAMP)
	$(BIN)/ruff check hetero_opt tests benchmarks
	$(BIN)/mypy hetero_opt

test: $(STAMP) lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/pytest benchmarks --benchmark-enable -p no:cacheprovider

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
