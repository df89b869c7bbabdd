"""keras_seg.layers.Conv2D / DepthwiseConv2D: Keras' function, without the dilated taps that read only padding."""

import keras
import numpy as np
import pytest

from keras_seg.layers import Conv2D, DepthwiseConv2D
from keras_seg.layers.conv import _kept_taps


def test_kept_taps_by_hand():
    # a 3x3 at dilation 12 on an 8-pixel axis: offsets -12, 0, 12 -> the centre tap only
    assert _kept_taps((3, 3), (12, 12), (8, 8)) == [(1, 2), (1, 2)]
    # offset 12 < 13 reads the map: nothing to drop
    assert _kept_taps((3, 3), (12, 12), (13, 13)) is None
    # 5 taps at dilation 2 on 3 pixels: offsets -4 -2 0 2 4 -> the middle three (|offset| <= 2 = n - 1)
    assert _kept_taps((5, 5), (2, 2), (3, 40)) == [(1, 4), (0, 5)]
    assert _kept_taps((3, 3), (36, 36), (None, None)) is None  # a dynamic size keeps the kernel


CASES = [  # class, kernel, dilation, height x width, padding
    ("conv", 3, 12, (8, 8), "same"),  # ASPP at a 128-px image: 1x1
    ("conv", 3, (12, 2), (8, 20), "same"),  # rows trimmed, columns kept
    ("conv", 5, 2, (3, 9), "same"),
    ("conv", 3, 12, (16, 16), "same"),  # nothing to drop
    ("depthwise", 3, 24, (8, 8), "same"),
    ("depthwise", 3, 12, (8, 20), "same"),
    ("depthwise", 3, 2, (9, 11), "same"),  # JAX: the sum of taps, nothing dropped
    ("depthwise", 5, 1, (9, 11), "valid"),  # JAX: the sum of taps of a "valid" conv
    ("depthwise", 3, 2, (9, 11), "valid"),
]


def _layers(kind, kernel, dilation, padding, **extra):
    if kind == "conv":
        args = dict(filters=4, kernel_size=kernel, dilation_rate=dilation, padding=padding, activation="relu")
        return keras.layers.Conv2D(**args), Conv2D(**args)
    args = dict(kernel_size=kernel, dilation_rate=dilation, padding=padding, depth_multiplier=2, use_bias=True,
                activation="relu", **extra)  # fmt: skip
    return keras.layers.DepthwiseConv2D(**args), DepthwiseConv2D(**args)


def _model(layer, size, channels=3):
    """``1x1 conv -> layer``: the first conv's update carries the layer's input gradient."""
    inputs = keras.Input(size + (channels,))
    first = keras.layers.Conv2D(5, 1, name="first")
    return keras.Model(inputs, layer(first(inputs)))


@pytest.mark.parametrize("kind, kernel, dilation, size, padding", CASES)
def test_same_outputs_and_sgd_step_as_keras(kind, kernel, dilation, size, padding):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2,) + size + (3,)).astype("float32")
    ref, new = _layers(kind, kernel, dilation, padding)
    a, b = _model(ref, size), _model(new, size)
    a.set_weights([rng.normal(size=w.shape).astype("float32") for w in a.get_weights()])
    b.set_weights(a.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(b(x)), keras.ops.convert_to_numpy(a(x)), atol=1e-4)
    target = rng.normal(size=(2,) + tuple(a.output.shape[1:])).astype("float32")
    for model in (a, b):
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        model.train_on_batch(x, target)
    for wa, wb in zip(a.get_weights(), b.get_weights()):  # the dropped taps' gradients are zeros in both
        np.testing.assert_allclose(wb, wa, rtol=1e-4, atol=1e-5)


def test_the_drop_happens_at_a_static_size_only():
    layer = Conv2D(4, 3, dilation_rate=12, padding="same")
    layer.build((None, None, None, 3))
    kernel, dilation = layer._trimmed(keras.KerasTensor((2, 8, 8, 3)), layer.kernel)
    assert tuple(kernel.shape) == (1, 1, 3, 4) and dilation == (1, 1)
    kernel, dilation = layer._trimmed(keras.KerasTensor((2, None, None, 3)), layer.kernel)
    assert tuple(kernel.shape) == (3, 3, 3, 4) and dilation == (12, 12)
    # a model of any size gives Keras' numbers at every size it meets
    ref, new = _layers("conv", 3, 12, "same")
    a, b = _model(ref, (None, None)), _model(new, (None, None))
    b.set_weights(a.get_weights())
    for size in ((8, 8), (15, 30)):
        x = np.random.default_rng(1).normal(size=(1,) + size + (3,)).astype("float32")
        np.testing.assert_allclose(keras.ops.convert_to_numpy(b(x)), keras.ops.convert_to_numpy(a(x)), atol=1e-4)


def test_saved_keras_weights_load_and_a_keras_file_round_trips(tmp_path):
    """Keras' class names are kept, so weights saved from keras.layers load into these; the .keras file reloads."""
    x = np.random.default_rng(2).normal(size=(1, 8, 8, 3)).astype("float32")

    def build(conv, depthwise):
        inputs = keras.Input((8, 8, 3))
        y = conv(4, 3, dilation_rate=12, padding="same", name="c")(inputs)
        return keras.Model(inputs, depthwise(3, dilation_rate=24, padding="same", name="d")(y))

    plain = build(keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    plain.save_weights(tmp_path / "plain.weights.h5")
    ours = build(Conv2D, DepthwiseConv2D)
    ours.load_weights(tmp_path / "plain.weights.h5")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x)), keras.ops.convert_to_numpy(plain(x)), atol=1e-5)
    ours.save(tmp_path / "ours.keras")
    loaded = keras.saving.load_model(tmp_path / "ours.keras")
    assert [type(layer) for layer in loaded.layers[1:]] == [Conv2D, DepthwiseConv2D]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(ours(x)))


def test_aspp_and_dilated_encoders_use_them():
    from keras_seg.encoders.applications import dilate
    from keras_seg.layers import aspp

    inputs = keras.Input((8, 8, 16))
    model = keras.Model(inputs, aspp(inputs, 8, (12, 24, 36), name="aspp", separable=True))
    assert {type(layer) for layer in model.layers if "depthwise" in layer.name} == {DepthwiseConv2D}
    inputs = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="down")(inputs)
    y = keras.layers.Conv2D(4, 3, padding="same", name="after")(y)
    dilated = dilate(keras.Model(inputs, y), output_stride=1)
    assert type(dilated.get_layer("after")) is Conv2D and dilated.get_layer("after").dilation_rate == (2, 2)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_jax_on_the_cpu_sums_the_taps_of_float32_depthwise_convs(monkeypatch, dtype):
    from keras_seg.layers import conv

    calls = []
    original = conv._depthwise_as_taps
    monkeypatch.setattr(conv, "_depthwise_as_taps", lambda *a: calls.append(1) or original(*a))
    ref, new = _layers("depthwise", 3, 2, "same", dtype=dtype)  # the layers compute in dtype
    x = np.random.default_rng(3).normal(size=(1, 9, 11, 3)).astype(dtype)
    for layer in (ref, new):
        layer.build(x.shape)
    new.set_weights(ref.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(x)), keras.ops.convert_to_numpy(ref(x)), atol=1e-2)
    assert len(calls) == (keras.backend.backend() == "jax" and conv._jax_cpu() and dtype == "float32")
