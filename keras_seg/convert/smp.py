"""segmentation_models.pytorch checkpoints into keras_seg models: :func:`from_smp`.

A checkpoint is what ``model.save_pretrained(directory)`` writes (``config.json`` with the
constructor arguments and ``_model_class``, ``model.safetensors``), or a bare state-dict file
(``.safetensors``, ``.pth``, ``.bin``) with the architecture given as arguments. The keras_seg
model is built with the same structure (torchvision-layout ResNet encoder dilated the way SMP
dilates, or SMP's MiT: :class:`~keras_seg.encoders.MiTEncoder` with LayerNorm epsilon 1e-6,
dilated the same way; ``align_corners`` upsampling where SMP uses it) and every tensor is placed by name:
keras_seg's layer names follow SMP's modules (``decoder.blocks.0.conv1.0`` is
``decoder0_1_conv``), and the tables below spell out each architecture's correspondence.
Loading is strict: a tensor that has no place, or a weight without a tensor, is an error
listing their names. SMP's ``classification_head`` (``aux_params``) has no keras_seg
counterpart: its tensors are reported as ignored. The layers SMP's PSPNet builds in its encoder
but never runs (``encoder_depth=3``) are left out the same way.
"""

import json
import os
import re
import warnings

from keras_seg.convert.tensors import as_arrays, assign_weights, read_weights, some

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
MITS = ("mit_b0", "mit_b1", "mit_b2", "mit_b3", "mit_b4", "mit_b5")
SMP_ENCODERS = RESNETS + MITS
# Architectures SMP itself refuses a MiT for (and the one that takes nothing but a MiT here).
NO_MIT = ("UnetPlusPlus", "Linknet")
MIT_ONLY = ("Segformer",)
# SMP class name -> (keras_seg class name, {SMP argument: keras_seg argument}); unlisted SMP arguments are refused
# unless SMP's default (checked in _arguments).
ARCHITECTURES = {
    "Unet": ("UNet", {"decoder_channels": "decoder_channels"}),
    "UnetPlusPlus": ("UNetPlusPlus", {"decoder_channels": "decoder_channels"}),
    "FPN": ("FPN", {"decoder_pyramid_channels": "decoder_pyramid_channels",
                    "decoder_segmentation_channels": "decoder_segmentation_channels",
                    "decoder_merge_policy": "decoder_merge_policy", "decoder_dropout": "decoder_dropout",
                    "decoder_interpolation": "decoder_interpolation", "upsampling": "upsampling"}),
    "PSPNet": ("PSPNet", {"psp_out_channels": "psp_out_channels", "psp_dropout": "psp_dropout",
                          "upsampling": "upsampling"}),
    "Linknet": ("LinkNet", {}),
    "MAnet": ("MANet", {"decoder_channels": "decoder_channels", "decoder_pab_channels": "decoder_pab_channels"}),
    "PAN": ("PAN", {"encoder_output_stride": "output_stride", "decoder_channels": "decoder_channels",
                    "upsampling": "upsampling"}),
    "UPerNet": ("UPerNet", {"decoder_channels": "decoder_channels", "upsampling": "upsampling"}),
    "DeepLabV3": ("DeepLabV3", {"encoder_output_stride": "output_stride", "decoder_channels": "aspp_channels",
                                "decoder_atrous_rates": "atrous_rates", "decoder_aspp_separable": "separable",
                                "decoder_aspp_dropout": "aspp_dropout"}),
    "DeepLabV3Plus": ("DeepLabV3Plus", {"encoder_output_stride": "output_stride", "decoder_channels": "aspp_channels",
                                        "decoder_atrous_rates": "atrous_rates",
                                        "decoder_aspp_separable": "separable", "decoder_aspp_dropout": "aspp_dropout"}),
    "Segformer": ("SegFormer", {"decoder_segmentation_channels": "decoder_channels", "upsampling": "upsampling"}),
}  # fmt: skip
# SMP's defaults where they differ from keras_seg's (applied when the config does not say).
SMP_DEFAULTS = {
    "DeepLabV3": {"encoder_output_stride": 8, "decoder_atrous_rates": (12, 24, 36)},
    "DeepLabV3Plus": {"encoder_output_stride": 16, "decoder_atrous_rates": (12, 24, 36)},
    "PAN": {"encoder_output_stride": 16},
    "PSPNet": {"encoder_depth": 3},
    "Segformer": {"decoder_segmentation_channels": 256, "upsampling": 4},
}
# Arguments that change nothing keras_seg has to know (or that it takes at their only value).
NEUTRAL = {"encoder_weights", "activation", "aux_params", "classes", "in_channels", "encoder_name", "encoder_depth",
           "decoder_use_norm", "decoder_use_batchnorm", "psp_use_batchnorm", "decoder_attention_type", "decoder_interpolation",
           "_model_class", "kwargs"}  # fmt: skip
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pth")


def from_smp(path, arch=None, *, encoder=None, num_classes=None, class_names=None, config=None, **kwargs):
    """A keras_seg model with the weights of a segmentation_models.pytorch checkpoint; no SMP needed to read it.

    Args:
        path: a ``save_pretrained`` folder (``config.json`` + ``model.safetensors``), or a state-dict
            file (``.safetensors`` read with numpy; ``.pth`` / ``.bin`` with PyTorch).
        arch: the SMP class name (``"Unet"``, ``"FPN"``, ...) for a bare state dict; read from
            ``config.json`` otherwise.
        encoder: the SMP encoder name for a bare state dict (``"resnet34"``); the config's otherwise.
        num_classes: for a bare state dict, checked against the head (read from it when None).
        class_names: stored on the model (``model.class_names``) and written into exports.
        config: SMP's constructor arguments as a dict, instead of (or over) ``config.json``.
        kwargs: more keras_seg constructor arguments (``input_shape``, ``activation``).

    Returns:
        The keras_seg model: it takes raw 0..255 RGB pixels with SMP's ImageNet normalisation
        inside its graph, trains with ``fit``, saves to ``.keras`` and exports.
    """
    tensors, smp_config, source = _read(path, config)
    return from_smp_tensors(tensors, arch, encoder=encoder, num_classes=num_classes, class_names=class_names,
                            config=smp_config, source=source, **kwargs)  # fmt: skip


def from_smp_tensors(tensors, arch=None, *, encoder=None, num_classes=None, class_names=None, config=None,
                     source="the state dict", **kwargs):  # fmt: skip
    """:func:`from_smp` on a state dict in memory (``{name: array}``, e.g. ``{k: v.numpy() for k, v in
    net.state_dict().items()}``) with SMP's constructor arguments as ``config``."""
    import keras_seg

    smp_config = dict(config or {})
    tensors = as_arrays(tensors)
    arch = arch or smp_config.pop("_model_class", None)
    if arch is None:
        raise ValueError(f"{source}: no config.json says which SMP architecture this is; pass arch= one of "
                         f"{', '.join(ARCHITECTURES)} (and encoder=).")  # fmt: skip
    if arch not in ARCHITECTURES:
        raise ValueError(f"{source}: the SMP architecture {arch!r} has no keras_seg counterpart; supported: "
                         f"{', '.join(ARCHITECTURES)}.")  # fmt: skip
    encoder = encoder or smp_config.get("encoder_name", "resnet34")
    if encoder not in SMP_ENCODERS:
        raise ValueError(f"{source}: the SMP encoder {encoder!r} is not supported; keras_seg imports SMP checkpoints "
                         f"with the encoders {', '.join(SMP_ENCODERS)}.")  # fmt: skip
    mit = encoder in MITS
    if (mit and arch in NO_MIT) or (not mit and arch in MIT_ONLY):
        raise ValueError(f"{source}: SMP's {arch} with the encoder {encoder!r} is not imported: "
                         + ("SMP itself builds it with no MiT." if mit else f"keras_seg imports {arch} with "
                            f"{', '.join(MITS)} only (its decoder reads other levels of a CNN)."))  # fmt: skip
    head = next((k for k in ("segmentation_head.0.weight",) if k in tensors), None)
    if head is None:
        raise ValueError(f"{source} has no segmentation_head.0.weight: it is not a segmentation_models.pytorch model "
                         f"(its first tensors: {some(sorted(tensors), 5)}).")  # fmt: skip
    classes = int(tensors[head].shape[0])
    if num_classes is not None and num_classes != classes:
        raise ValueError(f"{source}: its head predicts {classes} classes, not num_classes={num_classes}.")
    first = "encoder.patch_embed1.proj.weight" if mit else "encoder.conv1.weight"
    if first not in tensors:
        raise ValueError(f"{source} has no {first}: it is not an SMP model with the encoder {encoder!r} (its first "
                         f"encoder tensors: {some(sorted(k for k in tensors if k.startswith('encoder.')), 5)}).")  # fmt: skip
    in_channels = int(tensors[first].shape[1])
    name, arguments = _arguments(arch, smp_config, source)
    depth = int(smp_config.get("encoder_depth", SMP_DEFAULTS.get(arch, {}).get("encoder_depth", 5)))
    cls = getattr(keras_seg.models, name)
    output_stride = arguments.pop("output_stride", 32) or 32
    if mit:  # SMP's MiT: LayerNorm epsilon 1e-6 in the blocks and stages, dilated as SMP dilates
        built_encoder = keras_seg.encoders.MiTEncoder(encoder[len("mit_"):], in_channels=in_channels,
                                                      layer_norm_epsilon=1e-6, output_stride=output_stride)  # fmt: skip
        if arch == "Segformer":
            arguments.setdefault("dropout", 0.0)  # SMP's Segformer has no dropout before its head
    else:
        built_encoder = keras_seg.encoders.ResNetEncoder(encoder, in_channels=in_channels, output_stride=output_stride,
                                                         depth=depth, dilation="smp")  # fmt: skip
    kwargs.setdefault("input_shape", (None, None, in_channels))
    if "encoder_depth" in _parameters(cls):
        arguments["encoder_depth"] = depth
    model = cls(classes, encoder=built_encoder, **arguments, **kwargs)
    load_smp_weights(model, arch, tensors, where=f"{source}: ")
    if class_names is not None:
        if len(class_names) != classes and not (classes == 1 and len(class_names) == 2):
            raise ValueError(f"class_names has {len(class_names)} names but the checkpoint predicts {classes} classes.")
        model.class_names = list(class_names)
    return model


def _read(path, config):
    path = os.fspath(path)
    if os.path.isdir(path):
        found = [f for f in WEIGHT_FILES if os.path.isfile(os.path.join(path, f))]
        if not found:
            raise FileNotFoundError(f"{path} is a folder without {' or '.join(WEIGHT_FILES)}: not a "
                                    "segmentation_models.pytorch save_pretrained folder.")  # fmt: skip
        weights = os.path.join(path, found[0])
        config_file = os.path.join(path, "config.json")
    elif os.path.isfile(path):
        weights, config_file = path, None
    else:
        raise FileNotFoundError(f"{path} does not exist; pass a save_pretrained folder or a weights file.")
    smp_config = {}
    if config_file and os.path.isfile(config_file):
        with open(config_file) as f:
            try:
                smp_config = json.load(f)
            except ValueError as error:
                raise ValueError(f"{config_file} is not valid JSON ({error}).") from None
    if isinstance(config, dict):
        smp_config.update(config)
    return read_weights(weights), smp_config, weights


def _parameters(cls):
    import inspect

    return inspect.signature(cls.__init__).parameters


def _arguments(arch, smp_config, source):
    """``(keras_seg class name, its constructor arguments)`` from SMP's configuration."""
    name, renames = ARCHITECTURES[arch]
    settings = dict(SMP_DEFAULTS.get(arch, {}))
    settings.update({k: v for k, v in smp_config.items() if v is not None})
    fixed = {"DeepLabV3Plus": {"upsampling": 4}, "DeepLabV3": {"upsampling": None}}.get(arch, {})
    for key, value in fixed.items():  # arguments keras_seg takes at SMP's default only
        if key in settings and settings.pop(key) not in (value, None):
            raise ValueError(f"{source}: {arch} with {key}={smp_config[key]!r}: keras_seg's {name} takes SMP's default "
                             f"{key}={value!r} only.")  # fmt: skip
    arguments = {}
    for key, value in settings.items():
        if key in renames:
            arguments[renames[key]] = tuple(value) if isinstance(value, list) else value
        elif key not in NEUTRAL:
            raise ValueError(f"{source}: the SMP argument {key}={value!r} of {arch} has no keras_seg counterpart.")
    if settings.get("decoder_attention_type"):
        raise ValueError(f"{source}: decoder_attention_type={settings['decoder_attention_type']!r} (SCSE attention) is "
                         "not in keras_seg's decoders.")  # fmt: skip
    if settings.get("decoder_use_norm", "batchnorm") not in ("batchnorm", True) or settings.get("decoder_use_batchnorm") is False:
        raise ValueError(f"{source}: only BatchNorm decoders (decoder_use_norm='batchnorm', SMP's default) import.")
    own = "bilinear" if arch == "PAN" else "nearest"  # what keras_seg's decoder does: SMP's default
    if arch != "FPN" and settings.get("decoder_interpolation", own) != own:
        raise ValueError(f"{source}: decoder_interpolation={settings['decoder_interpolation']!r}: keras_seg's {name} "
                         f"upsamples {own}, as SMP's default.")  # fmt: skip
    if arch in ("DeepLabV3", "DeepLabV3Plus"):
        arguments["align_corners"] = True
        arguments["aspp_dropout"] = float(settings.get("decoder_aspp_dropout", 0.5))
    return name, arguments


# ---------------------------------------------------------------------------------------------- names

_BLOCK = [(r"_1_conv$", ".conv1.0"), (r"_1_bn$", ".conv1.1"), (r"_2_conv$", ".conv2.0"), (r"_2_bn$", ".conv2.1")]


def _aspp_rules(prefix):
    return [
        (r"^aspp_b0_(conv|bn)$", lambda m: f"{prefix}.convs.0.{'0' if m[1] == 'conv' else '1'}"),
        (r"^aspp_b(\d)_conv$", lambda m: f"{prefix}.convs.{m[1]}.0"),
        (r"^aspp_b(\d)_depthwise$", lambda m: f"{prefix}.convs.{m[1]}.0.0"),
        (r"^aspp_b(\d)_pointwise$", lambda m: f"{prefix}.convs.{m[1]}.0.1"),
        (r"^aspp_b(\d)_bn$", lambda m: f"{prefix}.convs.{m[1]}.1"),
        (r"^aspp_pool_proj_conv$", lambda m: f"{prefix}.convs.4.1"),
        (r"^aspp_pool_proj_bn$", lambda m: f"{prefix}.convs.4.2"),
        (r"^aspp_project_conv$", lambda m: f"{prefix}.project.0"),
        (r"^aspp_project_bn$", lambda m: f"{prefix}.project.1"),
    ]


def _rules(arch, levels):
    """``[(regex on the keras layer name, SMP prefix: a template or a function of the match)]``."""
    head = [(r"^head_conv$", "segmentation_head.0")]
    deepest_first = levels[::-1]
    if arch == "Unet":
        return head + [(rf"^decoder(\d+){a}", rf"decoder.blocks.\1{b}") for a, b in _BLOCK]
    if arch == "UnetPlusPlus":
        return head + [(rf"^(x_\d+_\d+){a}", rf"decoder.blocks.\1{b}") for a, b in _BLOCK]
    if arch == "FPN":
        four = levels[-4:]
        return head + [
            (rf"^fpn_{four[-1]}$", "decoder.p5"),
            (r"^fpn_(P\d)_lateral_conv$", lambda m: f"decoder.p{four.index(m[1]) + 2}.skip_conv"),
            (r"^seg_(P\d)_(\d)_(conv|gn)$",
             lambda m: f"decoder.seg_blocks.{3 - four.index(m[1])}.block.{m[2]}.block.{'0' if m[3] == 'conv' else '1'}"),
        ]  # fmt: skip
    if arch == "PSPNet":
        return head + [
            (r"^psp_pool(\d)_conv$", lambda m: f"decoder.psp.blocks.{(1, 2, 3, 6).index(int(m[1]))}.pool.1.0"),
            (r"^psp_pool(\d)_bn$", lambda m: f"decoder.psp.blocks.{(1, 2, 3, 6).index(int(m[1]))}.pool.1.1"),
            (r"^psp_project_conv$", "decoder.conv.0"), (r"^psp_project_bn$", "decoder.conv.1"),
        ]  # fmt: skip
    if arch == "Linknet":
        parts = {"reduce_conv": "0.0", "reduce_bn": "0.1", "transpose": "1.0", "transpose_bn": "1.1",
                 "expand_conv": "2.0", "expand_bn": "2.1"}  # fmt: skip
        return head + [(rf"^decoder(\d+)_{a}$", rf"decoder.blocks.\1.block.{b}") for a, b in parts.items()]
    if arch == "MAnet":
        return head + [
            (r"^pab_(top|center|bottom|out)$", r"decoder.center.\1_conv"),
            (r"^decoder(\d+)_hl1_conv$", r"decoder.blocks.\1.hl_conv.0.0"), (r"^decoder(\d+)_hl1_bn$", r"decoder.blocks.\1.hl_conv.0.1"),
            (r"^decoder(\d+)_hl2_conv$", r"decoder.blocks.\1.hl_conv.1.0"), (r"^decoder(\d+)_hl2_bn$", r"decoder.blocks.\1.hl_conv.1.1"),
            (r"^decoder(\d+)_se_(hl|ll)_reduce$", r"decoder.blocks.\1.SE_\2.1"),
            (r"^decoder(\d+)_se_(hl|ll)_expand$", r"decoder.blocks.\1.SE_\2.3"),
        ] + [(rf"^decoder(\d+){a}", rf"decoder.blocks.\1{b}") for a, b in _BLOCK]  # fmt: skip
    if arch == "PAN":
        fpa = {"global": "branch1.1", "mid": "mid.0", "down1": "down1.1", "down2": "down2.1", "down3_1": "down3.1",
               "down3_2": "down3.2", "conv2": "conv2", "conv1": "conv1"}  # fmt: skip
        return head + [(rf"^fpa_{a}_(conv|bn)$", rf"decoder.fpa.{b}.\1") for a, b in fpa.items()] + [
            (r"^(gau\d)_gate_(conv|bn)$", r"decoder.\1.conv1.1.\2"),
            (r"^(gau\d)_conv_(conv|bn)$", r"decoder.\1.conv2.\2"),
        ]  # fmt: skip
    if arch == "UPerNet":
        laterals = [k for k in deepest_first if int(k[1:]) >= 2][1:]  # P4, P3, P2 for SMP's fpn_*_blocks.0, 1, 2
        return head + [
            (r"^norm_(P\d)$", lambda m: f"decoder.feature_norms.{[k for k in levels if int(k[1:]) >= 2].index(m[1])}"),
            (r"^psp_pool(\d)_conv$", lambda m: f"decoder.psp.blocks.{(1, 2, 3, 6).index(int(m[1]))}.1.0"),
            (r"^psp_pool(\d)_bn$", lambda m: f"decoder.psp.blocks.{(1, 2, 3, 6).index(int(m[1]))}.1.1"),
            (r"^psp_out_conv$", "decoder.psp.out_conv.0"), (r"^psp_out_bn$", "decoder.psp.out_conv.1"),
            (r"^fpn_(P\d)_lateral_(conv|bn)$",
             lambda m: f"decoder.fpn_lateral_blocks.{laterals.index(m[1])}.conv_norm_relu.{'0' if m[2] == 'conv' else '1'}"),
            (r"^fpn_(P\d)_out_(conv|bn)$",
             lambda m: f"decoder.fpn_conv_blocks.{laterals.index(m[1])}.{'0' if m[2] == 'conv' else '1'}"),
            (r"^fuse_conv$", "decoder.fusion_block.0"), (r"^fuse_bn$", "decoder.fusion_block.1"),
        ]  # fmt: skip
    if arch == "DeepLabV3":
        return head + _aspp_rules("decoder.aspp") + [(r"^head_refine_conv$", "decoder.conv"), (r"^head_refine_bn$", "decoder.bn")]
    if arch == "DeepLabV3Plus":
        return head + _aspp_rules("decoder.aspp.0") + [
            (r"^aspp_refine_depthwise$", "decoder.aspp.1.0"), (r"^aspp_refine_pointwise$", "decoder.aspp.1.1"),
            (r"^aspp_refine_bn$", "decoder.aspp.2"), (r"^low_level_conv$", "decoder.block1.0"),
            (r"^low_level_bn$", "decoder.block1.1"), (r"^decoder_depthwise$", "decoder.block2.0.0"),
            (r"^decoder_pointwise$", "decoder.block2.0.1"), (r"^decoder_bn$", "decoder.block2.1"),
        ]  # fmt: skip
    if arch == "Segformer":
        return head + [
            (r"^decoder_proj_(P\d)$", lambda m: f"decoder.mlp_stage.{deepest_first.index(m[1])}.linear"),
            (r"^decoder_fuse_conv$", "decoder.fuse_stage.0"), (r"^decoder_fuse_bn$", "decoder.fuse_stage.1"),
        ]  # fmt: skip
    raise ValueError(f"no SMP names for {arch!r}")


def smp_prefix(layer_name, rules):
    for pattern, template in rules:
        match = re.search(pattern, layer_name)
        if match:
            return template(match) if callable(template) else match.expand(template) if "\\" in template else template
    return None


def load_smp_weights(model, arch, tensors, where=""):
    """Set ``model``'s weights (its encoder's too) from an SMP state dict; strict both ways but for what SMP
    builds and never runs (PSPNet's deeper encoder stages) and its ``classification_head``."""
    from keras_seg.encoders import pyramid_channels
    from keras_seg.encoders.base import is_level
    from keras_seg.encoders.resnet import load_torch_weights

    aux = sorted(k for k in tensors if k.startswith("classification_head."))
    if aux:
        warnings.warn(f"{where}ignored the classification head (SMP aux_params, {len(aux)} tensors: {some(aux, 4)}): "
                      "keras_seg models have no classification output.", stacklevel=3)  # fmt: skip
    encoder_tensors = {k: v for k, v in tensors.items() if k.startswith("encoder.")}
    if "encoder.patch_embed1.proj.weight" in encoder_tensors:
        used = load_smp_mit(model.encoder, encoder_tensors, where=where)
    else:
        used = load_torch_weights(model.encoder, encoder_tensors, prefix="encoder.", where=where)
    rules = _rules(arch, [k for k in pyramid_channels(model.encoder) if is_level(k)])
    pairs, unplaced = [], []
    for layer in model.layers:
        if not layer.weights or layer is model.encoder:
            continue
        prefix = smp_prefix(layer.name, rules)
        (pairs.append((layer, prefix)) if prefix else unplaced.append(layer.name))
    if unplaced:
        raise ValueError(f"{where}keras_seg layers without an SMP counterpart: {some(unplaced)}.")
    decoder_tensors = {k: v for k, v in tensors.items() if not k.startswith(("encoder.", "classification_head."))}
    used |= assign_weights(pairs, decoder_tensors, where=where)
    return used


# SMP's MiT names -> Hugging Face's (keras_seg.convert.huggingface places those); ``kv`` is split below.
_MIT_RENAMES = [
    (r"^encoder\.patch_embed(\d)\.norm\.", lambda m: f"encoder.patch_embeddings.{int(m[1]) - 1}.layer_norm."),
    (r"^encoder\.patch_embed(\d)\.proj\.", lambda m: f"encoder.patch_embeddings.{int(m[1]) - 1}.proj."),
    (r"^encoder\.norm(\d)\.", lambda m: f"encoder.layer_norm.{int(m[1]) - 1}."),
    (r"^encoder\.block(\d)\.(\d+)\.", lambda m: f"encoder.block.{int(m[1]) - 1}.{m[2]}."),
    (r"\.norm1\.", ".layer_norm_1."), (r"\.norm2\.", ".layer_norm_2."),
    (r"\.attn\.q\.", ".attention.self.query."), (r"\.attn\.sr\.", ".attention.self.sr."),
    (r"\.attn\.norm\.", ".attention.self.layer_norm."), (r"\.attn\.proj\.", ".attention.output.dense."),
    (r"\.mlp\.fc1\.", ".mlp.dense1."), (r"\.mlp\.fc2\.", ".mlp.dense2."),
]  # fmt: skip


def mit_tensors(tensors):
    """SMP MiT tensors (``encoder.block1.0.attn.kv.weight``) under Hugging Face's canonical names; the fused
    key/value projection ``kv`` (``2C`` outputs: keys first, as SMP's ``reshape(B, N, 2, heads, d)`` reads
    them) becomes ``key`` and ``value``."""
    out = {}
    for name, value in tensors.items():
        key = name
        for pattern, template in _MIT_RENAMES:
            key = re.sub(pattern, template, key)
        if ".attn.kv." in key:
            half = value.shape[0] // 2
            out[key.replace(".attn.kv.", ".attention.self.key.")] = value[:half]
            out[key.replace(".attn.kv.", ".attention.self.value.")] = value[half:]
        else:
            out[key] = value
    return out


def load_smp_mit(encoder, tensors, where=""):
    """Set a MiT encoder's weights from SMP's ``encoder.*`` tensors; the stages a truncated encoder (PSPNet's
    ``encoder_depth=3``) does not build are left out, as SMP never runs them."""
    from keras_seg.convert.huggingface import ENCODER_LAYERS, layer_pairs

    pairs, unmapped = layer_pairs(encoder, ENCODER_LAYERS)
    if unmapped:
        raise ValueError(f"{where}layers {some(unmapped)} of {encoder.name} have no SMP MiT counterpart.")
    built = {int(m[1]) for layer, _ in pairs if (m := re.match(r"stage(\d+)_", layer.name))}
    skipped = tuple(f"encoder.{part}.{i}." for i in range(4) if i not in built
                    for part in ("patch_embeddings", "block", "layer_norm"))  # fmt: skip
    return assign_weights(pairs, mit_tensors(tensors), ignored=skipped, where=where)
