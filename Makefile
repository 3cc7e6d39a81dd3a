# One virtual environment (.venv) for everything; `make quickstart` and `make test` set it up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
# Install torch on its own first, pinned: on CPU-only machines point pip at a CPU wheel (PIP_FIND_LINKS
# or --index-url https://download.pytorch.org/whl/cpu); a bare `torch` pulls the CUDA build.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# Wheels the packaging test installs from (no index at test time): the base install plus onnxruntime.
WHEELHOUSE ?= .wheelhouse

.PHONY: setup quickstart test lint bench bench-large bench-large-int8 bench-token-merging bench-exporters bench-distill bench-families pi-check clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(VENV)/bin/python -m pip install --quiet -e ".[all]"
	$(VENV)/bin/python -m pip download --quiet --only-binary=:all: -d $(WHEELHOUSE) numpy pillow onnxruntime
	touch $@

quickstart: setup
	$(VENV)/bin/vitedge quickstart

test: setup
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python scripts/lint_imports.py

# The published results (benchmarks/results/): every format and precision in the registry, plus peers.
# The GEMM ceiling first: the report compares every artifact's effective GMAC/s with it.
bench: setup
	$(VENV)/bin/python -m vitedge.benchmarks.studies.gemm_ceiling --out benchmarks/results/gemm_ceiling.md
	$(VENV)/bin/python -m vitedge.benchmarks.studies.publish --out benchmarks/results
	$(VENV)/bin/python -m vitedge.benchmarks.studies.token_merging --out benchmarks/results/token_merging.md

# ViT-L/16-384 too (several GB of memory, an hour or more on a small machine); other sections are kept.
bench-large: setup
	$(VENV)/bin/python -m vitedge.benchmarks.studies.publish --out benchmarks/results --only-large

# ViT-L/16-384's int8 head-to-head: each format's fastest int8 and the int8 peers (about an hour here).
bench-large-int8: setup
	$(VENV)/bin/python -m vitedge.benchmarks.studies.publish --out benchmarks/results --large-int8

# Token merging: speed against top-1 for R = 0..max (quickstart model, ViT-B/16-224; ViT-L/16-384 with --large).
bench-token-merging: setup
	$(VENV)/bin/python -m vitedge.benchmarks.studies.token_merging --out benchmarks/results/token_merging.md

bench-exporters: setup
	$(VENV)/bin/python -m vitedge.benchmarks.studies.exporter_choice --out benchmarks/results/onnx_exporter.md

# Fine-tune a ViT-Small-size teacher, distill it into a ViT-Tiny-size student, quantize (PTQ and QAT); ~30-40 min on 2 cores.
bench-distill: setup
	$(VENV)/bin/python -m vitedge.benchmarks.studies.distill_bench --out benchmarks/results/distillation.md

# Every model family: fine-tuned minis converted to every format/precision the registry claims (top-1), then the
# edge-sized presets timed at batch 1 (hours on 2 cores; artifacts cached in .bench-work/families/).
bench-families: setup
	$(VENV)/bin/python -m vitedge.benchmarks.studies.families --part accuracy --out benchmarks/results/families_accuracy.md
	$(VENV)/bin/python -m vitedge.benchmarks.studies.families --part latency --out benchmarks/results/families_latency.md

# Raspberry Pi OS (Debian bookworm arm64) under qemu: install the wheel there (no torch) and run `vitedge verify`
# on ONNX and TFLite artifacts made here (their self-checks). Needs root; the root file system is cached in
# .pi-check/ (see scripts/pi_check.sh --help).
pi-check: setup
	PYTHON=$(VENV)/bin/python scripts/pi_check.sh $(PI_CHECK_ARGS)

clean:
	rm -rf $(VENV) $(WHEELHOUSE) build dist *.egg-info vitedge-quickstart .bench-work
