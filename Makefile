# The two commands of the README:
#   make demo   - the main job end to end on the embedded demo corpus
#   make test   - the test suite (what CI runs)
# Both create the virtual environment .venv on first use and reuse it afterwards.
#
# TORCH_SPEC picks the PyTorch build: the default pin installs the CPU wheel quickly where
# it is cached; GPU users can pass e.g. TORCH_SPEC="torch" or install their CUDA build first.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
DATA ?= data/demo-corpus
ACTORS ?= 91
JOBS ?=
PROFILE ?= auto
PYTEST_ARGS ?=
# Test processes side by side (pytest-xdist): one per core by default. Each test file runs whole in
# one process (--dist loadfile), so a file's expensive fixtures (a JupyterLab server, the SLURM
# cluster, the main job) are made once. TEST_JOBS=0 runs everything in this process.
TEST_JOBS ?= auto

.PHONY: setup demo data manifest features test lab clean-outputs

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev,wandb]"
	touch $@

$(DATA)/demo_corpus.json: | setup
	$(PY) -m ser_utils demo-data --out $(DATA) --actors $(ACTORS) $(if $(JOBS),--jobs $(JOBS))

data: $(DATA)/demo_corpus.json

manifest: data
	$(PY) -m ser_utils manifest --data $(DATA) --out outputs/manifest.csv

features: data
	$(PY) -m ser_utils features --data $(DATA)

# The main job: demo corpus, features, notebooks 01-06, the 27-run sweep, 08, HTML report.
# PROFILE=auto picks gpu where CUDA is available, else quick (and prints its choice).
demo: setup
	$(PY) -m ser_utils all --profile $(PROFILE)

# JupyterLab on the notebooks. First makes sure they have a corpus (the one `make demo` used, else
# a demo corpus under data/, else the quick demo corpus, generated here), so Run All works anywhere.
lab: setup
	$(PY) -m ser_utils.data.discovery
	$(VENV)/bin/jupyter lab notebooks/

test: setup
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

clean-outputs:
	rm -rf outputs/features outputs/runs outputs/figures outputs/report outputs/results.csv outputs/manifest.csv
