import os
import re
import subprocess
import sys

import keras

import keras_seg
from keras_seg import cli


def _run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "keras_seg", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_version(capsys):
    try:
        cli.main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert capsys.readouterr().out.strip() == f"keras-seg {keras_seg.__version__}"


def test_info_reports_the_active_backend(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^backend\s+{keras.backend.backend()}$", out, re.M)
    assert re.search(rf"^keras\s+{re.escape(keras.__version__)}$", out, re.M)
    assert re.search(r"^devices\s+.*cpu", out, re.M | re.I)


def test_info_backend_flag_switches_backend_in_a_child_process():
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    result = _run("info", "--backend", other, env=env)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^backend\s+{other}$", result.stdout, re.M)


def test_bad_arguments_exit_2_with_usage():
    result = _run("info", "--backend", "caffe")
    assert result.returncode == 2
    assert "usage: keras-seg" in result.stderr and "invalid choice: 'caffe'" in result.stderr
    assert _run().returncode == 2
