# CRAFT for SpeechBrain: install, test, demo.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchaudio must be a matched pair (see README). TORCH_INDEX: a
# PyTorch wheel index for older GPU drivers, e.g. https://download.pytorch.org/whl/cu126
TORCH_PINS := torch==2.11.0 torchaudio==2.11.0
TORCH_INDEX ?=

.PHONY: install test lint demo bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -c "import torch, torchaudio, speechbrain; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__, 'speechbrain', speechbrain.__version__)"
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .

# -n auto: one pytest-xdist worker per CPU (tests/conftest.py splits the threads);
# loadgroup: the modules that train a run in a fixture stay on one worker.
test: install lint
	$(BIN)/python -m pytest -q -n auto --dist loadgroup

bench: install
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_diverse.py
	$(BIN)/python benchmarks/bench_clar.py
	$(BIN)/python benchmarks/bench_scale.py --quick
	if command -v espeak-ng >/dev/null; then $(BIN)/python benchmarks/bench_learning.py; else echo "bench_learning.py skipped: it needs espeak-ng (apt-get install espeak-ng)"; fi

# The demo's numbers depend on the CPU threads of its recipe runs (see README).
DEMO_THREADS ?= 1
demo: install
	$(BIN)/python demo/run_demo.py --threads=$(DEMO_THREADS)

clean:
	rm -rf $(VENV) build *.egg-info
