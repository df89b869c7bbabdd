# The two commands a newcomer runs (see README.md):
#   make demo   set up .venv and run the main job: train a U-Net on the synthetic shapes data,
#               evaluate it, predict the sample images, and print where the pictures are
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

DEMO ?= runs/demo
KERAS_SEG := $(VENV)/bin/keras-seg

demo: setup
	$(KERAS_SEG) train --data shapes --model unet --widths 16,32,64,128 --epochs 15 --batch-size 8 \
		--no-augment --out $(DEMO) --overwrite
	$(KERAS_SEG) evaluate $(DEMO)/best.keras --data shapes
	$(KERAS_SEG) predict $(DEMO)/best.keras saved_models/samples --out $(DEMO)/predictions
	@echo "pictures: $(DEMO)/curves.png $(DEMO)/samples.png $(DEMO)/confusion.png $(DEMO)/predictions/"

test: setup
	PYTHON=$(PY) bash scripts/test.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
