# Two entry points, each of which builds its own virtual environment on a fresh
# machine with only Python 3.11:
#   make demo   - the main job on the bundled runs (no PyTorch needed)
#   make test   - the test suite (installs the CPU build of PyTorch for the trainer)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch 2.13.0 resolves to a CPU wheel on the project's machines; an unpinned
# torch would pull several GB of CUDA packages.
TORCH  ?= torch==2.13.0

# Public run data for the accuracy benchmarks (not part of the project; see README).
DATA   ?= ../shared/data

.PHONY: demo test test-fast bench bench-public clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,trainer]"
	touch $(VENV)/.core $@

demo: $(VENV)/.core
	$(BIN)/bayescale demo --out demo-output

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/fit_speed.py
	$(BIN)/python benchmarks/trainer_throughput.py

bench-public: $(VENV)/.dev
	$(BIN)/python benchmarks/public_data.py --data $(abspath $(DATA))
	$(BIN)/python benchmarks/extrapolation.py --data $(abspath $(DATA))

clean:
	rm -rf $(VENV) demo-output build *.egg-info
