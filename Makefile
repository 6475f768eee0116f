# The two commands of the README. Each creates .venv if needed, installs, and runs.
#   make serve   -> the gateway with embedded defaults (Valkey + two simulated engines)
#   make test    -> the whole default test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-slow bench clean browser default-router

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/tollgate serve $(ARGS)

test: $(STAMP) browser
	$(BIN)/pytest -m "not slow" $(ARGS)

# The dashboard test drives Debian's headless Chromium; install it when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  echo "installing Debian's chromium for the dashboard test"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test-slow: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,llama]'
	$(BIN)/pytest -m slow $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/overhead.py $(ARGS)

# Rebuild the shipped default router from the dataset the project builds itself (docs/router.md).
default-router: $(STAMP)
	$(BIN)/tollgate router build-dataset --out .tollgate/default-router-data.jsonl
	$(BIN)/tollgate router train --data .tollgate/default-router-data.jsonl --out router/data/default-router.json

clean:
	rm -rf $(VENV) .tollgate .pytest_cache
