"""The ``keras-seg`` command without the backends' start-up noise.

Importing TensorFlow prints, from C++ and before any logging is configured, lines such as
``WARNING: All log messages before absl::InitializeLog() is called are written to STDERR``,
``cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.``,
``cpu_feature_guard.cc ... rebuild TensorFlow with the appropriate compiler flags`` and, at the
first device query, ``failed call to cuInit: ... UNKNOWN ERROR (303)``; ``TF_CPP_MIN_LOG_LEVEL``
does not silence them (they are written before TensorFlow reads it). :func:`quiet_backend_start`
points file descriptor 2 at a temporary file while the backend starts, then writes back every line
that is not one of those (so a real error or a Python warning still shows, once); the CUDA lines
are kept where the machine has an NVIDIA device (``/dev/nvidia0``), where they mean a GPU that
will not be used.

``KERAS_SEG_BACKEND_LOGS=1`` turns the filter off. The command line only: ``import keras_seg``
in a program changes nothing of the process's output.
"""

import contextlib
import os
import re
import sys
import tempfile

NOISE = re.compile(
    r"All log messages before absl::InitializeLog|cpu_feature_guard\.cc|To enable the following instructions"
    r"|rebuild TensorFlow with the appropriate compiler flags|oneDNN custom operations are on"
    r"|Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|TF-TRT Warning"
    r"|This TensorFlow binary is optimized|port\.cc:\d+\] oneDNN|absl::InitializeLog"
)
# Noise on a machine without a GPU; a GPU that cannot be used on a machine with one is news.
CUDA = re.compile(r"cudart_stub\.cc|Could not find cuda drivers|failed call to cuInit|cuda_platform\.cc"
                  r"|cuda_executor\.cc|cuda_diagnostics|kernel driver does not appear to be running")  # fmt: skip
ENV = "KERAS_SEG_BACKEND_LOGS"


def wanted():
    """Whether to filter: not when ``KERAS_SEG_BACKEND_LOGS`` is set to anything but 0 / empty."""
    return os.environ.get(ENV, "0") in ("", "0")


def is_noise(line, has_gpu=None):
    has_gpu = os.path.exists("/dev/nvidia0") if has_gpu is None else has_gpu
    return bool(NOISE.search(line)) or (not has_gpu and bool(CUDA.search(line)))


def invoked_as_cli():
    """True in the ``keras-seg`` console script and in ``python -m keras_seg.cli``."""
    if os.path.basename(sys.argv[0] or "") == "keras-seg":
        return True
    orig = list(getattr(sys, "orig_argv", []))
    return "-m" in orig and orig[orig.index("-m") + 1 : orig.index("-m") + 2] == ["keras_seg.cli"]


@contextlib.contextmanager
def quiet_backend_start():
    """Swallow the backend's start-up noise written to fd 2 inside the block; write back everything else."""
    if not wanted():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (a notebook, a closed descriptor): nothing to filter
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines(keepends=True) if not is_noise(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def start_backend():
    """Import Keras and start its backend's devices, so that their one-time messages come out now."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # cuInit happens here, not at import
    return keras
