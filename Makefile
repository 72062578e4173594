# ghostscope: `make demo` and `make test` each build .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ghostscope-installed
# OpenMP's default busy-wait makes torch up to 100x slower on a shared 2-core machine.
export OMP_WAIT_POLICY := PASSIVE
# numpy's OpenBLAS threads spin the same way; the heavy math runs in torch anyway.
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test test-slow test-all lint bench venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev,distributed,lightning,notebook]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ghostscope demo

# ruff (rules in .ci/ruff.toml) on all Python code; mypy (config in setup.cfg) on the packages.
lint: $(STAMP)
	$(VENV)/bin/ruff check --config .ci/ruff.toml fixedpoints analysis checkpoints tests bench examples
	$(VENV)/bin/mypy fixedpoints analysis checkpoints

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest --run-slow -m slow -q

test-all: $(STAMP)
	$(PY) -m pytest --run-slow -q

bench: $(STAMP)
	$(PY) bench/fixedpoints.py
	$(PY) bench/ghosts.py
	$(PY) bench/series.py
	$(PY) bench/custom_models.py
	$(PY) bench/events.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
