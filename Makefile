# The two commands a newcomer runs (see README.md):
#   make demo   set up .venv and run the main job (train, evaluate, save and reload a model)
#   make test   set up .venv and run the test suite on the TensorFlow, JAX and PyTorch backends
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of PyTorch (the pinned wheel is on this project's machines); GPU users install keras-seg[all] instead.
TORCH ?= torch==2.13.0

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH)" -e ".[all]"
	touch $@

demo: setup
	$(PY) examples/quickstart.py

test: setup
	PYTHON=$(PY) bash scripts/test.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
