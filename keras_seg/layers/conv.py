"""``Conv2D`` and ``DepthwiseConv2D`` that skip the taps a dilated "same" convolution never uses.

An odd ``k x k`` kernel with dilation ``d``, stride 1 and ``padding="same"`` reads, for tap ``t``, the
pixel ``(t - k // 2) * d`` rows away. When that offset is at least the map's height, the tap reads
padding zeros at every output pixel and adds exactly nothing: on an 8 x 8 map (a 128-pixel image at
output stride 16) all off-centre taps of ASPP's 3 x 3 convolutions at rates 12, 24 and 36 are such
taps, and the convolution is its centre tap, a 1 x 1 convolution. These layers drop those taps when
the map size is known when traced (fixed-size training, exports with a fixed input size; a dynamic
size keeps the full kernel), so the output and every gradient are the same numbers as before (the
dropped taps' gradients are zeros either way). It matters most under XLA: TensorFlow + XLA trained
DeepLabV3+ at 9.5x SMP's step time, ~2 s of it in these convolutions (benchmarks/RESULTS.md).

On JAX on the CPU, a float32 stride-1 depthwise convolution ("same" or "valid") is also computed as
the sum of its shifted, per-channel-scaled taps: XLA's CPU depthwise convolution and its gradient are
8-10x slower than that sum on these shapes (measured in benchmarks/RESULTS.md). Other backends, JAX on
a GPU (not measured) and 16-bit inputs (the sum would accumulate in 16 bits) keep the depthwise kernel
(TensorFlow's is faster than the sum; its slicing gradients are not).

Both keep Keras' class names on purpose: a ``.keras`` file stores each layer's weights under its
class name in snake case, so models saved with ``keras.layers.Conv2D`` load into these unchanged,
and the weights stay the full ``k x k`` kernels (a tap that is dropped at one size is used at another).
"""

import keras
from keras import ops


def _kept_taps(kernel_size, dilation_rate, spatial):
    """Per spatial axis, the ``(first, last + 1)`` kernel taps that can read the map, or None if all can."""
    kept, trimmed = [], False
    for k, d, n in zip(kernel_size, dilation_rate, spatial):
        centre = k // 2
        reach = centre if n is None else min(centre, (int(n) - 1) // d)  # furthest tap with offset < n
        trimmed |= reach < centre
        kept.append((centre - reach, centre + reach + 1))
    return kept if trimmed else None


class _SkipsUnreadTaps:
    """Shared by both layers: which taps a call can drop, and the kernel and dilation without them."""

    def _stride_one(self):
        return self.data_format == "channels_last" and all(s == 1 for s in self.strides)

    def _trimmable(self):
        return self._stride_one() and self.padding == "same" and all(k % 2 == 1 for k in self.kernel_size)

    def _trimmed(self, inputs, kernel):
        """``(kernel, dilation_rate)`` without the taps that read only padding at ``inputs``' static size."""
        dilation = tuple(self.dilation_rate)
        if not self._trimmable():
            return kernel, dilation
        kept = _kept_taps(self.kernel_size, dilation, inputs.shape[1:-1])
        if kept is None:
            return kernel, dilation
        (h0, h1), (w0, w1) = kept
        kernel = kernel[h0:h1, w0:w1]
        return kernel, tuple(1 if stop - start == 1 else d for (start, stop), d in zip(kept, dilation))


@keras.saving.register_keras_serializable(package="keras_seg")
class Conv2D(_SkipsUnreadTaps, keras.layers.Conv2D):
    """A drop-in ``keras.layers.Conv2D`` (same arguments, weights and config) that skips unread dilated taps."""

    def convolution_op(self, inputs, kernel):
        kernel, dilation = self._trimmed(inputs, kernel)
        return ops.conv(inputs, kernel, strides=list(self.strides), padding=self.padding, dilation_rate=dilation,
                        data_format=self.data_format)  # fmt: skip


def _jax_cpu():
    """JAX on the CPU: where the sum of taps was measured faster (a GPU keeps XLA's depthwise kernel)."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


def _depthwise_as_taps(inputs, kernel, dilation, padding):
    """A stride-1 depthwise convolution of channels-last ``inputs`` (``"valid"``, or ``"same"`` with an odd
    kernel) as a sum of shifted taps."""
    kh, kw, channels, multiplier = kernel.shape
    dh, dw = dilation
    height, width = inputs.shape[1] - (kh - 1) * dh, inputs.shape[2] - (kw - 1) * dw  # "valid"
    padded = inputs
    if padding == "same":
        ch, cw = kh // 2 * dh, kw // 2 * dw
        padded = ops.pad(inputs, ((0, 0), (ch, ch), (cw, cw), (0, 0)))
        height, width = inputs.shape[1], inputs.shape[2]
    if multiplier > 1:  # output channel c * multiplier + m reads input channel c
        padded = ops.repeat(padded, multiplier, axis=-1)
    kernel = ops.reshape(kernel, (kh, kw, channels * multiplier))
    total = None
    for i in range(kh):
        for j in range(kw):
            tap = padded[:, i * dh : i * dh + height, j * dw : j * dw + width] * kernel[i, j]
            total = tap if total is None else total + tap
    return total


@keras.saving.register_keras_serializable(package="keras_seg")
class DepthwiseConv2D(_SkipsUnreadTaps, keras.layers.DepthwiseConv2D):
    """A drop-in ``keras.layers.DepthwiseConv2D`` that skips unread dilated taps (and, on JAX, sums its taps)."""

    def call(self, inputs):
        static = all(n is not None for n in inputs.shape[1:])
        as_taps = _jax_cpu() and static and self._stride_one() and inputs.dtype == "float32"
        as_taps &= self.padding == "valid" or self._trimmable()
        if not (as_taps or self._trimmable()):
            return super().call(inputs)
        kernel, dilation = self._trimmed(inputs, self.kernel)
        if as_taps:
            outputs = _depthwise_as_taps(inputs, kernel, dilation, self.padding)
        else:
            outputs = ops.depthwise_conv(inputs, kernel, strides=self.strides, padding=self.padding,
                                         dilation_rate=dilation, data_format=self.data_format)  # fmt: skip
        if self.use_bias:  # channels last: the bias broadcasts over the last axis
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs
