# The two commands of the README. Each creates .venv if needed, installs, and runs.
#   make serve   -> the gateway with embedded defaults (Valkey + two simulated engines)
#   make test    -> the whole default test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-unit test-slow bench clean system-deps default-router

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/tollgate serve $(ARGS)

# Lint and type-check first (pyproject's [tool.ruff] and [tool.mypy]): they fail fast, before the suite.
# The suite's tiers: tests/unit (no processes), tests/redis (a real Valkey), tests/e2e (real processes).
test: $(STAMP) system-deps
	$(BIN)/ruff check --quiet .
	$(BIN)/mypy
	$(BIN)/pytest -m "not slow" $(ARGS)

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit $(ARGS)

# Debian packages some tests drive (command:package): headless Chromium (the dashboard),
# docker-compose (to validate docker-compose.yml; no Docker engine is needed) and nginx (the load
# balancer of the scale-out test). Installed when missing.
SYSTEM_DEPS := chromium:chromium docker-compose:docker-compose nginx:nginx-light
system-deps:
	@missing=""; for pair in $(SYSTEM_DEPS); do tool=$${pair%%:*}; \
	  command -v $$tool >/dev/null 2>&1 || [ -x /usr/sbin/$$tool ] || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  echo "installing Debian packages for the tests:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test-slow: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,llama]'
	$(BIN)/pytest -m slow $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/overhead.py $(ARGS)

# Rebuild the shipped default router from the dataset the project builds itself (docs/router.md).
default-router: $(STAMP)
	$(BIN)/tollgate router build-dataset --out .tollgate/default-router-data.jsonl
	$(BIN)/tollgate router train --data .tollgate/default-router-data.jsonl --out router/data/default-router.json --cv 5

clean:
	rm -rf $(VENV) .tollgate .pytest_cache
