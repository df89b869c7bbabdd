"""The Mix Transformer (MiT) of SegFormer (Xie et al. 2021): a hierarchical transformer encoder.

Four stages; each starts with an *overlapping patch embedding* (a strided conv with
symmetric padding ``patch // 2``, then LayerNorm) that halves the resolution (quarters it
in the first stage), runs ``depths[i]`` transformer blocks and ends with a LayerNorm. The
pyramid is ``{"P2": stride 4, "P3": 8, "P4": 16, "P5": 32}``.

A block is pre-norm: ``x + DropPath(Attention(LN(x)))``, then ``x + DropPath(MixFFN(LN(x)))``.

* Efficient self-attention: queries at every position; keys and values from a spatially
  reduced map (a conv with kernel = stride = ``sr`` and a LayerNorm; none where ``sr`` is 1);
  ``softmax(q k^T / sqrt(head_dim)) v`` per head; an output projection. All linear layers
  have biases.
* Mix-FFN: dense to ``4 x hidden`` -> 3x3 depthwise conv (the positional information) ->
  exact (erf) GELU -> dense back.
* Stochastic depth: the drop-path rate grows linearly from 0 over all blocks to
  ``drop_path_rate``; it acts in training only.

Features stay 4-D ``(B, H, W, C)`` between layers: dense layers, LayerNorms and convs act on
the channel axis as they are, and only :class:`EfficientAttention` (no weights) flattens the
positions, with ``keras.ops.shape``, so any input size works and the graph exports.

The numerics follow Hugging Face ``transformers``' ``SegformerModel`` exactly (checked by
``tests/test_segformer.py`` on every backend): every LayerNorm is PyTorch's ``nn.LayerNorm``
with its default epsilon 1e-5 (the config's ``layer_norm_eps`` = 1e-6 is not used by the
model), GELU is the exact erf form, attention is scaled by ``head_dim ** -0.5``.
Pretrained weights come from Hugging Face checkpoints: :meth:`MiTEncoder.from_huggingface`.
"""

import os
import warnings
from typing import NamedTuple

import keras
from keras import ops

from keras_seg.encoders.base import Encoder, level_key
from keras_seg.layers.conv import DepthwiseConv2D
from keras_seg.layers.preprocessing import ImagePreprocessing
from keras_seg.utils import naming


class MiTVariant(NamedTuple):
    hidden_sizes: tuple
    depths: tuple


_SMALL, _LARGE = (32, 64, 160, 256), (64, 128, 320, 512)
VARIANTS = {
    "b0": MiTVariant(_SMALL, (2, 2, 2, 2)),
    "b1": MiTVariant(_LARGE, (2, 2, 2, 2)),
    "b2": MiTVariant(_LARGE, (3, 4, 6, 3)),
    "b3": MiTVariant(_LARGE, (3, 4, 18, 3)),
    "b4": MiTVariant(_LARGE, (3, 8, 27, 3)),
    "b5": MiTVariant(_LARGE, (3, 6, 40, 3)),
}
# Shared by every variant.
NUM_HEADS = (1, 2, 5, 8)
SR_RATIOS = (8, 4, 2, 1)
PATCH_SIZES = (7, 3, 3, 3)
STRIDES = (4, 2, 2, 2)
MLP_RATIO = 4
_SQRT_HALF = 0.7071067811865476  # 1 / sqrt(2)
LAYER_NORM_EPSILON = 1e-5  # torch.nn.LayerNorm's default, which every SegFormer LayerNorm uses

# The names build_encoder accepts: "mit_b0" .. "mit_b5".
MIT_ENCODERS = {f"mit_{v}": v for v in VARIANTS}


def _four(name, values, default, multiples_of=(1, 1, 1, 1)):
    """``values`` (four positive ints, stage ``i``'s a multiple of ``multiples_of[i]``) as a tuple; ``None``: ``default``."""
    if values is None:
        return tuple(default)
    values = tuple(values)
    if len(values) != 4 or not all(isinstance(v, int) and v > 0 and v % m == 0 for v, m in zip(values, multiples_of)):
        need = "" if set(multiples_of) == {1} else f", each a multiple of its stage's attention heads {multiples_of}"
        raise ValueError(f"{name}={values!r} must be four positive ints, one per stage{need}.")
    return values


def check_variant(variant):
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is not a Mix Transformer variant; expected one of {sorted(VARIANTS)}.")
    return variant


# ----------------------------------------------------------------------------- layers


@keras.saving.register_keras_serializable(package="keras_seg")
class EfficientAttention(keras.layers.Layer):
    """``EfficientAttention(num_heads)([q, k, v])``: multi-head ``softmax(q k^T / sqrt(d)) v`` over positions.

    ``q`` is ``(B, H, W, C)``, ``k`` and ``v`` are ``(B, h, w, C)`` (the spatially reduced
    map); the output has ``q``'s shape. The projections are ordinary ``Dense`` layers
    around it; this layer has no weights. The softmax runs in float32 (as Hugging Face's
    does) whatever the dtype policy.
    """

    def __init__(self, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)

    def call(self, inputs):
        q, k, v = inputs
        channels = q.shape[-1]
        head_dim = channels // self.num_heads
        shape = ops.shape(q)
        batch, height, width = shape[0], shape[1], shape[2]

        def heads(x):  # (B, h, w, C) -> (B, heads, h * w, head_dim)
            x = ops.reshape(x, (batch, -1, self.num_heads, head_dim))
            return ops.transpose(x, (0, 2, 1, 3))

        scores = ops.matmul(heads(q), ops.transpose(heads(k), (0, 1, 3, 2))) * (head_dim**-0.5)
        with warnings.catch_warnings():  # small inputs reduce the keys to one position: softmax over 1 is right
            warnings.filterwarnings("ignore", message="You are using a softmax over axis", category=UserWarning)
            weights = ops.cast(ops.softmax(ops.cast(scores, "float32"), axis=-1), v.dtype)
        out = ops.transpose(ops.matmul(weights, heads(v)), (0, 2, 1, 3))  # (B, H * W, heads, head_dim)
        return ops.reshape(out, (batch, height, width, channels))

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0])

    def get_config(self):
        config = super().get_config()
        config["num_heads"] = self.num_heads
        return config


@keras.saving.register_keras_serializable(package="keras_seg")
class DropPath(keras.layers.Layer):
    """Stochastic depth: in training, zero a whole sample's residual branch with probability ``rate``.

    Kept samples are scaled by ``1 / (1 - rate)``; at inference the layer is the identity.
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"rate={rate!r} must be in [0, 1).")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training or self.rate == 0.0:
            return x
        noise_shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        return keras.random.dropout(x, self.rate, noise_shape=noise_shape, seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="keras_seg")
class GELU(keras.layers.Layer):
    """GELU with the form named explicitly: ``approximate=False`` is the exact ``x * Phi(x)`` (erf).

    ``keras.ops.gelu`` defaults to the tanh approximation; PyTorch's ``nn.GELU`` and SegFormer
    use the exact form. It is written ``0.5 * x * (1 + erf(x / sqrt(2)))`` rather than with
    ``keras.ops.gelu(approximate=False)``, which TensorFlow computes with ``erfc``: tf2onnx has
    no ``Erfc``, while this form becomes ONNX ``Erf`` and one TFLite ``GELU`` op.
    """

    def __init__(self, approximate=False, **kwargs):
        super().__init__(**kwargs)
        self.approximate = bool(approximate)

    def call(self, x):
        if self.approximate:
            return ops.gelu(x, approximate=True)
        return 0.5 * x * (1.0 + ops.erf(x * _SQRT_HALF))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["approximate"] = self.approximate
        return config


# ----------------------------------------------------------------------------- graph


def _layer_norm(name, epsilon=LAYER_NORM_EPSILON):
    return keras.layers.LayerNormalization(epsilon=epsilon, name=name)


def _strided_conv(x, filters, kernel, stride, dilation, *, name, pad=True):
    """A conv of stride ``stride``, or (``dilation > 1``) of stride 1 and that dilation: PyTorch's padding
    ``(kernel // 2) * dilation`` on each side (none for ``pad=False`` at dilation 1)."""
    padding = (kernel // 2) * dilation if (pad or dilation > 1) else 0
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    if dilation > 1:
        return keras.layers.Conv2D(filters, kernel, dilation_rate=dilation, name=f"{name}_conv" if pad else name)(x)
    return keras.layers.Conv2D(filters, kernel, strides=stride, name=f"{name}_conv" if pad else name)(x)


def patch_embedding(x, hidden, patch_size, stride, *, name, dilation=1):
    """Overlapping patches: zero padding ``patch_size // 2`` on each side, a strided conv, LayerNorm.

    ``dilation > 1``: segmentation_models.pytorch's dilated stage (stride 1, dilation, padding
    ``(patch_size // 2) * dilation``)."""
    x = _strided_conv(x, hidden, patch_size, stride, dilation, name=name)
    return _layer_norm(f"{name}_norm")(x)


def transformer_block(x, hidden, num_heads, sr_ratio, drop_path, *, name, mlp_ratio=MLP_RATIO,
                      epsilon=LAYER_NORM_EPSILON, dilation=1):  # fmt: skip
    """One MiT block on ``(B, H, W, hidden)``: efficient self-attention and Mix-FFN, each pre-norm and residual.

    ``epsilon``: of the two pre-norms (the reduction's LayerNorm keeps 1e-5). ``dilation > 1``:
    segmentation_models.pytorch's dilated stage, where every conv of the block loses its stride and
    gains the dilation (the key/value reduction too, which then no longer reduces).
    """
    layers = keras.layers
    h = _layer_norm(f"{name}_norm1", epsilon)(x)
    q = layers.Dense(hidden, name=f"{name}_attn_q")(h)
    kv = h
    if sr_ratio > 1:
        kv = _strided_conv(h, hidden, sr_ratio, sr_ratio, dilation, name=f"{name}_attn_sr", pad=False)
        kv = _layer_norm(f"{name}_attn_sr_norm")(kv)
    k = layers.Dense(hidden, name=f"{name}_attn_k")(kv)
    v = layers.Dense(hidden, name=f"{name}_attn_v")(kv)
    h = EfficientAttention(num_heads, name=f"{name}_attn")([q, k, v])
    h = layers.Dense(hidden, name=f"{name}_attn_out")(h)
    x = layers.Add(name=f"{name}_add1")([x, DropPath(drop_path, name=f"{name}_drop_path1")(h)])

    h = _layer_norm(f"{name}_norm2", epsilon)(x)
    h = layers.Dense(hidden * mlp_ratio, name=f"{name}_mlp_fc1")(h)
    h = DepthwiseConv2D(3, padding="same", dilation_rate=dilation, name=f"{name}_mlp_dwconv")(h)
    h = GELU(approximate=False, name=f"{name}_mlp_gelu")(h)
    h = layers.Dense(hidden, name=f"{name}_mlp_fc2")(h)
    return layers.Add(name=f"{name}_add2")([x, DropPath(drop_path, name=f"{name}_drop_path2")(h)])


def drop_path_rates(drop_path_rate, depths):
    """Per block, all stages in order: ``drop_path_rate * k / (blocks - 1)`` (0 for the first block)."""
    total = sum(depths)
    return [float(drop_path_rate) * k / max(total - 1, 1) for k in range(total)]


@keras.saving.register_keras_serializable(package="keras_seg")
class MiTEncoder(Encoder):
    """The Mix Transformer encoder of SegFormer, variants ``"b0"`` .. ``"b5"``.

    Args:
        variant: ``"b0"`` (hidden sizes 32-64-160-256, depths 2-2-2-2, 3.3 M parameters) to
            ``"b5"`` (64-128-320-512, depths 3-6-40-3, 81.4 M).
        in_channels: input channels (ImageNet statistics' mean for channels other than RGB).
        drop_path_rate: the stochastic-depth rate of the last block (training only).
        hidden_sizes, depths: four widths and four block counts in place of the ``variant``'s (keras-hub's
            ``MiTBackbone`` takes the same two); stage ``i``'s width must be a multiple of its
            attention heads, 1, 2, 5, 8. The ``variant`` still names the decoder width SegFormer
            picks when ``decoder_channels=None``. A small MiT for tests: ``hidden_sizes=(8, 16, 40, 64),
            depths=(1, 1, 1, 1)``.

    Takes RGB values in [0, 255] (ImageNet mean / std normalisation inside the graph) of any
    size and returns ``{"P2", "P3", "P4", "P5"}`` at strides 4, 8, 16, 32.

    Two arguments exist for segmentation_models.pytorch's MiT (``keras_seg.models.from_smp``):
    ``layer_norm_epsilon`` of the blocks' and stages' LayerNorms (SMP's 1e-6; Hugging Face's and
    this default 1e-5), and ``output_stride`` 16 or 8, SMP's dilated MiT: every conv of the
    stages beyond that stride (patch embedding, key/value reduction, Mix-FFN depthwise) loses its
    stride and is dilated by ``nominal stride / output_stride``, with PyTorch's padding. It is a
    faithful copy of what SMP runs for ``DeepLabV3`` / ``PAN`` with a MiT, not a design the
    paper validates; the levels follow ``ResNetEncoder``'s convention (deepest under its real
    stride, the replaced level kept as ``"C<k>"``).
    """

    def __init__(self, variant="b0", in_channels=3, drop_path_rate=0.1, layer_norm_epsilon=LAYER_NORM_EPSILON,
                 output_stride=32, hidden_sizes=None, depths=None, **kwargs):  # fmt: skip
        spec = VARIANTS[check_variant(variant)]
        spec = MiTVariant(_four("hidden_sizes", hidden_sizes, spec.hidden_sizes, NUM_HEADS),
                          _four("depths", depths, spec.depths))  # fmt: skip
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels={in_channels!r} must be a positive int (3 for RGB).")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride={output_stride!r} must be 32 (the MiT's own), or 16 / 8 "
                             "(segmentation_models.pytorch's dilated MiT).")  # fmt: skip
        inputs = keras.Input((None, None, in_channels), name="image")
        x = ImagePreprocessing("torch", name="preprocessing")(inputs)
        rates = iter(drop_path_rates(drop_path_rate, spec.depths))
        pyramid, stride, nominal = {}, 1, 1
        for i, (hidden, depth) in enumerate(zip(spec.hidden_sizes, spec.depths)):
            step = STRIDES[i]
            nominal *= step
            dilation = nominal // output_stride if nominal > output_stride else 1  # SMP's make_dilated
            x = patch_embedding(x, hidden, PATCH_SIZES[i], step, name=f"stage{i}_patch", dilation=dilation)
            for j in range(depth):
                x = transformer_block(x, hidden, NUM_HEADS[i], SR_RATIOS[i], next(rates), name=f"stage{i}_block{j}",
                                      epsilon=layer_norm_epsilon, dilation=dilation)  # fmt: skip
            x = _layer_norm(f"stage{i}_norm", layer_norm_epsilon)(x)
            stride *= step if dilation == 1 else 1
            key = level_key(stride)
            if key in pyramid:  # a dilated stage takes over the level; the earlier one stays as C<k> (as ResNetEncoder)
                pyramid[f"C{i + 1}"] = pyramid[key]
            pyramid[key] = x
        kwargs.setdefault("name", naming.unique(f"mit_{variant}_encoder"))
        super().__init__(inputs, pyramid, **kwargs)
        self.variant = variant
        self.in_channels = in_channels
        self.drop_path_rate = float(drop_path_rate)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.output_stride = int(output_stride)
        self.hidden_sizes, self.depths = spec

    @classmethod
    def from_huggingface(cls, path, config=None, **kwargs):
        """A MiT encoder with the weights of a Hugging Face checkpoint of the backbone.

        ``path``: a directory written by ``save_pretrained`` of ``SegformerModel`` or
        ``SegformerForImageClassification`` (the ImageNet MiT checkpoints ``nvidia/mit-b0`` ..
        ``nvidia/mit-b5``; their 1000-class ImageNet classifier is left out), or a
        ``.safetensors`` / ``.bin`` / ``.pt`` file; see :func:`keras_seg.models.huggingface.read_checkpoint`.
        The variant and input channels come from the checkpoint. A SegFormer checkpoint with a
        decode head goes to :meth:`keras_seg.models.SegFormer.from_huggingface` instead.
        """
        from keras_seg.convert import huggingface

        checkpoint = huggingface.read_checkpoint(path, config)
        spec = huggingface.segformer_config(checkpoint)
        kwargs.setdefault("drop_path_rate", spec["drop_path_rate"])
        encoder = cls(spec["variant"], in_channels=spec["in_channels"], **kwargs)
        huggingface.load_encoder(encoder, checkpoint)
        return encoder

    def get_config(self):
        config = super().get_config()
        config.update(variant=self.variant, in_channels=self.in_channels, drop_path_rate=self.drop_path_rate,
                      layer_norm_epsilon=self.layer_norm_epsilon, output_stride=self.output_stride,
                      hidden_sizes=list(self.hidden_sizes), depths=list(self.depths))  # fmt: skip
        return config


def mit_encoder(name, weights=None, in_channels=3, output_stride=None, drop_path_rate=0.1):
    """The encoder for ``encoder="mit_b0"`` .. ``"mit_b5"``, with ``encoder_weights`` and ``output_stride`` checked.

    ``weights``: ``None`` (random), a ``.weights.h5`` file written by ``encoder.save_weights``,
    or a Hugging Face checkpoint of the same variant (a ``save_pretrained`` directory, or a
    ``.safetensors`` / ``.bin`` / ``.pt`` file).
    """
    variant = MIT_ENCODERS[name]
    if output_stride not in (None, 32):
        raise ValueError(
            f"output_stride={output_stride!r} is not offered for the Mix Transformer encoder {name!r} by name: a "
            "transformer's patch embeddings are not meant to become dilations, so its deepest feature has stride "
            "32. Pass output_stride=None (or 32); DeepLab then uses atrous rates (3, 6, 9). To reproduce "
            "segmentation_models.pytorch's dilated MiT, pass encoder=keras_seg.encoders.MiTEncoder("
            f"'{variant}', output_stride={output_stride!r}, layer_norm_epsilon=1e-6)."
        )
    if weights == "imagenet":
        raise ValueError(
            f"encoder_weights='imagenet': keras.applications has no ImageNet weights for the Mix Transformer {name!r}. "
            "Use Hugging Face checkpoints: keras_seg.models.SegFormer.from_huggingface(path) for a SegFormer "
            f"(e.g. a local copy of nvidia/segformer-{variant}-finetuned-ade-512-512), or encoder_weights='/path/to/"
            f"mit-{variant}' (a local copy of the ImageNet backbone nvidia/mit-{variant}, read by "
            "MiTEncoder.from_huggingface); or encoder_weights=None for random initialisation."
        )
    if weights is not None and not os.path.exists(str(weights)):
        raise FileNotFoundError(
            f"encoder_weights={weights!r}: no such file or directory. For {name!r} pass None (random init), a "
            ".weights.h5 file written by encoder.save_weights, or a Hugging Face checkpoint (a save_pretrained "
            "directory, or a .safetensors / .bin / .pt file)."
        )
    encoder = MiTEncoder(variant, in_channels=in_channels, drop_path_rate=drop_path_rate)
    if weights is None:
        return encoder
    if str(weights).endswith(".weights.h5"):
        encoder.load_weights(weights)
        return encoder
    from keras_seg.convert import huggingface

    checkpoint = huggingface.read_checkpoint(weights)
    found = huggingface.segformer_config(checkpoint)["variant"]
    if found != variant:
        raise ValueError(
            f"encoder_weights={weights!r} holds a MiT-{found}, not the {name!r} asked for; use encoder='mit_{found}'."
        )
    huggingface.load_encoder(encoder, checkpoint)
    return encoder
