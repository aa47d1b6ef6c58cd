# Two commands for a fresh machine: `make demo` (install + main job on the demo data), `make test`.
PY ?= python3
VENV ?= .venv
# GPU users: install your CUDA torch into $(VENV) first, then run with CONSTRAINTS= (empty) so pip keeps it.
CONSTRAINTS ?= constraints.txt
PIP_C := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
BIN := $(VENV)/bin

.PHONY: install browser labelstudio demo test lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q $(PIP_C) -e '.[dev]'
	touch $@

# Two stories on procedural road scenes: label map -> image (rare classes), then the condition gap (day -> night/fog)
demo: install
	$(BIN)/synthlabel run configs/demo.yaml
	$(BIN)/synthlabel run configs/demo_condition.yaml

# Reports are checked in a real headless browser; Chromium comes from Debian's packages where we may install it.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || \
	  echo "note: Chromium could not be installed; the browser check of the report is skipped"

# Label Studio in its own venv (its pins clash with ours), for the labeling round-trip test of `synthlabel mine`
labelstudio: $(VENV)-labelstudio/.installed

$(VENV)-labelstudio/.installed: constraints-labelstudio.txt
	@($(PY) -m venv $(VENV)-labelstudio && $(VENV)-labelstudio/bin/pip install -q -c constraints-labelstudio.txt "label-studio==1.23.2" && touch $@) || \
	  echo "note: Label Studio could not be installed; the labeling round-trip test is skipped"

# One thread per process: several tests start 2-process torch.distributed groups or kill/resume subprocesses, and
# oversubscribed OpenMP threads on a small CPU slow them tens of times.
test: install browser labelstudio
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks && $(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) $(VENV)-labelstudio runs demo_out
