"""Resizing a feature map to the spatial size of another: the glue of every decoder.

Decoders upsample coarse features and fuse them with finer ones; for input sizes
that are not multiples of the encoder's stride (97x61, say) the two differ by a
pixel or so. ``ResizeLike`` resizes ``x`` to ``reference``'s height and width
whatever they are, so a model built with ``input_shape=(None, None, 3)`` takes
any size and always returns logits at the input's H x W.
"""

import keras
from keras import ops

INTERPOLATIONS = ("bilinear", "nearest")


@keras.saving.register_keras_serializable(package="keras_seg")
class ResizeLike(keras.layers.Layer):
    """``ResizeLike(interpolation)([x, reference])``: ``x`` resized to ``reference``'s H x W.

    Channels-last. When both sizes are known statically and equal, ``x`` is
    returned unchanged (no resize op in the graph). Bilinear uses half-pixel
    centres without antialiasing (``align_corners=False`` in PyTorch terms) on
    every backend.
    """

    def __init__(self, interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation={interpolation!r} is not supported; expected one of {INTERPOLATIONS}.")
        self.interpolation = interpolation

    def call(self, inputs):
        x, reference = inputs
        static_x, static_ref = tuple(x.shape[1:3]), tuple(reference.shape[1:3])
        if None not in static_x and static_x == static_ref:
            return x
        size = ops.shape(reference)[1:3]
        if all(isinstance(d, int) for d in size):
            return ops.image.resize(x, size, interpolation=self.interpolation)
        # TensorFlow graph with an unknown H or W: keras.ops.image.resize wants Python
        # ints, tf.image.resize takes the size as a tensor (same kernels as Keras uses).
        import tensorflow as tf

        method = "bilinear" if self.interpolation == "bilinear" else "nearest"
        return tf.cast(tf.image.resize(x, size, method=method), x.dtype)

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["interpolation"] = self.interpolation
        return config
