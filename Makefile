PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One pip command for everything, so pip never swaps the pinned torch for another build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

DEMO_T2I := aig-data/models/tiny-sd
DEMO_VLM := aig-data/models/tiny-vlm

demo: $(STAMP)
	test -f $(DEMO_T2I)/model_index.json || HF_HUB_OFFLINE=1 $(BIN)/python -m generators.tiny_models $(DEMO_T2I)
	test -f $(DEMO_VLM)/config.json || HF_HUB_OFFLINE=1 $(BIN)/python -m labeling.tiny_vlm $(DEMO_VLM)
	HF_HUB_OFFLINE=1 $(BIN)/aig build-data --t2i-model $(DEMO_T2I) --t2i-size 64 --t2i-steps 4
	HF_HUB_OFFLINE=1 $(BIN)/aig label-semantic --model $(DEMO_VLM)
	$(BIN)/aig verify
	@echo "note: the demo's text-to-image pipeline ($(DEMO_T2I)) has random weights: its 'semantic candidates'"
	@echo "      are noise-like stand-ins that only exercise the pipeline. The pixel pairs come from the bundled"
	@echo "      trained autoencoder (generators/assets/tiny-vae) and are real reconstructions. The semantic labels come"
	@echo "      from a random-weight stand-in VLM ($(DEMO_VLM)) and carry no meaning either."

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# Tests marked slow (none yet: pytest's "no tests collected", exit 5, is not a failure here).
test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow; rc=$$?; [ $$rc -eq 5 ] || exit $$rc

# Every benchmark rewrites its own section of benchmarks/RESULTS.md (other sections are kept).
# label.py and train.py run when present; each script takes --write-results.
BENCHMARKS := ingest reconstruct label train sql scaling

bench: $(STAMP)
	@for b in $(BENCHMARKS); do \
	  if [ -f benchmarks/$$b.py ]; then echo "== benchmarks/$$b.py"; \
	    HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/$$b.py --write-results || exit 1; \
	  else echo "== benchmarks/$$b.py: not there, skipped"; fi; \
	done

clean:
	rm -rf aig-data
