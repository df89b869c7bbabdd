"""The ``keras-seg`` command.

``keras-seg --version`` and ``keras-seg info`` work today; ``train``, ``evaluate``,
``predict``, ``export`` and ``bench`` arrive with the issues that build them.
"""

import argparse
import importlib.metadata
import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")


def _version():
    from keras_seg.version import __version__

    return __version__


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-seg",
        description="Semantic segmentation with Keras 3 on TensorFlow, JAX or PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"keras-seg {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="show the Keras backend in use, library versions and devices")
    info.add_argument(
        "--backend",
        choices=BACKENDS,
        help="Keras backend to load (default: $KERAS_BACKEND, else Keras' own default)",
    )
    return parser


def _package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _devices(backend):
    """Devices the active backend sees, as short strings."""
    if backend == "jax":
        import jax

        return [f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices()]
    if backend == "tensorflow":
        import tensorflow as tf

        return [f"{d.device_type}:{d.name.split(':')[-1]}" for d in tf.config.list_physical_devices()]
    if backend == "torch":
        import torch

        found = ["cpu"]
        if torch.cuda.is_available():
            found += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            found.append("mps")
        return found
    return []


def _rerun_with_backend(backend, argv):
    """Run this command again in a child process with KERAS_BACKEND set.

    Keras picks its backend once, when it is first imported (and ``import keras_seg``
    imports it), so a ``--backend`` that differs from the loaded one needs a fresh process.
    Returns the child's exit code, or None when the loaded backend already matches.
    """
    import subprocess

    import keras

    if backend is None or keras.backend.backend() == backend:
        return None
    env = dict(os.environ, KERAS_BACKEND=backend)
    return subprocess.call([sys.executable, "-m", "keras_seg", *argv], env=env)


def info(args, argv):
    code = _rerun_with_backend(args.backend, argv)
    if code is not None:
        return code
    import keras

    backend = keras.backend.backend()
    rows = [("keras-seg", _version()), ("python", sys.version.split()[0]), ("backend", backend)]
    for dist in ("keras", "numpy", "tensorflow", "jax", "jaxlib", "torch", "tf2onnx", "onnxruntime", "ai-edge-litert"):
        rows.append((dist, _package_version(dist) or "not installed"))
    rows.append(("devices", ", ".join(_devices(backend)) or "none"))
    for key, value in rows:
        print(f"{key:<15} {value}")
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return {"info": info}[args.command](args, argv)


if __name__ == "__main__":
    sys.exit(main())
