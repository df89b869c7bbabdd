"""A 2x2 stride-2 transposed convolution computed as one matrix product: the U-Net's up step.

When the kernel size equals the stride (the classic U-Net's ``ConvTranspose2d(k=2, s=2)``),
the output windows do not overlap: every input pixel writes its own 2x2 block, ``y[2i+a,
2j+b, o] = sum_c x[i, j, c] * kernel[a, b, o, c] + bias[o]``. That is a dense layer from C to
2*2*O channels followed by a depth-to-space rearrangement. XLA on the CPU runs the generic
transposed convolution's gradient very slowly (measured: a 64-channel 128x128 layer trained in
3.6 s per step under JAX, 0.3 s under TensorFlow; see benchmarks/RESULTS.md); the matrix product
form is fast on every backend and gives the same numbers.
"""

import contextlib

import keras
from keras import ops

_standard_form = [0]  # > 0 inside standard_form(): trace the generic transposed convolution


@contextlib.contextmanager
def standard_form():
    """Within this block, :class:`Conv2DTranspose` is traced as the generic transposed convolution.

    Export uses it: the matmul form is six-dimensional (a reshape to ``(B, H, W, 2, 2, O)`` and a
    transpose of six axes), which the LiteRT GPU delegate cannot run, while the standard form
    becomes one ``TRANSPOSE_CONV`` in TFLite and one ``ConvTranspose`` in ONNX. Same weights,
    same numbers (``tests/test_layers.py``); training keeps the fast form.
    """
    _standard_form[0] += 1
    try:
        yield
    finally:
        _standard_form[0] -= 1


@keras.saving.register_keras_serializable(package="keras_seg")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """A drop-in ``keras.layers.Conv2DTranspose`` (same arguments, weights and config); ``kernel_size == strides`` as a matmul.

    It keeps Keras' class name on purpose: a ``.keras`` file stores each layer's weights under
    its class name in snake case (``conv2d_transpose``), so U-Nets saved before this layer
    existed load into it unchanged.

    Any other configuration (overlapping windows, padding="same", dilation,
    channels_first) falls back to ``Conv2DTranspose.call``.
    """

    def _as_matmul(self):
        return (
            not _standard_form[0]
            and tuple(self.kernel_size) == tuple(self.strides)
            and self.padding == "valid"
            and self.data_format == "channels_last"
            and tuple(self.dilation_rate) == (1, 1)
            and self.output_padding is None
        )

    def call(self, inputs):
        if not self._as_matmul():
            return super().call(inputs)
        kh, kw = self.kernel_size
        channels = self.kernel.shape[-1]
        # kernel (kh, kw, out, in) -> (in, kh * kw * out)
        weights = ops.reshape(ops.transpose(self.kernel, (3, 0, 1, 2)), (channels, kh * kw * self.filters))
        y = ops.matmul(inputs, weights)
        shape = ops.shape(inputs)
        batch, height, width = shape[0], shape[1], shape[2]
        y = ops.reshape(y, (batch, height, width, kh, kw, self.filters))
        y = ops.transpose(y, (0, 1, 3, 2, 4, 5))
        y = ops.reshape(y, (batch, height * kh, width * kw, self.filters))
        if self.use_bias:
            y = y + self.bias
        if self.activation is not None:
            y = self.activation(y)
        return y


@keras.saving.register_keras_serializable(package="keras_seg")
class ReLUAfterTransposeConv(keras.layers.Layer):
    """``max(x, 0)``; in the export form (:func:`standard_form`) written ``x - min(x, 0)``, the same numbers.

    TFLite fuses a ReLU that follows a ``TRANSPOSE_CONV`` into it, which makes the op version 4,
    and the LiteRT GPU delegate runs ``TRANSPOSE_CONV`` up to version 3: the whole up-sampling would
    fall back to the CPU. ``x - min(x, 0)`` (a ``MINIMUM`` and a ``SUB``, both GPU ops) is not
    fused. Training and inference in Keras use the plain ReLU.
    """

    def call(self, x):
        if _standard_form[0]:
            return x - ops.minimum(x, ops.cast(0, x.dtype))
        return ops.relu(x)

    def compute_output_shape(self, input_shape):
        return input_shape
