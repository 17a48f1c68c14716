PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint bench bench-gpu clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m harness.run --preset demo --out runs/demo

# Huge pages for the heap (harness.hugepages) as a run's processes have them; set here (glibc reads it when a
# process starts), so the suite's CLI subprocesses need not re-execute themselves for it. A GLIBC_TUNABLES of
# your own is kept, and one that sets glibc.malloc.hugetlb wins (harness.hugepages.tunables)
HUGEPAGES = GLIBC_TUNABLES="$$($(BIN)/python -c 'import os; from harness.hugepages import tunables; print(tunables(os.environ.get("GLIBC_TUNABLES")))')"

test: $(STAMP)
	$(BIN)/ruff check .
	$(HUGEPAGES) $(BIN)/python -m pytest -q --benchmark-disable

# The benchmarks' in-process calibrations and fits allocate as the workers do (HUGEPAGES)
bench: $(STAMP)
	$(HUGEPAGES) $(BIN)/python -m pytest benchmarks --benchmark-only

# GPU benchmarks (benchmarks/test_gpu.py) with the environment as it is (no install step: a GPU machine may
# be offline; VENV=... selects one with a CUDA build of torch). Without CUDA they skip with the reason;
# PERTVAE_BENCH_GPU_ON_CPU=1 runs them on the CPU at tiny sizes. Their module alone is collected: a GPU
# image without the CPU benchmarks' packages (dask, anndata, ...) stopped `pytest benchmarks` at collection.
bench-gpu:
	$(HUGEPAGES) $(BIN)/python -m pytest benchmarks/test_gpu.py -m gpu --benchmark-only -rs -s

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache .benchmarks
