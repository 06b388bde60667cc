# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
DEMO_OUT ?= demo_output

.PHONY: install demo test

# torch first, pinned: here 2.13.0 is a local CPU wheel; an unpinned torch pulls GBs of CUDA packages.
install:
	@echo "mrisr: installing torch 2.13.0 (CPU build) and the package with its dependencies (first time: 1-3 min)"
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test,demo]'

demo: install
	@echo "mrisr: running the demo into $(DEMO_OUT) (about 3 min on 2 CPU cores)"
	$(PYTHON) -m pipeline demo --output-dir $(DEMO_OUT)

test: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q -n 2 --durations=15 tests
