"""SegFormer and MiT weights from Hugging Face ``transformers`` checkpoints, read without ``transformers``.

A checkpoint is what ``SegformerForSemanticSegmentation`` / ``SegformerModel`` /
``SegformerForImageClassification`` ``.save_pretrained(directory)`` writes (``config.json``
and ``model.safetensors`` or ``pytorch_model.bin``, possibly sharded with an
``.index.json``) or a single weights file (``.safetensors``, or a ``.bin`` / ``.pt`` state
dict). Safetensors files are parsed with numpy alone (an 8-byte little-endian header length,
a JSON header ``{name: {dtype, shape, data_offsets}}``, the raw bytes); ``.bin`` / ``.pt``
files need PyTorch (``torch.load(weights_only=True)``).

Both naming schemes of ``transformers`` are understood: the one of the published checkpoints
and of ``save_pretrained`` (``segformer.encoder.block.0.1.attention.self.query.weight``,
``decode_head.linear_c.0.proj.weight``) and the one of ``state_dict()`` in ``transformers`` 5
(``segformer.stages.0.blocks.1.attention.q_proj.weight``,
``decode_head.linear_projections.0.proj.weight``); the ``segformer.`` prefix is optional.

Loading is strict: every tensor of the checkpoint is used and every Keras weight is set, or
the error lists the missing and unexpected names. Deliberate exceptions: BatchNorm's
``num_batches_tracked`` counter (no Keras counterpart), the 1000-class ImageNet
``classifier.*`` of an ImageNet MiT checkpoint when only the encoder is loaded, and the
``decode_head.classifier.*`` when a SegFormer is built for another number of classes.
"""

import json
import os
import re

import numpy as np

from keras_seg.convert.tensors import assign_weights as _assign
from keras_seg.convert.tensors import read_safetensors, read_torch, read_weights  # noqa: F401 - re-exported

# ---------------------------------------------------------------------------------------- reading

_WEIGHT_FILES = (
    "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json",
)  # fmt: skip


def read_checkpoint(path, config=None):
    """``{"tensors": {canonical name: array}, "config": dict or None}`` for a directory or a weights file.

    ``config``: a ``SegformerConfig`` as a dict, or the path of its ``config.json``; by default
    the ``config.json`` of the directory (or beside the file) when there is one. Without a
    config, :func:`segformer_config` infers it from the tensor shapes.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        found = [name for name in _WEIGHT_FILES if os.path.exists(os.path.join(path, name))]
        if not found:
            raise FileNotFoundError(
                f"{path} has none of {', '.join(_WEIGHT_FILES)}; pass a directory written by save_pretrained "
                "or the path of a .safetensors / .bin / .pt file."
            )
        weights, folder = os.path.join(path, found[0]), path
    elif os.path.isfile(path):
        weights, folder = path, os.path.dirname(path)
    else:
        raise FileNotFoundError(f"{path} does not exist; pass a save_pretrained directory or a weights file.")
    if config is None and os.path.exists(os.path.join(folder, "config.json")):
        config = os.path.join(folder, "config.json")
    if isinstance(config, (str, os.PathLike)):
        with open(config) as f:
            config = json.load(f)
    if config is not None and not isinstance(config, dict):
        config = config.to_dict()  # a transformers SegformerConfig
    return {"tensors": canonical_names(read_weights(weights)), "config": config, "path": weights}


# ---------------------------------------------------------------------------------------- names

# transformers 5 state_dict() names -> the names of the published checkpoints (which save_pretrained writes).
_RENAMES = [
    (r"^stages\.(\d+)\.patch_embeddings\.", r"encoder.patch_embeddings.\1."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.", r"encoder.block.\1.\2."),
    (r"^stages\.(\d+)\.layer_norm\.", r"encoder.layer_norm.\1."),
    (r"\.attention\.q_proj\.", ".attention.self.query."),
    (r"\.attention\.k_proj\.", ".attention.self.key."),
    (r"\.attention\.v_proj\.", ".attention.self.value."),
    (r"\.attention\.sequence_reduction\.sequence_reduction\.", ".attention.self.sr."),
    (r"\.attention\.sequence_reduction\.layer_norm\.", ".attention.self.layer_norm."),
    (r"\.attention\.o_proj\.", ".attention.output.dense."),
    (r"\.mlp\.fc1\.", ".mlp.dense1."),
    (r"\.mlp\.fc2\.", ".mlp.dense2."),
    (r"\.layernorm_before\.", ".layer_norm_1."),
    (r"\.layernorm_after\.", ".layer_norm_2."),
    (r"^decode_head\.linear_projections\.", "decode_head.linear_c."),
]


def canonical_names(tensors):
    """The published checkpoints' names, without the ``segformer.`` prefix."""
    out = {}
    for name, value in tensors.items():
        key = name[len("segformer."):] if name.startswith("segformer.") else name
        for pattern, replacement in _RENAMES:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


# Keras layer name -> checkpoint prefix (canonical names). Encoder layers: keras_seg.encoders.mit.
ENCODER_LAYERS = [
    (r"stage(\d+)_patch_conv", r"encoder.patch_embeddings.\1.proj"),
    (r"stage(\d+)_patch_norm", r"encoder.patch_embeddings.\1.layer_norm"),
    (r"stage(\d+)_block(\d+)_norm1", r"encoder.block.\1.\2.layer_norm_1"),
    (r"stage(\d+)_block(\d+)_attn_q", r"encoder.block.\1.\2.attention.self.query"),
    (r"stage(\d+)_block(\d+)_attn_k", r"encoder.block.\1.\2.attention.self.key"),
    (r"stage(\d+)_block(\d+)_attn_v", r"encoder.block.\1.\2.attention.self.value"),
    (r"stage(\d+)_block(\d+)_attn_sr", r"encoder.block.\1.\2.attention.self.sr"),
    (r"stage(\d+)_block(\d+)_attn_sr_norm", r"encoder.block.\1.\2.attention.self.layer_norm"),
    (r"stage(\d+)_block(\d+)_attn_out", r"encoder.block.\1.\2.attention.output.dense"),
    (r"stage(\d+)_block(\d+)_norm2", r"encoder.block.\1.\2.layer_norm_2"),
    (r"stage(\d+)_block(\d+)_mlp_fc1", r"encoder.block.\1.\2.mlp.dense1"),
    (r"stage(\d+)_block(\d+)_mlp_dwconv", r"encoder.block.\1.\2.mlp.dwconv.dwconv"),
    (r"stage(\d+)_block(\d+)_mlp_fc2", r"encoder.block.\1.\2.mlp.dense2"),
    (r"stage(\d+)_norm", r"encoder.layer_norm.\1"),
]
# Decoder layers: keras_seg.models.segformer (the projection of level P<k> is linear_c.<k - 2>).
_DECODER_LAYERS = [
    (r"decoder_proj_P(\d)", lambda m: f"decode_head.linear_c.{int(m.group(1)) - 2}.proj"),
    (r"decoder_fuse_conv", "decode_head.linear_fuse"),
    (r"decoder_fuse_bn", "decode_head.batch_norm"),
    (r"head_conv", "decode_head.classifier"),
]


def _prefix(layer_name, table):
    for pattern, replacement in table:
        match = re.fullmatch(pattern, layer_name)
        if match:
            return replacement(match) if callable(replacement) else match.expand(replacement)
    return None


# ---------------------------------------------------------------------------------------- configuration

_SHARED = {
    "num_encoder_blocks": 4,
    "num_attention_heads": [1, 2, 5, 8],
    "sr_ratios": [8, 4, 2, 1],
    "patch_sizes": [7, 3, 3, 3],
    "strides": [4, 2, 2, 2],
    "mlp_ratios": [4, 4, 4, 4],
    "hidden_act": "gelu",
}


def _inferred_config(tensors):
    """A SegformerConfig-like dict from the tensor shapes (heads and strides cannot be read: MiT's own)."""
    pattern = r"encoder\.patch_embeddings\.(\d+)\.proj\.weight"
    stages = sorted(int(m.group(1)) for k in tensors if (m := re.fullmatch(pattern, k)))
    if not stages:
        raise ValueError(
            "The checkpoint has no SegFormer encoder tensors (encoder.patch_embeddings.0.proj.weight or "
            f"segformer.stages.0.patch_embeddings.proj.weight); its first names: {sorted(tensors)[:5]}."
        )
    config = dict(_SHARED, num_encoder_blocks=len(stages))
    config.update(hidden_sizes=[], depths=[], patch_sizes=[], sr_ratios=[], mlp_ratios=[])
    for i in stages:
        proj = tensors[f"encoder.patch_embeddings.{i}.proj.weight"]  # (hidden, in, patch, patch)
        blocks = {int(m.group(1)) for k in tensors if (m := re.match(rf"encoder\.block\.{i}\.(\d+)\.", k))}
        sr = tensors.get(f"encoder.block.{i}.0.attention.self.sr.weight")  # (hidden, hidden, sr, sr); none for sr 1
        fc1 = tensors.get(f"encoder.block.{i}.0.mlp.dense1.weight")  # (hidden * mlp_ratio, hidden)
        config["hidden_sizes"].append(int(proj.shape[0]))
        config["depths"].append(len(blocks))
        config["patch_sizes"].append(int(proj.shape[-1]))
        config["sr_ratios"].append(1 if sr is None else int(sr.shape[-1]))
        config["mlp_ratios"].append(None if fc1 is None else int(fc1.shape[0]) // int(proj.shape[0]))
    config["num_channels"] = int(tensors[f"encoder.patch_embeddings.{stages[0]}.proj.weight"].shape[1])
    if "decode_head.linear_fuse.weight" in tensors:
        config["decoder_hidden_size"] = int(tensors["decode_head.linear_fuse.weight"].shape[0])
    if "decode_head.classifier.weight" in tensors:
        config["num_labels"] = int(tensors["decode_head.classifier.weight"].shape[0])
    return config


def segformer_config(checkpoint):
    """keras_seg's arguments for a checkpoint: ``variant``, ``in_channels``, ``decoder_channels``, ``num_labels``, ...

    Refuses configurations other than MiT b0..b5 with the fields that differ.
    """
    from keras_seg.encoders.mit import VARIANTS

    tensors, given = checkpoint["tensors"], checkpoint["config"]
    config = dict(given) if given else _inferred_config(tensors)
    variant = next((v for v, spec in VARIANTS.items()
                    if list(config.get("hidden_sizes", [])) == list(spec.hidden_sizes)
                    and list(config.get("depths", [])) == list(spec.depths)), None)  # fmt: skip
    wrong = {k: config.get(k) for k, v in _SHARED.items() if k in config and _norm(config[k]) != _norm(v)}
    if variant is None or wrong:
        sizes = ", ".join(f"{v}: hidden_sizes={list(s.hidden_sizes)} depths={list(s.depths)}" for v, s in VARIANTS.items())
        raise ValueError(
            f"{checkpoint.get('path')}: keras_seg supports the MiT b0..b5 configurations of SegFormer ({sizes}; "
            f"{', '.join(f'{k}={v!r}' for k, v in _SHARED.items())}); this checkpoint has "
            f"hidden_sizes={config.get('hidden_sizes')}, depths={config.get('depths')}"
            + "".join(f", {k}={v!r}" for k, v in wrong.items())
            + "."
        )
    num_labels = config.get("num_labels")
    if num_labels is None and "id2label" in config:
        num_labels = len(config["id2label"])
    return {
        "variant": variant,
        "in_channels": int(config.get("num_channels", 3)),
        "decoder_channels": config.get("decoder_hidden_size"),
        "num_labels": num_labels,
        "drop_path_rate": float(config.get("drop_path_rate", 0.1)),
        "dropout": float(config.get("classifier_dropout_prob", 0.1)),
        "has_decoder": any(k.startswith("decode_head.") for k in tensors),
    }


def _norm(value):
    return list(value) if isinstance(value, (list, tuple)) else value


# ---------------------------------------------------------------------------------------- weights


def layer_pairs(model, table):
    pairs, unmapped = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = _prefix(layer.name, table)
        (pairs if prefix else unmapped).append((layer, prefix) if prefix else layer.name)
    return pairs, unmapped


def load_encoder(encoder, checkpoint):
    """Load a MiT encoder's weights from a backbone checkpoint; its ImageNet ``classifier.*`` head is left out.

    A checkpoint with a decode head is refused: ``SegFormer.from_huggingface`` loads it.
    """
    tensors, where = checkpoint["tensors"], f"{checkpoint.get('path')}: "
    if any(k.startswith("decode_head.") for k in tensors):
        raise ValueError(
            f"{where}this is a SegFormer checkpoint with a decode head; load it with "
            "keras_seg.models.SegFormer.from_huggingface(path) (num_classes=K to train its decoder on K classes)."
        )
    pairs, unmapped = layer_pairs(encoder, ENCODER_LAYERS)
    if unmapped:
        raise ValueError(f"Layers {unmapped} of {encoder.name} have no Hugging Face counterpart.")
    _assign(pairs, tensors, ignored=("classifier.",), where=where)  # classifier.*: nvidia/mit-b*'s ImageNet head


def load_segformer(model, checkpoint, load_classifier=True):
    """Load a whole SegFormer (encoder and decode head); ``load_classifier=False`` keeps the new 1x1 classifier."""
    encoder_pairs, unmapped = layer_pairs(model.encoder, ENCODER_LAYERS)
    decoder_pairs, unmapped_decoder = layer_pairs(model, _DECODER_LAYERS)
    unmapped += [name for name in unmapped_decoder if name != model.encoder.name]
    if unmapped:
        raise ValueError(f"Layers {unmapped} of {model.name} have no Hugging Face counterpart.")
    if not load_classifier:
        decoder_pairs = [(layer, prefix) for layer, prefix in decoder_pairs if prefix != "decode_head.classifier"]
    ignored = () if load_classifier else ("decode_head.classifier.",)
    _assign(encoder_pairs + decoder_pairs, checkpoint["tensors"], ignored=ignored, where=f"{checkpoint.get('path')}: ")
