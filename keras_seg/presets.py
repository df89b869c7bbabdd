"""Presets, keras-hub's way: a directory with the model's config, its weights, metadata and a model card.

::

    my_preset/
      config.json         keras.saving.serialize_keras_object(model): class, module, constructor arguments
      model.weights.h5    model.save_weights
      metadata.json       keras_seg and Keras versions, the backend it was saved on, parameter count,
                          class names, input shape, preprocessing, training summary and metrics (when known)
      README.md           a model card written from metadata.json

:func:`save_to_preset` writes one (also ``model.save_to_preset(dir)`` on every keras_seg model),
:func:`from_preset` reads one (also ``keras_seg.models.Segmenter.from_preset`` and each
architecture's ``UNet.from_preset``, which insist on their class). A preset saved on one backend
loads on the others: the config is backend-free and the weights are an h5 file of arrays.

Handles: a local directory always works. ``hf://owner/name`` downloads the Hugging Face repository
with ``huggingface_hub`` and ``kaggle://owner/model/keras/variant`` the Kaggle model with
``kagglehub`` when they are installed and online; offline, or without the package, the error comes
at once and says what to do instead (download the files where there is a network, pass the
directory).

Every keras-seg command that takes a ``.keras`` file takes a preset directory as well
(:func:`keras_seg.utils.modelfile.load_model`).
"""

import datetime
import json
import os
import warnings

from keras_seg.utils.io import atomic_directory, first_few

CONFIG, WEIGHTS, METADATA, CARD = "config.json", "model.weights.h5", "metadata.json", "README.md"
FILES = (CONFIG, WEIGHTS, METADATA)
FORMAT = 1


def is_preset(path):
    """A directory with a ``config.json`` (:func:`from_preset` then names any other file it misses)."""
    path = os.fspath(path)
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG))


# ---------------------------------------------------------------------------------------------- saving


def save_to_preset(model, directory, *, class_names=None, training=None, metrics=None, description=None,
                   overwrite=False):  # fmt: skip
    """Write ``model`` as a preset in ``directory``; returns the directory.

    ``class_names`` (default: ``model.class_names`` when set), ``training`` (a dict, e.g.
    ``keras_seg.training.read_state("runs/x/best.keras")``: epochs, the best validation mean IoU)
    and ``metrics`` (a dict of evaluation figures) go into ``metadata.json`` and the model card.
    The files are written into a temporary directory beside ``directory`` and moved into place at
    the end, so an interrupted save leaves no half preset. An existing non-empty ``directory`` is
    replaced only with ``overwrite=True``, and only when it is a preset (nothing but the files
    above): a folder holding anything else is refused, whatever ``overwrite`` says.
    """
    import keras

    directory = os.path.abspath(os.fspath(directory))
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"{directory} is a file; a preset is a directory. Pass a new directory name.")
    if os.path.isdir(directory) and os.listdir(directory) and not overwrite:
        raise FileExistsError(f"{directory} already exists and is not empty; pass overwrite=True to replace it, "
                              "or choose another directory.")  # fmt: skip
    _check_replaceable(directory)
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    training = dict(training or {})
    names = names if names is not None else training.get("class_names")
    metadata = _metadata(model, names, training, metrics, description)
    with atomic_directory(directory, check=_check_replaceable) as staging:
        with open(os.path.join(staging, CONFIG), "w") as f:
            json.dump(keras.saving.serialize_keras_object(model), f, indent=1)
        model.save_weights(os.path.join(staging, WEIGHTS))
        with open(os.path.join(staging, METADATA), "w") as f:
            json.dump(metadata, f, indent=1)
        with open(os.path.join(staging, CARD), "w") as f:
            f.write(model_card(metadata))
    return directory


def _check_replaceable(directory):
    """Refuse to replace a directory that holds anything but a preset's own files (even with overwrite=True)."""
    if not os.path.isdir(directory):
        return
    foreign = sorted(set(os.listdir(directory)) - {CONFIG, WEIGHTS, METADATA, CARD})
    if foreign:
        raise FileExistsError(
            f"{directory} is not a preset (it holds {first_few(foreign)}); saving would replace it whole. Choose a new "
            "or empty directory, e.g. a subfolder of it."
        )


def _metadata(model, class_names, training, metrics, description):
    import keras

    from keras_seg.version import __version__

    encoder = getattr(model, "encoder", None)
    info = {
        "format": FORMAT,
        "keras_seg_version": __version__,
        "keras_version": keras.__version__,
        "saved_on_backend": keras.backend.backend(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "class_name": type(model).__name__,
        "encoder": getattr(encoder, "name", None),
        "parameter_count": int(model.count_params()),
        "trainable_parameter_count": int(sum(int(_size(w)) for w in model.trainable_weights)),
        "num_classes": int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else None,
        "input_shape": [None if d is None else int(d) for d in model.inputs[0].shape[1:]] if model.inputs else None,
        "preprocessing": _preprocessing(model),
        "class_names": None if class_names is None else [str(c) for c in class_names],
        "training": {k: v for k, v in training.items() if k != "class_names" and _jsonable(v)},
        "metrics": dict(metrics or {}),
    }
    if description:
        info["description"] = str(description)
    return info


def _size(weight):
    size = 1
    for d in weight.shape:
        size *= int(d)
    return size


def _jsonable(value):
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _preprocessing(model):
    """What the model expects: raw 0..255 RGB and the normalisation its graph applies (keras_seg's layer)."""
    from keras_seg.layers.preprocessing import ImagePreprocessing

    modes = sorted({layer.mode for layer in _all_layers(model) if isinstance(layer, ImagePreprocessing)})
    if not modes or modes == ["none"]:
        return "none inside the graph: feed what the model was trained on"
    return "raw RGB pixel values in [0, 255]; inside the graph: " + "; ".join(PREPROCESSING.get(m, m) for m in modes)


PREPROCESSING = {"unit": "x / 255", "tf": "x / 127.5 - 1", "torch": "(x / 255 - ImageNet mean) / ImageNet std",
                 "caffe": "RGB to BGR, minus the ImageNet mean", "none": "nothing"}  # fmt: skip


def _all_layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def model_card(metadata):
    """A README.md in the spirit of a Hugging Face / Kaggle model card, from ``metadata.json``."""
    m = metadata
    names = m.get("class_names")
    lines = [
        f"# {m['class_name']}" + (f" ({m['encoder']})" if m.get("encoder") else ""),
        "",
        m.get("description") or "A keras_seg semantic segmentation model.",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{m['class_name']}` |",
        f"| encoder | `{m.get('encoder')}` |",
        f"| classes | {m.get('num_classes')}" + (f": {', '.join(names)}" if names else "") + " |",
        f"| input | {_shape(m.get('input_shape'))} |",
        f"| preprocessing | {m.get('preprocessing')} |",
        f"| parameters | {m['parameter_count']:,} ({m['trainable_parameter_count']:,} trainable) |",
        f"| saved with | keras_seg {m['keras_seg_version']}, Keras {m['keras_version']} ({m['saved_on_backend']} "
        f"backend), {m['date']} |",
    ]
    if m.get("training"):
        lines += ["", "## Training", ""] + [f"- {k}: {v}" for k, v in sorted(m["training"].items())]
    if m.get("metrics"):
        lines += ["", "## Metrics", ""] + [f"- {k}: {v}" for k, v in sorted(m["metrics"].items())]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import keras_seg",
        "",
        'model = keras_seg.models.Segmenter.from_preset("path/to/this/directory")   # or hf://owner/name',
        'labels = keras_seg.inference.predict_mask(model, image)                    # image: H x W x 3, 0..255',
        "```",
        "",
        "On the command line every `keras-seg` command that takes a `.keras` file takes this directory.",
        "",
    ]
    return "\n".join(lines)


def _shape(shape):
    if not shape:
        return "any"
    return " × ".join("any" if d is None else str(d) for d in shape)


# ---------------------------------------------------------------------------------------------- loading


def resolve(handle):
    """The local directory of a preset handle: a directory, ``hf://owner/name`` or ``kaggle://owner/model/...``."""
    handle = os.fspath(handle)
    if handle.startswith("hf://"):
        return _from_huggingface(handle[len("hf://"):])
    if handle.startswith("kaggle://"):
        return _from_kaggle(handle[len("kaggle://"):])
    if not os.path.exists(handle):
        raise FileNotFoundError(f"{handle} does not exist; pass a preset directory written by save_to_preset, or a "
                                "handle hf://owner/name or kaggle://owner/model/keras/variant.")  # fmt: skip
    if not os.path.isdir(handle):
        raise ValueError(f"{handle} is a file, not a preset directory; a .keras file loads with "
                         "keras.saving.load_model (or keras_seg.utils.modelfile.load_model).")  # fmt: skip
    return handle


def _offline_fix(source):
    return (f"Download it where there is a network ({source}) and pass the local directory, e.g. "
            "Segmenter.from_preset('path/to/preset').")  # fmt: skip


def _from_huggingface(repo):
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError(f"hf://{repo} needs huggingface_hub (pip install huggingface_hub); or download the "
                          "repository yourself and pass its directory.") from None  # fmt: skip
    try:
        return huggingface_hub.snapshot_download(repo_id=repo, etag_timeout=5)
    except Exception as error:  # offline, a wrong name, no permission: one line with what to do
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise ConnectionError(f"hf://{repo} could not be fetched ({type(error).__name__}: {first}). "
                              + _offline_fix(f"huggingface-cli download {repo} --local-dir DIR")) from None


def _from_kaggle(handle):
    try:
        import kagglehub
    except ImportError:
        raise ImportError(f"kaggle://{handle} needs kagglehub (pip install kagglehub); or download the model "
                          "yourself and pass its directory.") from None  # fmt: skip
    try:
        return kagglehub.model_download(handle)
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise ConnectionError(f"kaggle://{handle} could not be fetched ({type(error).__name__}: {first}). "
                              + _offline_fix(f"kagglehub.model_download('{handle}')")) from None


def read_metadata(directory):
    """``metadata.json`` of a preset (``{}`` when it has none)."""
    path = os.path.join(os.fspath(directory), METADATA)
    if not os.path.isfile(path):
        return {}
    return _read_json(path)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}): the preset is corrupt; save it again.") from None


def from_preset(handle, cls=None, **kwargs):
    """The model of a preset; ``cls`` (an architecture class) must be its class or a base of it.

    ``kwargs`` override constructor arguments of the config (``activation="softmax"``, say);
    the weights must still fit. ``model.class_names`` is set from the metadata when it has them.
    """
    import keras

    import keras_seg  # noqa: F401 - registers keras_seg's classes for deserialisation

    directory = resolve(handle)
    config_path, weights_path = os.path.join(directory, CONFIG), os.path.join(directory, WEIGHTS)
    for path, what in ((config_path, "config.json"), (weights_path, "model.weights.h5")):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing: {directory} is not a complete preset (it needs {what}; "
                                    "save_to_preset writes config.json, model.weights.h5 and metadata.json).")  # fmt: skip
    config = _read_json(config_path)
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ValueError(f"{config_path} is not a Keras model config (no class_name / config): the preset is "
                         "corrupt; save it again with save_to_preset.")  # fmt: skip
    if kwargs:
        config = dict(config, config=dict(config["config"], **kwargs))
    try:
        model = keras.saving.deserialize_keras_object(config)
    except (TypeError, ValueError, KeyError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ValueError(f"{config_path} does not build a model ({type(error).__name__}: {first}).") from None
    if cls is not None and not isinstance(model, cls):
        raise ValueError(f"{directory} holds a {type(model).__name__}, not a {cls.__name__}; load it with "
                         f"keras_seg.models.Segmenter.from_preset or {type(model).__name__}.from_preset.")  # fmt: skip
    try:
        with warnings.catch_warnings(record=True) as caught:  # Keras skips what it cannot match, with a warning
            warnings.simplefilter("always")
            model.load_weights(weights_path)
        skipped = [str(w.message) for w in caught if "Skipping" in str(w.message) or "retain" in str(w.message)]
        for w in caught:
            if str(w.message) not in skipped:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if skipped:
            raise ValueError(f"{len(skipped)} parts of the weights were skipped ({skipped[0][:200]})")
    except (ValueError, OSError, KeyError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ValueError(f"{weights_path} does not fit the model of {CONFIG} ({type(error).__name__}: {first}): "
                         "the preset is corrupt or its files come from different models.") from None  # fmt: skip
    names = read_metadata(directory).get("class_names")
    if names:
        model.class_names = list(names)
    return model
