"""Shared pytest setup: every test runs on the backend named by KERAS_BACKEND."""

import os

try:  # PyTorch and triton first: segmentation_models_pytorch / timm import triton, which segfaults after TensorFlow
    import torch  # noqa: F401
    import triton  # noqa: F401
except ImportError:
    pass

import keras
import numpy as np
import pytest

try:
    from hypothesis import settings

    # Small, deadline-free profiles: jit compilation on the first example would trip deadlines.
    # 25 examples a property on the TensorFlow pass, 10 on the JAX and PyTorch passes (the same formulas, which
    # the hand-computed and reference tests check on every backend; compiling each example is what costs there).
    examples = 25 if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow" else 10
    settings.register_profile("ci", max_examples=examples, deadline=None, derandomize=True)
    settings.register_profile("dev", max_examples=examples, deadline=None)
    settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
except ImportError:  # hypothesis is a dev dependency
    pass


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


# Tests marked ``once`` check something that does not depend on the Keras backend (file handling, error
# messages, graph structure and parameter counts, tf.data pipelines, plots, command-line parsing): they run
# on the TensorFlow pass of scripts/test.sh and are skipped on the JAX and PyTorch passes, which keep every
# test of numerics, training, saving and loading.
# Cases marked ``breadth`` widen a numeric check to more settings (another encoder under a decoder that the
# other cases check on every backend): all of them run on the TensorFlow pass, and the JAX and PyTorch passes
# run the cases left unmarked, which cover each layer and architecture there once.
ONCE_BACKEND = "tensorflow"


def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() == ONCE_BACKEND:
        return
    skip = pytest.mark.skip(reason=f"backend-independent: checked once, on the {ONCE_BACKEND} pass")
    sample = pytest.mark.skip(reason=f"a wider setting of a check this pass runs on other cases; all on the {ONCE_BACKEND} pass")
    for item in items:
        if item.get_closest_marker("once"):
            item.add_marker(skip)
        elif item.get_closest_marker("breadth"):
            item.add_marker(sample)


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts with float32 policy and fresh layer names; seeds fixed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    np.random.seed(0)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def backend():
    return keras.backend.backend()
