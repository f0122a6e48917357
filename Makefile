# govshare: `make demo` runs the demo network, `make test` runs the tests.
# Each target creates .venv when it is missing and installs the project into it.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BUF    := node_modules/.bin/buf
QUICK  ?=

.PHONY: demo test lint proto bench fuzz soak clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BUF):
	npm install --silent --no-audit --no-fund --no-save @bufbuild/buf@1.75.0

demo: $(STAMP)
	$(VENV)/bin/govshare demo

test: $(STAMP) $(BUF)
	$(PY) -m pytest -q

lint: $(STAMP) $(BUF)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(BUF) lint

proto: $(STAMP)
	$(PY) proto/generate.py

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench $(if $(QUICK),--quick,)

fuzz: $(STAMP)
	GOVSHARE_FUZZ_EXAMPLES=2000 $(PY) -m pytest -q tests/security -k fuzz

soak: $(STAMP)
	$(PY) -m bench.soak

clean:
	rm -rf $(VENV) node_modules .pytest_cache build *.egg-info
