# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench fuzz mutate loadtest prometheus clean

# A .venv of a Python older than 3.11 (the project's floor) is made again with $(PY).
$(STAMP): pyproject.toml
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
			|| { echo "$(PY) is not a Python 3.11 or newer: make PY=python3.11 (or a newer one)" >&2; exit 1; }; \
		echo "creating $(VENV) with $(PY)"; rm -rf $(VENV) && $(PY) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,k8s,serve,distributed]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m hetero_opt.demo

lint: $(STAMP)
	$(BIN)/ruff check hetero_opt tests benchmarks
	$(BIN)/mypy hetero_opt

# The Prometheus server the metrics tests scrape through (Debian's package); tests skip, saying why, without it.
prometheus:
	@test -x /usr/bin/prometheus || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus) \
		|| echo "prometheus: cannot install Debian's package; the Prometheus server test will skip"

test: $(STAMP) lint prometheus
	$(BIN)/pytest

# The long fuzz profile: 10,000 cases (FUZZ_CASES=N for a reduced run); see docs/reliability.md.
fuzz: $(STAMP)
	HETERO_FUZZ=long HETERO_FUZZ_CASES=$(FUZZ_CASES) $(BIN)/pytest tests/fuzz -p no:cacheprovider --hypothesis-show-statistics

# Mutation testing with mutmut over [tool.mutmut] only_mutate in pyproject.toml; see docs/reliability.md.
mutate: $(STAMP)
	$(BIN)/python -m pip install --quiet "mutmut==3.8.1"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results --all true > mutants/results.txt || true
	@grep -c ": killed" mutants/results.txt | sed 's/^/killed: /'; grep -c ": survived" mutants/results.txt | sed 's/^/survived: /'

bench: $(STAMP)
	$(BIN)/pytest benchmarks --benchmark-enable -p no:cacheprovider

# Bounded load test of `hetero-opt serve` on localhost (stops by itself).
loadtest: $(STAMP)
	$(BIN)/python benchmarks/serve_load.py

clean:
	rm -rf $(VENV) out mutants .pytest_cache .mypy_cache .ruff_cache instance.schema.json prod.json
