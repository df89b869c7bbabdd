"""Resizing a feature map to the spatial size of another: the glue of every decoder.

Decoders upsample coarse features and fuse them with finer ones; for input sizes
that are not multiples of the encoder's stride (97x61, say) the two differ by a
pixel or so. ``ResizeLike`` resizes ``x`` to ``reference``'s height and width
whatever they are, so a model built with ``input_shape=(None, None, 3)`` takes
any size and always returns logits at the input's H x W. ``Upsample`` scales by an
integer factor.

Three coordinate conventions, named as ONNX's ``Resize`` names them, so that a network
computes what its PyTorch original computes:

- ``"half_pixel"`` (default): pixel centres at ``i + 0.5``; PyTorch's bilinear with
  ``align_corners=False``; for nearest, Keras' own (TensorFlow's ``half_pixel_centers``).
- ``"align_corners"`` (bilinear): the corner pixels of input and output coincide,
  ``src = dst * (in - 1) / (out - 1)``; PyTorch's ``align_corners=True``, which
  segmentation_models.pytorch uses in most of its decoders and heads.
- ``"asymmetric"`` (nearest): ``src = floor(dst * in / out)``, PyTorch's default
  ``mode="nearest"`` (the U-Net decoders); the same pixels as ``"half_pixel"`` for an
  integer upscale, different for other ratios.

On TensorFlow each is one native resize op (so an export is one ``RESIZE_BILINEAR`` /
``RESIZE_NEAREST_NEIGHBOR`` in TFLite, one ``Resize`` in ONNX); on JAX and PyTorch
``"align_corners"`` and ``"asymmetric"`` gather the source rows and columns (``keras.ops``).

Training on TensorFlow with XLA (``jit_compile=True``, and Keras' ``"auto"`` on a GPU): XLA has no
kernel for ``ResizeNearestNeighborGrad``, the gradient TensorFlow registers for its nearest resize, so a
U-Net's training step would not compile. With ``training=True`` (what ``fit`` passes) the nearest
resize keeps its forward op and takes its gradient from :func:`nearest_gradient` (sums over the
source pixels, XLA-compatible); the align-corners bilinear resize is computed by
:func:`align_corners_by_matrices` (XLA compiles TensorFlow's op and its gradient to slow code, and its
forward op to wrong pixels at some sizes). Inference graphs and exports are unchanged.
"""

import keras
from keras import ops

INTERPOLATIONS = ("bilinear", "nearest")
COORDINATES = ("half_pixel", "align_corners", "asymmetric")


def check_resize(interpolation, coordinates):
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation={interpolation!r} is not supported; expected one of {INTERPOLATIONS}.")
    if coordinates not in COORDINATES:
        raise ValueError(f"coordinates={coordinates!r} is not supported; expected one of {COORDINATES}.")
    if (interpolation, coordinates) in (("nearest", "align_corners"), ("bilinear", "asymmetric")):
        raise ValueError(f"coordinates={coordinates!r} goes with "
                         f"{'bilinear' if coordinates == 'align_corners' else 'nearest'} interpolation, not {interpolation!r}.")  # fmt: skip


def resize(x, size, interpolation="bilinear", coordinates="half_pixel", training=False):
    """``x`` (B, H, W, C) resized to ``size`` (H', W'): Python ints, or tensors in a TensorFlow graph.

    ``training``: on TensorFlow, give the nearest resize a gradient that XLA compiles (see the module).
    """
    static = all(isinstance(d, int) for d in size)
    if static and tuple(x.shape[1:3]) == tuple(size):
        return x
    if keras.backend.backend() == "tensorflow":
        return _resize_tensorflow(x, size, interpolation, coordinates, training)
    if coordinates == "half_pixel":
        return ops.image.resize(x, size, interpolation=interpolation)
    shape = ops.shape(x)
    if interpolation == "nearest":  # asymmetric: src = floor(dst * in / out)
        x = ops.take(x, _floor_index(shape[1], size[0]), axis=1)
        return ops.take(x, _floor_index(shape[2], size[1]), axis=2)
    x = _lerp_axis(x, shape[1], size[0], axis=1)
    return _lerp_axis(x, shape[2], size[1], axis=2)


def _resize_tensorflow(x, size, interpolation, coordinates, training=False):
    import tensorflow as tf

    size = tf.stack([tf.cast(size[0], tf.int32), tf.cast(size[1], tf.int32)])
    if interpolation == "nearest":
        half_pixel = coordinates == "half_pixel"

        def nearest(t):  # tf.image.resize(method="nearest") is this op with half_pixel_centers=True
            return tf.raw_ops.ResizeNearestNeighbor(images=t, size=size, align_corners=False,
                                                    half_pixel_centers=half_pixel)  # fmt: skip

        if not training:
            return nearest(x)

        @tf.custom_gradient
        def differentiable(t):
            y = nearest(t)
            return y, lambda dy: nearest_gradient(tf.ensure_shape(dy, y.shape), t, nearest)

        return differentiable(x)
    if coordinates == "half_pixel":
        return tf.cast(tf.image.resize(x, size, method="bilinear"), x.dtype)

    if training:  # XLA-safe (see the module); the same numbers as the op up to float rounding
        return tf.cast(align_corners_by_matrices(tf.cast(x, tf.float32), size), x.dtype)
    y = tf.raw_ops.ResizeBilinear(images=x, size=size, align_corners=True, half_pixel_centers=False)
    return tf.cast(y, x.dtype)


def nearest_gradient(dy, source, nearest):
    """The gradient of a nearest-neighbour resize (TensorFlow): each source pixel sums the output pixels it fed.

    ``dy`` (B, H', W', C) is the gradient of the output, ``source`` the resize's input (B, H, W, C) and
    ``nearest`` the forward resize, a function of a (B, H, W, C) tensor. Nearest resizing is separable and picks
    one source row per output row and one source column per output column; which ones is read off
    ``nearest`` itself, applied to the row and column indices, so the gradient matches the forward op's
    coordinate convention exactly. An integer upscale known statically (a U-Net's 2x) sums s x t
    blocks; any other ratio sums segments. Both compile under XLA, unlike ``ResizeNearestNeighborGrad``.
    """
    import tensorflow as tf

    height, width = dy.shape[1], dy.shape[2]
    src_h, src_w = source.shape[1], source.shape[2]
    if None not in (height, width, src_h, src_w) and height % src_h == 0 and width % src_w == 0:
        s, t = height // src_h, width // src_w
        blocks = tf.reshape(dy, [-1, src_h, s, src_w, t, tf.shape(dy)[-1]])
        return tf.reduce_sum(blocks, axis=[2, 4])
    src_h, src_w = tf.shape(source)[1], tf.shape(source)[2]
    # One-channel images of the row and of the column indices (exact as float32 below 2**24), resized
    # by the forward op: the source row of every output row, the source column of every output column.
    rows_image = tf.broadcast_to(tf.reshape(tf.range(src_h, dtype=tf.float32), [1, -1, 1, 1]), [1, src_h, src_w, 1])
    cols_image = tf.broadcast_to(tf.reshape(tf.range(src_w, dtype=tf.float32), [1, 1, -1, 1]), [1, src_h, src_w, 1])
    rows = tf.cast(nearest(rows_image)[0, :, 0, 0], tf.int32)
    cols = tf.cast(nearest(cols_image)[0, 0, :, 0], tf.int32)
    g = tf.math.unsorted_segment_sum(tf.transpose(dy, [1, 0, 2, 3]), rows, src_h)  # (H, B, W', C)
    g = tf.math.unsorted_segment_sum(tf.transpose(g, [2, 1, 0, 3]), cols, src_w)  # (W, B, H, C)
    return tf.transpose(g, [1, 2, 0, 3])


def _align_corners_matrix(length, target, dtype):
    """(target, length): row ``i`` holds the weights align-corners linear interpolation gives output ``i``."""
    import tensorflow as tf

    scale = tf.cast(length - 1, tf.float32) / tf.cast(tf.maximum(target - 1, 1), tf.float32)
    src = tf.cast(tf.range(target), tf.float32) * scale  # TensorFlow's ResizeBilinear, align_corners=True
    low = tf.minimum(tf.cast(tf.floor(src), tf.int32), length - 1)
    high = tf.minimum(low + 1, length - 1)
    weight = (src - tf.cast(low, tf.float32))[:, None]
    matrix = tf.one_hot(low, length) * (1.0 - weight) + tf.one_hot(high, length) * weight
    return tf.cast(matrix, dtype)


def align_corners_by_matrices(x, size):
    """An align-corners bilinear resize (TensorFlow) of ``x`` (B, H, W, C) to ``size`` as two matrix products.

    The resize is separable and linear, ``y = A_h x A_w^T`` per image and channel, with the weights
    TensorFlow's ``ResizeBilinear`` computes; its gradient is ``A_h^T dy A_w``. XLA compiles both to fast,
    correct code, unlike the op: ``ResizeBilinearGrad`` ran 73-81 ms for DeepLabV3+'s 4x upsamples under XLA
    against 2 ms, and XLA's own forward op reads the wrong source pixel where a source position is an exact
    interior integer (13 x 9 -> 50 x 31: column 15 of 31 takes pixel 5 instead of 4; see benchmarks/RESULTS.md).
    """
    import tensorflow as tf

    shape = tf.shape(x)
    rows = _align_corners_matrix(shape[1], size[0], x.dtype)  # (H', H)
    cols = _align_corners_matrix(shape[2], size[1], x.dtype)  # (W', W)
    y = tf.einsum("ph,bhwc->bpwc", rows, x)
    return tf.einsum("qw,bpwc->bpqc", cols, y)


def _floor_index(length, target):
    scale = ops.cast(length, "float32") / ops.cast(target, "float32")
    index = ops.floor(ops.cast(ops.arange(target), "float32") * scale)
    return ops.minimum(ops.cast(index, "int32"), ops.cast(length, "int32") - 1)


def _lerp_axis(x, length, target, axis):
    """Align-corners linear interpolation of ``x`` along ``axis`` from ``length`` to ``target`` samples."""
    length_f = ops.cast(length, "float32")
    scale = (length_f - 1.0) / ops.maximum(ops.cast(target, "float32") - 1.0, 1.0)
    src = ops.cast(ops.arange(target), "float32") * scale
    low = ops.minimum(ops.cast(ops.floor(src), "int32"), ops.cast(length, "int32") - 1)
    high = ops.minimum(low + 1, ops.cast(length, "int32") - 1)
    weight = ops.cast(src - ops.cast(low, "float32"), x.dtype)
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    weight = ops.reshape(weight, shape)
    return ops.take(x, low, axis=axis) * (1 - weight) + ops.take(x, high, axis=axis) * weight


@keras.saving.register_keras_serializable(package="keras_seg")
class ResizeLike(keras.layers.Layer):
    """``ResizeLike(interpolation, coordinates)([x, reference])``: ``x`` resized to ``reference``'s H x W.

    Channels-last. When both sizes are known statically and equal, ``x`` is
    returned unchanged (no resize op in the graph). ``coordinates``: see the module
    (``"half_pixel"``, PyTorch's ``align_corners=False``, by default).
    """

    def __init__(self, interpolation="bilinear", coordinates="half_pixel", **kwargs):
        super().__init__(**kwargs)
        check_resize(interpolation, coordinates)
        self.interpolation = interpolation
        self.coordinates = coordinates

    def call(self, inputs, training=None):
        x, reference = inputs
        static_x, static_ref = tuple(x.shape[1:3]), tuple(reference.shape[1:3])
        if None not in static_x and static_x == static_ref:
            return x
        return resize(x, ops.shape(reference)[1:3], self.interpolation, self.coordinates, bool(training))

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(interpolation=self.interpolation, coordinates=self.coordinates)
        return config


@keras.saving.register_keras_serializable(package="keras_seg")
class Upsample(keras.layers.Layer):
    """``Upsample(scale, interpolation, coordinates)(x)``: ``x`` resized to ``scale`` times its H x W.

    Unlike ``keras.layers.UpSampling2D``, whose nearest mode is a repeat (a 5-D reshape and a
    tile once exported, which the LiteRT GPU delegate cannot run), this is one resize op
    (``RESIZE_NEAREST_NEIGHBOR`` / ``RESIZE_BILINEAR`` in TFLite, ``Resize`` in ONNX); for an
    integer ``scale`` nearest-neighbour gives the same pixels as the repeat. PyTorch's
    ``F.interpolate(x, scale_factor=s, ...)`` and ``nn.Upsample``, with ``coordinates`` as
    its ``align_corners``.
    """

    def __init__(self, scale=2, interpolation="nearest", coordinates="half_pixel", **kwargs):
        super().__init__(**kwargs)
        check_resize(interpolation, coordinates)
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale={scale!r} must be a positive int.")
        self.scale = scale
        self.interpolation = interpolation
        self.coordinates = coordinates

    def call(self, x, training=None):
        if self.scale == 1:
            return x
        height, width = x.shape[1:3]
        if height is None or width is None:
            shape = ops.shape(x)
            height, width = shape[1], shape[2]
        return resize(x, (height * self.scale, width * self.scale), self.interpolation, self.coordinates,
                      bool(training))  # fmt: skip

    def compute_output_shape(self, input_shape):
        scaled = [None if d is None else d * self.scale for d in input_shape[1:3]]
        return (input_shape[0], *scaled, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, interpolation=self.interpolation, coordinates=self.coordinates)
        return config
