# The README's two commands: `make blog` (the main job) and `make test` (all checks; .ci/run calls it).
# Each sets itself up idempotently on a fresh machine: Debian packages, a virtual environment with torch==2.13.0
# installed first (a CPU wheel; other versions pull GBs of CUDA packages), the rest pinned by constraints.txt.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
APT_PACKAGES := abcm2ps chromium lilypond musescore3
# the data recipe of `make data` and `make blog`: cpu-short (the sweep's two-bar strips), cpu, tiny, pages, chords
# (PRESET=..., its old name, still works). The studies name the recipe their preset reads.
RECIPE ?= $(or $(PRESET),cpu-short)
SWEEP_PRESET := cpu-short
# runs (and pages) at a time (omr-blog sweep/render --lanes): on 2 cores two one-thread runs train more samples/s than
# one two-thread run (benchmarks/sweep_lanes.py measures by how much); every run still takes the same steps
LANES ?= 2
# the shipped checkpoint's run (make default-checkpoint)
DEFAULT_RUN := runs/cpu-long-engravers-musescore-ragged/resnet50
export WANDB_MODE ?= offline
export PYTHONUNBUFFERED := 1

.PHONY: blog test test-fast lint setup apt data lab tiny-data check-generated pytest pytest-fast nbtest nbtest-fast benchmarks default-checkpoint efficiency exposure levers ctc screenshots help gpu-prep gpu-suite

help:
	@echo "make blog   - build the dataset and the post (main job)"
	@echo "make test   - every check (what CI runs)"
	@echo "make test-fast - unit tests, lint and the lesson cells that do not train (about 2 minutes)"
	@echo "make setup  - only install (Debian packages + .venv)"
	@echo "make lab    - open the notebooks in JupyterLab"
	@echo "make gpu-prep / gpu-suite - prepare the GPU measurements here / run them on a GPU machine"

setup: apt $(VENV_STAMP)

apt:
	@missing=""; for p in $(APT_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV_STAMP): pyproject.toml constraints.txt
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
	.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

data: setup
	.venv/bin/omr-blog data --recipe $(RECIPE)

# The notebooks in JupyterLab (the `lab` extra is installed on first use). LAB_ARGS passes options, e.g. --no-browser.
lab: setup
	@.venv/bin/python -c "import jupyterlab" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,lab]'
	.venv/bin/jupyter lab --notebook-dir=nbs $(LAB_ARGS)

# The main job: dataset + tokenizer, the sweep, then the pages: those that read the records (the notebooks that declare
# papermill parameters: the sections and Section 4's page on exposure bias, the landing page last) executed with
# papermill on the dataset, the deep dives' lesson cells, and the site (omr-blog render).
blog: setup
	.venv/bin/omr-blog data --recipe $(RECIPE)
	.venv/bin/omr-blog sweep --preset $(SWEEP_PRESET) --lanes $(LANES)
	.venv/bin/omr-blog render --sections omr-synth-$(RECIPE) --deep-dives --lanes $(LANES)
	@echo "the post: _site/index.html (executed notebooks in runs/blog/)"

# The shipped checkpoint of `omr-blog transcribe` (about 40 minutes on 2 cores: 11 of data, 23 of training, where
# both were measured; not part of make blog).
default-checkpoint: setup
	.venv/bin/omr-blog data --recipe cpu-engravers-musescore-ragged
	.venv/bin/omr-blog data --recipe cpu --heldout lilypond
	.venv/bin/omr-blog train --preset cpu-long-engravers-musescore-ragged --backbone resnet50
	for s in test test_abcm2ps val test_degraded; do .venv/bin/omr-blog eval --checkpoint $(DEFAULT_RUN)/checkpoint --split $$s --quiet; done
	.venv/bin/omr-blog eval --checkpoint $(DEFAULT_RUN)/checkpoint --dataset omr-synth-cpu-lilypond --name test_lilypond --quiet
	.venv/bin/python -c "from omr_blog.transcribe import export_checkpoint; print(export_checkpoint('$(DEFAULT_RUN)'))"

# Section 5 and 6's experiments (CPU scale, about 40 minutes on 2 cores; needs the cpu-tiny sweep of make blog).
efficiency: setup
	.venv/bin/omr-blog data --recipe cpu --quiet >/dev/null
	.venv/bin/omr-blog sweep --preset cpu-tiny --quiet
	.venv/bin/omr-blog efficiency

# The runs behind "Beyond teacher forcing" (scheduled sampling, GRPO; about 15 minutes on 2 cores) and Section 2's
# CTC lesson (about 3 minutes). CPU scale, not part of make blog; the pages read their committed records.
exposure: setup
	.venv/bin/omr-blog data --recipe cpu --quiet >/dev/null
	.venv/bin/omr-blog exposure

# Which lever gets a tiny model off the loss plateau sooner (4-minute runs of ResNet-50, one per lever; not part of make blog).
levers: setup
	.venv/bin/omr-blog data --recipe cpu --quiet >/dev/null
	.venv/bin/omr-blog data --recipe cpu-short --quiet >/dev/null
	.venv/bin/omr-blog levers

ctc: setup
	.venv/bin/omr-blog data --recipe cpu --quiet >/dev/null
	.venv/bin/omr-blog ctc
	.venv/bin/omr-blog ctc --chords

# Screenshots of the rendered post for the README (after make blog).
screenshots: setup
	.venv/bin/omr-blog render --screenshots runs/site-screenshots
	cp runs/site-screenshots/index.png figures/screenshot-index.png
	cp runs/site-screenshots/04_results.png figures/screenshot-results.png

# omr_blog/ is generated from nbs/ and notebooks are stored clean: a check fails if either would change.
check-generated: setup
	@before=$$(git status --porcelain --untracked-files=all -- omr_blog nbs); \
	.venv/bin/nbdev-export && .venv/bin/nbdev-clean >/dev/null; \
	after=$$(git status --porcelain --untracked-files=all -- omr_blog nbs); \
	if [ "$$before" != "$$after" ]; then \
	  echo "nbdev-export/nbdev-clean changed tracked files: run them and commit:"; git status --short -- omr_blog nbs; exit 1; fi

pytest: tiny-data
	HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q tests

# The notebooks read the tiny dataset (CPU-sized parameters); build it once, before they run.
tiny-data: setup
	.venv/bin/omr-blog data --recipe tiny --quiet >/dev/null

# Section notebooks and the landing page run in tests/test_site.py (papermill, then the browser test of the site).
# Lesson cells flagged `#| slow` (they train, or measure a training step in a fresh process) run only in `make test`.
NBTEST := HF_HUB_OFFLINE=1 .venv/bin/nbdev-test --n-workers 1 --timing --skip-file-re '^(0[1-7]_|04b_beyond|index)'
nbtest: tiny-data
	$(NBTEST) --flags slow

nbtest-fast: tiny-data
	$(NBTEST)

# Unused imports and undefined names, in the package, the tests and every notebook cell.
lint: setup
	.venv/bin/ruff check --select F401,F821 omr_blog tests benchmarks nbs

pytest-fast: tiny-data
	HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q -m "not slow" tests

test: lint check-generated pytest nbtest

# The quick subset while editing: no training, no papermill, no browser.
test-fast: lint check-generated pytest-fast nbtest-fast

# The GPU suite (benchmarks/gpu_suite.py): gpu-prep fills the carry folder .gpu/ here (pages, strips, tokenizers and the
# packages the GPU image lacks, from a committed tree); gpu-suite runs it on the GPU machine with its own python3 (<= 8 min).
gpu-prep: setup
	.venv/bin/omr-blog data --recipe cpu-short --quiet >/dev/null
	.venv/bin/python benchmarks/gpu_suite.py prep

GPU_PYTHON ?= python3
gpu-suite:
	PYTHONPATH=.gpu/site:. $(GPU_PYTHON) benchmarks/gpu_suite.py run $(SUITE_ARGS)

benchmarks: setup
	.venv/bin/python benchmarks/render_throughput.py
	.venv/bin/python benchmarks/loader_throughput.py
	.venv/bin/python benchmarks/staff_check.py
