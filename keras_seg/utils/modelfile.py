"""Reading a user's model file, and telling a segmentation model from another Keras model.

Every command and API that takes a model file goes through :func:`load_model`, so a missing
file, a truncated or corrupt archive and a model that is not a segmentation model each get one
message that names the file and the fix, the same everywhere.
"""

import os
import zipfile


def load_model(path, what="the model"):
    """``keras.saving.load_model(path)`` with errors that say what is wrong with the file.

    A preset directory (:mod:`keras_seg.presets`) or handle (``hf://``, ``kaggle://``) loads
    with :func:`keras_seg.presets.from_preset`. ``FileNotFoundError`` when nothing is at ``path``;
    ``ValueError`` when ``path`` is a folder that is not a preset, not a ``.keras`` file, or a ``.keras`` archive that cannot be read (truncated by a copy that
    did not finish, or corrupt). ``what`` names the file's role in the message.
    """
    import keras

    path = os.fspath(path)
    if path.startswith(("hf://", "kaggle://")):
        from keras_seg.presets import from_preset

        return from_preset(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist; pass a .keras file written by keras-seg train or model.save, "
                                "or a preset directory.")  # fmt: skip
    if os.path.isdir(path):
        from keras_seg.presets import from_preset, is_preset

        torch_files = [f for f in ("model.safetensors", "pytorch_model.bin") if os.path.isfile(os.path.join(path, f))]
        if torch_files and not os.path.isfile(os.path.join(path, "model.weights.h5")):
            raise ValueError(f"{path} holds {torch_files[0]}: a PyTorch save_pretrained folder (segmentation_models."
                             "pytorch or Hugging Face), not a keras_seg preset. Convert it first: keras-seg convert "
                             f"{path} model.keras (or keras_seg.models.from_smp).")  # fmt: skip
        if is_preset(path):
            return from_preset(path)
        raise ValueError(f"{path} is a folder but not a preset (no config.json); {what} must be a .keras file "
                         "(keras-seg train writes best.keras) or a directory written by save_to_preset.")  # fmt: skip
    if not path.endswith(".keras"):
        raise ValueError(f"{path} is not a .keras file; save the model with model.save('model.keras').")
    problem = archive_problem(path)
    if problem:
        raise ValueError(f"{path} exists but is not a readable .keras archive ({problem}): it is truncated or corrupt. "
                         "Copy it again from where it was written, or use another checkpoint.")  # fmt: skip
    import keras_seg  # noqa: F401 - registers keras_seg's layers so the file loads without custom_objects

    try:
        return keras.saving.load_model(path)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path} is a .keras archive that Keras cannot load ({first[:300]}).") from error


def archive_problem(path):
    """``None`` for a complete zip archive, else what is wrong with it (a short text)."""
    if not zipfile.is_zipfile(path):
        size = os.path.getsize(path)
        return "an empty file" if size == 0 else f"no zip directory in its {size:,} bytes"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every member and checks its CRC
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return f"member {bad} fails its checksum" if bad else None


def check_segmentation_model(model, where=None):
    """Raise ``ValueError`` unless ``model`` maps images ``(B, H, W, C)`` to per-pixel scores ``(B, H, W, K)``.

    ``where`` names the model in the message (a file path, say). A classifier
    (``... -> GlobalAveragePooling2D -> Dense``, output ``(B, K)``) or a model on vectors is
    refused with its actual shapes, before any data is read.
    """
    name = where or getattr(model, "name", "the model")
    inputs, outputs = getattr(model, "inputs", None) or [], getattr(model, "outputs", None) or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"{name} is not a segmentation model: it has {len(inputs)} input(s) and {len(outputs)} output(s), and "
            "keras_seg needs one image input and one output of per-pixel class scores (B, H, W, K)."
        )
    in_shape, out_shape = tuple(inputs[0].shape), tuple(outputs[0].shape)
    if len(in_shape) != 4 or len(out_shape) != 4 or in_shape[-1] is None or out_shape[-1] is None:
        kind = " (a classifier: one score vector per image)" if len(out_shape) == 2 and len(in_shape) == 4 else ""
        raise ValueError(
            f"{name} is not a segmentation model: it maps {in_shape} to {out_shape}{kind}. keras_seg needs a model "
            "that maps images (B, H, W, C) to per-pixel class scores (B, H, W, K), such as keras_seg.models.UNet."
        )
    return model
