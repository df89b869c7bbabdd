"""``python -m keras_seg.export MODEL.keras PATH --options OPTIONS.json --report REPORT.json [...]``.

The child process of :func:`keras_seg.export.export` under the JAX and PyTorch backends:
it runs with ``KERAS_BACKEND=tensorflow``, loads the model and the ``.npy`` arrays the
parent saved (calibration images; verification images, masks and the Keras outputs the
parent computed on its own backend), exports, checks the artifact against those outputs,
and writes the report (or the error) as JSON. Not a user command:
``keras-seg export`` is.
"""

import argparse
import json
import sys
import traceback


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m keras_seg.export")
    parser.add_argument("model")
    parser.add_argument("path")
    parser.add_argument("--options", required=True)
    parser.add_argument("--report", required=True)
    for name in ("calibration", "images", "masks", "reference"):
        parser.add_argument(f"--{name}", help=f"{name}.npy")
    args = parser.parse_args(argv)
    try:
        import keras
        import numpy as np

        import keras_seg  # noqa: F401 - registers the keras_seg layers and models
        from keras_seg.export.api import Verification
        from keras_seg.export.convert import export_model
        from keras_seg.export.options import Options, facts_for

        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(f"this child process needs KERAS_BACKEND=tensorflow, not {keras.backend.backend()}.")
        with open(args.options) as f:
            options = Options.from_dict(json.load(f))
        model = keras.saving.load_model(args.model)
        load = lambda name: np.load(getattr(args, name), mmap_mode="r") if getattr(args, name) else None  # noqa: E731
        verification = None
        if args.images:
            verification = Verification(load("images"), load("masks"), load("reference"))
        report = export_model(model, args.path, facts_for(model, options), options, load("calibration"), verification)
        answer, code = report.to_dict(), 0
    except Exception as error:  # noqa: BLE001 - every failure goes back to the parent
        traceback.print_exc()
        answer, code = {"error": {"type": type(error).__name__, "message": str(error)}}, 1
    with open(args.report, "w") as f:
        json.dump(answer, f, default=float)
    return code


if __name__ == "__main__":
    sys.exit(main())
