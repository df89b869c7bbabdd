"""Reading PyTorch-world weight files into numpy, and fetching published ones once.

- ``.safetensors``: parsed with numpy alone (an 8-byte little-endian header length, a JSON
  header ``{name: {dtype, shape, data_offsets}}``, the raw bytes); bfloat16 becomes float32.
- ``.pth`` / ``.pt`` / ``.bin``: a ``torch.save`` state dict, read with PyTorch
  (``torch.load(weights_only=True)``) when it is installed; otherwise the error says so.
- ``.index.json``: a sharded checkpoint (Hugging Face), every shard read.

:func:`fetch` downloads a published file into keras_seg's cache once (``~/.keras/keras_seg/``,
or ``$KERAS_SEG_CACHE``) and fails within seconds when offline, with the fix in the message.
"""

import hashlib
import json
import os
import tempfile
import urllib.request

import numpy as np

_SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U8": "u1", "BOOL": "?",
}  # fmt: skip
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".index.json")


def read_safetensors(path):
    """``{name: np.ndarray}`` from a ``.safetensors`` file, with numpy only (bfloat16 becomes float32)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path} is not a safetensors file (it has {len(head)} bytes).")
        header_size = int(np.frombuffer(head, "<u8")[0])
        try:
            header = json.loads(f.read(header_size))
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not a safetensors file (its header does not parse: {error}).") from None
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if end > len(data):
            raise ValueError(f"{path} is truncated: tensor {name!r} ends at byte {end:,} of {len(data):,}.")
        raw, dtype = data[start:end], info["dtype"]
        if dtype == "BF16":  # the top 16 bits of a float32
            array = (np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4")
        elif dtype in _SAFETENSORS_DTYPES:
            array = np.frombuffer(raw, _SAFETENSORS_DTYPES[dtype])
        else:
            raise ValueError(f"{path}: tensor {name!r} has dtype {dtype}, which keras_seg cannot read.")
        tensors[name] = array.reshape(info["shape"]).copy()
    return tensors


def read_torch(path):
    """``{name: np.ndarray}`` from a PyTorch state dict file (``torch.save(model.state_dict(), path)``)."""
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"Reading {path} needs PyTorch (pip install torch); or save the weights as safetensors "
            "(safetensors.torch.save_file(model.state_dict(), 'model.safetensors')), which keras_seg reads with "
            "numpy alone."
        ) from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and not any(torch.is_tensor(v) for v in state.values()):
        for key in ("state_dict", "model"):  # a training checkpoint that wraps the state dict
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of tensors.")
    return as_arrays(state)


def as_arrays(state):
    """``{name: np.ndarray}`` from a state dict of PyTorch tensors or arrays (floats as float32); other values dropped."""
    out = {}
    for name, t in state.items():
        if hasattr(t, "detach"):  # a torch.Tensor
            out[name] = (t.float() if t.is_floating_point() else t).detach().cpu().numpy()
        elif isinstance(t, np.ndarray):
            out[name] = t
    return out


def read_weights(path):
    """``{name: np.ndarray}`` from any of :data:`WEIGHT_SUFFIXES` (safetensors by numpy, the rest by PyTorch)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist; pass a .safetensors, .pth, .pt or .bin weights file.")
    if path.endswith(".index.json"):  # a sharded checkpoint
        with open(path) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        tensors = {}
        for shard in shards:
            tensors.update(read_weights(os.path.join(os.path.dirname(path), shard)))
        return tensors
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    return read_torch(path)


# ---------------------------------------------------------------------------------------------- PyTorch -> Keras


def torch_to_keras(layer, name, value):
    """The Keras value of checkpoint tensor ``name`` for ``layer``'s weight of the same role."""
    import keras

    if name.endswith("weight") and value.ndim == 4:
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
            return value.transpose(2, 3, 0, 1)
        return value.transpose(2, 3, 1, 0)  # conv (out, in, kh, kw) -> (kh, kw, in, out)
    if name.endswith("weight") and value.ndim == 2:  # linear (out, in) -> dense (in, out)
        return value.T
    return value


def weight_slots(layer):
    """``[(keras variable, PyTorch suffix)]`` of a layer with weights (conv, dense, depthwise, BN, LayerNorm, PReLU)."""
    import keras

    if isinstance(layer, (keras.layers.LayerNormalization, keras.layers.GroupNormalization)):
        return [(layer.gamma, "weight"), (layer.beta, "bias")]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [(layer.gamma, "weight"), (layer.beta, "bias"), (layer.moving_mean, "running_mean"),
                (layer.moving_variance, "running_var")]  # fmt: skip
    if isinstance(layer, keras.layers.PReLU):
        return [(layer.alpha, "weight")]
    slots = [(layer.kernel, "weight")]
    if getattr(layer, "use_bias", False):
        slots.append((layer.bias, "bias"))
    return slots


def assign_weights(pairs, tensors, ignored=(), where=""):
    """Set every weight of ``pairs`` (``[(layer, checkpoint prefix)]``) from ``tensors``; strict both ways.

    Every Keras weight gets a tensor and every tensor is used (BatchNorm's ``num_batches_tracked``
    counters aside, and names starting with one of ``ignored``), else a ValueError lists the
    missing and unused names; shapes are checked after the layout change (:func:`torch_to_keras`).
    Returns the set of tensor names used.
    """
    plan, missing = [], []
    for layer, prefix in pairs:
        for variable, suffix in weight_slots(layer):
            name = f"{prefix}.{suffix}"
            if name in tensors:
                plan.append((layer, variable, name))
            else:
                missing.append(f"{name} (for {layer.name})")
    used = {name for _, _, name in plan}
    unexpected = sorted(
        k for k in tensors
        if k not in used and not k.endswith("num_batches_tracked") and not any(k.startswith(p) for p in ignored)
    )  # fmt: skip
    if missing or unexpected:
        raise ValueError(
            f"{where}the checkpoint does not fit the Keras model: {len(missing)} Keras weights have no tensor "
            f"({some(missing)}); {len(unexpected)} checkpoint tensors are unused ({some(unexpected)})."
        )
    for layer, variable, name in plan:
        value = torch_to_keras(layer, name, np.asarray(tensors[name]))
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"{where}{name} has shape {tuple(tensors[name].shape)}, which does not fit {layer.name}'s weight "
                f"{variable.path} of shape {tuple(variable.shape)} (converted: {tuple(value.shape)})."
            )
        variable.assign(value.astype(variable.dtype))
    return used


def some(names, count=8):
    return ", ".join(names[:count]) + (" ..." if len(names) > count else "")


def cache_dir():
    return os.environ.get("KERAS_SEG_CACHE") or os.path.join(os.path.expanduser("~"), ".keras", "keras_seg")


def fetch(url, filename, what, fix, sha256=None, timeout=10):
    """The path of ``filename`` in keras_seg's cache, downloaded from ``url`` the first time.

    Offline (or on any download failure) a ``ConnectionError`` (an ``OSError``: the command
    line reports it in one line) names ``what`` and ``fix``, after at most ``timeout`` seconds.
    The file is written to a temporary name and renamed into place, so an interrupted download
    leaves nothing behind; ``sha256`` checks it.
    """
    path = os.path.join(cache_dir(), filename)
    if os.path.isfile(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download.", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            digest = hashlib.sha256()
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
        if sha256 and digest.hexdigest() != sha256:
            raise OSError(f"the download's SHA-256 is {digest.hexdigest()}, not {sha256}")
        os.replace(tmp, path)
    except Exception as error:  # noqa: BLE001 - urllib raises many kinds; all mean "not available here"
        raise ConnectionError(f"Could not download {what} from {url} ({type(error).__name__}: {error}). {fix}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
