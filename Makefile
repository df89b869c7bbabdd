# The two commands a newcomer runs (see README.md):
#   make demo   set up .venv and run the main job: train a U-Net on the synthetic shapes data,
#               evaluate it, predict the sample images, and print where the pictures are
#   make test   set up .venv and run the test suite on the TensorFlow, JAX and PyTorch backends
#               (the suite builds the documentation site strictly and runs its guides' code)
#   make docs   build the documentation site into site/
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check --no-compile
# torch 2.14.1 and torchvision 0.29.1 lie on this project's machines as a matching pair (a CUDA build that runs
# on the CPU); segmentation_models.pytorch, timm and torchvision, the test-only references, need torchvision
# beside torch. GPU users install "keras-seg[all]" and get their own build.
TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup setup-demo demo test docs clean

# The demo needs TensorFlow only (tf.data and the default backend); the tests add everything else to the same .venv.
setup-demo: $(VENV)/.demo
setup: $(VENV)/.installed

$(VENV)/.demo: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e ".[tensorflow]"
	touch $@

$(VENV)/.installed: $(VENV)/.demo
	$(PIP) $(TORCH) -e ".[all]"
	touch $@

DEMO ?= runs/demo
KERAS_SEG := $(VENV)/bin/keras-seg

demo: setup-demo
	$(KERAS_SEG) train --data shapes --model unet --widths 16,32,64,128 --epochs 15 --batch-size 8 \
		--no-augment --out $(DEMO) --overwrite
	$(KERAS_SEG) evaluate $(DEMO)/best.keras --data shapes
	$(KERAS_SEG) predict $(DEMO)/best.keras saved_models/samples --out $(DEMO)/predictions
	@echo "pictures: $(DEMO)/curves.png $(DEMO)/samples.png $(DEMO)/confusion.png $(DEMO)/predictions/"

test: setup
	PYTHON=$(PY) bash scripts/test.sh

docs: setup
	$(VENV)/bin/mkdocs build --strict -d site

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache site
