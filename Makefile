PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One pip command for everything, so pip never swaps the pinned torch for another build. pip compiles the
# installed files one by one; compileall on every core does the same in a third of the time (it reports the few
# files written for newer Pythons, such as torch's py312 test helpers, which pip skips too: hence `|| true`).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $(STAMP)

DEMO_T2I := aig-data/models/tiny-sd
# 12 photos: 7 train, 1 val, 4 test (split hashes of the photo groups), so the held-out figure rests on 4 photos
DEMO_SPLIT := 0.5,0.04,0.46
DEMO_PIXEL := --max-steps 150 --batch-size 16 --crops-per-pair 8 --calibrate-on both --threads 2
DEMO_VLM := aig-data/models/tiny-vlm
# Trained branches the demo evaluates (run folders of `aig train`: final/ and adapter/ inside are found).
EVAL_PIXEL ?= aig-runs/pixel
EVAL_SEMANTIC ?= aig-runs/semantic

demo: $(STAMP)
	test -f $(DEMO_T2I)/model_index.json || HF_HUB_OFFLINE=1 $(BIN)/python -m aig.generators.tiny_models $(DEMO_T2I)
	test -f $(DEMO_VLM)/config.json || HF_HUB_OFFLINE=1 $(BIN)/python -m aig.labeling.tiny_vlm $(DEMO_VLM)
	HF_HUB_OFFLINE=1 $(BIN)/aig build-data --split $(DEMO_SPLIT) --t2i-model $(DEMO_T2I) --t2i-size 64 --t2i-steps 4
	HF_HUB_OFFLINE=1 $(BIN)/aig label-semantic --model $(DEMO_VLM)
	$(BIN)/aig verify
	HF_HUB_OFFLINE=1 $(BIN)/aig train --branch pixel -o aig-runs/pixel $(DEMO_PIXEL)
	$(BIN)/python -m aig.training.holdout aig-runs/pixel/final --split test --jpeg 75
	HF_HUB_OFFLINE=1 $(BIN)/aig train --branch semantic --model $(DEMO_VLM) -o aig-runs/semantic --max-steps 4 --batch-size 2 --no-progress
	@echo "note: the pixel figures above are balanced accuracy on the 4 held-out (test split) photos' pairs, as stored"
	@echo "      and after JPEG q75 on both classes; one photo moves them by 12.5 points. The semantic run is a smoke run"
	@echo "      on the stand-in VLM's meaningless labels."
	@echo "note: the demo's text-to-image pipeline ($(DEMO_T2I)) has random weights: its 'semantic candidates'"
	@echo "      are noise-like stand-ins that only exercise the pipeline. The pixel pairs come from the bundled"
	@echo "      trained autoencoder (generators/assets/tiny-vae) and are real reconstructions. The semantic labels come"
	@echo "      from a random-weight stand-in VLM ($(DEMO_VLM)) and carry no meaning either."
	HF_HUB_OFFLINE=1 $(BIN)/aig evaluate --pixel $(EVAL_PIXEL) \
	    $$(test -d $(EVAL_SEMANTIC) && echo --semantic-adapter $(EVAL_SEMANTIC) --constrained --max-new-tokens 64)
	$(BIN)/aig report

# One pytest worker per core, a test file per worker (its module fixtures are built once): the tests wait on
# subprocesses and Ray start-ups much of the time, so two workers on 2 cores more than halve the wall time.
test: $(STAMP) chromium
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n auto --dist loadfile

# Tests marked slow (cluster, object storage, kill -9 resume of the model stages, labeling and training, labeling on Ray, fault injection, Ray Train; pytest exit 5 "no tests" is not a failure).
test-slow: $(STAMP) chromium
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow; rc=$$?; [ $$rc -eq 5 ] || exit $$rc

# Every benchmark rewrites its own section of benchmarks/RESULTS.md (other sections are kept).
# label.py and train.py run when present; each script takes --write-results. On a CUDA machine the GPU
# sections follow (benchmarks/gpu_all.sh).
BENCHMARKS := ingest reconstruct generate label train sql scaling

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@for b in $(BENCHMARKS); do \
	  if [ -f benchmarks/$$b.py ]; then echo "== benchmarks/$$b.py"; \
	    HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/$$b.py --write-results || exit 1; \
	  else echo "== benchmarks/$$b.py: not there, skipped"; fi; \
	done
	@if $(BIN)/python -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then \
	  echo "== benchmarks/gpu_all.sh (CUDA device found)"; PYTHON=$(BIN)/python benchmarks/gpu_all.sh || exit 1; \
	else echo "== GPU sections: no CUDA device, marked not measured (their last figures are kept)"; fi

# Headless Chromium for the report-rendering test (Debian package `chromium`); installed when missing.
# If it cannot be installed the test is skipped and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	    $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q chromium >/dev/null 2>&1; }; } || \
	  echo "warning: could not install chromium (apt-get install chromium): the report-rendering test will be skipped"

clean:
	rm -rf aig-data aig-runs
