# Two entry points, each of which builds its own virtual environment on a fresh
# machine with only Python 3.11:
#   make demo   - the main job on the bundled runs (no PyTorch needed)
#   make test   - the test suite (installs the CPU build of PyTorch for the trainer)
# Both install the tested versions in constraints.txt; pyproject.toml keeps open
# ranges for users who install bayescale into an environment of their own.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch 2.13.0 resolves to a CPU wheel on the project's machines; an unpinned
# torch would pull several GB of CUDA packages.
TORCH  ?= torch==2.13.0
# The tested set of versions (pip constraints). `make test CONSTRAINTS=constraints-oldest.txt
# VENV=.venv-oldest` runs the suite on the oldest versions bayescale supports, and
# `CONSTRAINTS=` (empty) on the newest ones pyproject.toml allows.
CONSTRAINTS ?= constraints.txt
PIN    := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
# Demo options, e.g. `make demo DEMO_ARGS="--seed 1 --strict"`.
DEMO_ARGS ?=
# Test processes (pytest-xdist). Most of a small fit's time is XLA compiling, on one core,
# so two processes keep both cores of a 2-core machine busy; whole test files go to one
# process, so that a module's shared fits run once. TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Public run data for the accuracy benchmarks (not part of the project; see README).
DATA   ?= ../shared/data

.PHONY: demo test test-fast bench bench-public lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.core: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(PIN) -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet $(PIN) -e ".[dev,trainer]"
	touch $(VENV)/.core $@

demo: $(VENV)/.core
	$(BIN)/bayescale demo --out demo-output $(DEMO_ARGS)

test: $(VENV)/.dev
	$(PYTEST)

test-fast: $(VENV)/.dev
	$(PYTEST) -m "not slow"

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/fit_speed.py
	$(BIN)/python benchmarks/trainer_throughput.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/demo_gate.py

bench-public: $(VENV)/.dev
	$(BIN)/python benchmarks/public_data.py --data $(abspath $(DATA))
	$(BIN)/python benchmarks/extrapolation.py --data $(abspath $(DATA))
	$(BIN)/python benchmarks/track.py --data $(abspath $(DATA))
	$(BIN)/python benchmarks/track_width.py --data $(abspath $(DATA))
	$(BIN)/python benchmarks/track_density.py --data $(abspath $(DATA))
	$(BIN)/python benchmarks/schedules.py --data $(abspath $(DATA))

# Re-pin constraints.txt to what the current environment has (after a deliberate upgrade
# and a green `make test`).
lock: $(VENV)/.dev
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) demo-output build *.egg-info
