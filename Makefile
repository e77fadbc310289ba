# The workbench's commands. Every target installs first when .venv is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXPERIMENT ?= experiments/default.yaml
TRIALS ?=
WORKERS ?=
PORT ?= 5000
BENCH_FLAGS ?=  # e.g. make bench BENCH_FLAGS="--only models --quick" (python -m tools.bench --help)
DASHBOARD_PORT ?= 8080
DOCS_PORT ?= 8000

SEARCH_FLAGS := $(if $(TRIALS),--n-trials $(TRIALS)) $(if $(WORKERS),--workers $(WORKERS))

.PHONY: install search ui dashboard test check docs docs-build test-gpu lint bench notebooks lab clean

install: $(STAMP)

# torch first and pinned: an unpinned torch pulls gigabytes of CUDA wheels. The editable install
# also compiles the pruner's optional C kernels, so editing them reinstalls on the next target.
# The [hf] extra (transformers, datasets, accelerate: about 1.5 minutes and 180 MB more) comes
# with it so that `make test` runs the Hugging Face task families and the Trainer callback; the
# pinned torch on the same command line keeps pip from replacing it.
$(STAMP): pyproject.toml setup.py workbench/pruner/_backend/_kernels.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet torch==2.13.0 -e '.[dev,hf]'
	touch $(STAMP)

search: $(STAMP)
	$(BIN)/workbench search $(EXPERIMENT) $(SEARCH_FLAGS)

# prints the study's runs page once the server answers; OPEN=1 opens it in a browser
ui: $(STAMP)
	$(BIN)/workbench ui --port $(PORT) $(if $(OPEN),--open)

# Optuna's own dashboard over the study's storage; installs the optional extra on first use
dashboard: $(STAMP)
	$(BIN)/python -c "import optuna_dashboard" 2>/dev/null || $(BIN)/pip install --quiet -e '.[dev,dashboard]'
	$(BIN)/workbench dashboard --port $(DASHBOARD_PORT) $(if $(OPEN),--open)

# the whole suite (what CI runs), then the documentation site built strictly: a broken link, a
# missing page or an unreadable docstring fails it
test: lint
	$(BIN)/python -m pytest -q
	$(MAKE) docs-build

# the fast loop: lint and the tests that start no process and no server (tests/conftest.py fails
# an unmarked test that starts one: mark it e2e)
check: lint
	$(BIN)/python -m pytest -q -m "not slow and not e2e and not browser"

# the site goes to site/ (git ignores it)
docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

# serves docs/ with the API reference on 127.0.0.1:$(DOCS_PORT), rebuilt on every edit
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

# the GPU tests (marker gpu: a trial on CUDA vs the CPU, bf16 fine-tuning, pruner masks on CUDA);
# each is skipped with its reason (-rs) where there is no CUDA device, and the target exits 0
# the GPU tests (they skip without CUDA), then, where there is a GPU, the bench's pruner, model and slim tables on it
test-gpu: $(STAMP)
	$(BIN)/python -m pytest -q -m gpu -rs tests
	@if $(BIN)/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		$(BIN)/python -m tools.bench --device cuda --only pruner --only models --only slim --quick; \
	else echo "no CUDA device: the GPU bench is skipped"; fi

# the import contracts of docs/design.md (layers point downward, no cycles), ruff lint and format
lint: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check --quiet .
	$(BIN)/ruff format --check --quiet .

bench: $(STAMP)
	$(BIN)/python -m tools.bench $(BENCH_FLAGS)

# EXPERIMENT given on the command line chooses the study (a name or its YAML); else the latest study
notebooks: $(STAMP)
	$(BIN)/python -m tools.notebooks $(if $(filter command line,$(origin EXPERIMENT)),--experiment $(EXPERIMENT))

lab: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,lab]'
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser notebooks/

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build site workbench/pruner/_backend/_kernels.*.so
