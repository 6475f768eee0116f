# The two commands of the README. Each creates .venv if needed, installs, and runs.
#   make serve   -> the gateway with embedded defaults (Valkey + two simulated engines)
#   make test    -> the whole default test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-slow bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/tollgate serve $(ARGS)

test: $(STAMP)
	$(BIN)/pytest -m "not slow" $(ARGS)

test-slow: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,llama]'
	$(BIN)/pytest -m slow $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/overhead.py $(ARGS)

clean:
	rm -rf $(VENV) .tollgate .pytest_cache
