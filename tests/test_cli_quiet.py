"""``keras-seg`` starts without the backends' start-up noise; KERAS_SEG_BACKEND_LOGS=1 brings it back."""

import os
import subprocess
import sys

import keras
import pytest

from keras_seg.utils import quiet

TENSORFLOW = keras.backend.backend() == "tensorflow"
pytestmark = pytest.mark.skipif(not TENSORFLOW, reason="TensorFlow's start-up lines; one backend's pass covers it")


def keras_seg(*args, **env):
    environment = {k: v for k, v in os.environ.items() if k != quiet.ENV}
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "keras_seg.cli", *args], capture_output=True, text=True,
                          timeout=300, env=environment)  # fmt: skip


STARTUP = ("absl::InitializeLog", "cudart_stub", "cpu_feature_guard", "rebuild TensorFlow", "cuInit",
           "Could not find cuda drivers")  # fmt: skip


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "export"])
def test_commands_print_no_backend_startup_lines(command):
    done = keras_seg(command, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: keras-seg" in done.stdout
    assert not [line for line in done.stderr.splitlines() if any(s in line for s in STARTUP)], done.stderr


def test_info_runs_the_backend_and_stays_quiet():
    done = keras_seg("info")
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if any(s in line for s in STARTUP)], done.stderr


def test_the_environment_variable_keeps_the_backend_logs():
    """So the filter is what removed them (TensorFlow prints some of these at import on every machine here)."""
    done = keras_seg("train", "--help", KERAS_SEG_BACKEND_LOGS="1")
    assert done.returncode == 0
    assert any(s in done.stderr for s in STARTUP), done.stderr


def test_what_the_filter_keeps():
    assert quiet.is_noise("I0000 00:00:1.2 123 cpu_feature_guard.cc:227] This TensorFlow binary is optimized", False)
    assert quiet.is_noise("E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)", has_gpu=False)
    # on a machine with an NVIDIA device, a CUDA failure means a GPU that will not be used: it shows
    assert not quiet.is_noise("E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)", has_gpu=True)
    assert not quiet.is_noise("UserWarning: the option --foo is deprecated", has_gpu=False)
    assert not quiet.is_noise("keras-seg: error: no such file: a.keras", has_gpu=False)


def test_the_filter_writes_back_what_is_not_noise(capfd):
    with quiet.quiet_backend_start():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"a real problem\n")
    assert capfd.readouterr().err == "a real problem\n"
