"""keras_seg.layers.Conv2DTranspose: the same function as Keras' layer, computed as a matmul."""

import keras
import numpy as np
import pytest

from keras_seg.layers import Conv2DTranspose


def _pair(filters, kernel_size, strides, input_shape, **kwargs):
    ref = keras.layers.Conv2DTranspose(filters, kernel_size, strides=strides, **kwargs)
    new = Conv2DTranspose(filters, kernel_size, strides=strides, **kwargs)
    ref.build(input_shape)
    new.build(input_shape)
    rng = np.random.default_rng(1)
    new.set_weights([rng.normal(size=w.shape).astype("float32") for w in ref.get_weights()])
    ref.set_weights(new.get_weights())
    return ref, new


@pytest.mark.parametrize("kernel", [2, 3])  # 2: the matmul path; 3 (overlapping windows): Keras' own call
def test_same_outputs_and_gradients_as_keras(kernel):
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 6)).astype("float32")
    ref, new = _pair(4, kernel, kernel if kernel == 2 else 2, x.shape, activation="relu")
    assert new._as_matmul() == (kernel == 2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(x)), keras.ops.convert_to_numpy(ref(x)), atol=1e-5)
    assert new(x).shape == ((2, 10, 14, 4) if kernel == 2 else (2, 11, 15, 4))

    # the same weight gradients through a small model trained one SGD step
    def step(layer):
        inputs = keras.Input((5, 7, 6))
        model = keras.Model(inputs, layer(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.train_on_batch(x, np.ones((2,) + tuple(model.output.shape[1:]), "float32"))
        return [keras.ops.convert_to_numpy(w) for w in layer.weights]

    for a, b in zip(step(ref), step(new)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_any_input_size_and_a_config_round_trip():
    _, layer = _pair(3, 2, 2, (None, None, None, 5))
    inputs = keras.Input((None, None, 5))
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(2).normal(size=(1, 3, 9, 5)).astype("float32")
    assert model(x).shape == (1, 6, 18, 3)
    clone = Conv2DTranspose.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    # the block for pixel (i, j) is kernel[a, b, :, :] @ x[i, j] + bias
    kernel, bias = layer.get_weights()
    y = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(y[0, 2 * 1 + 1, 2 * 4 + 0], kernel[1, 0] @ x[0, 1, 4] + bias, rtol=1e-5, atol=1e-5)


def test_standard_form_gives_the_same_numbers():
    """Inside upsample.standard_form() (what export traces) the layer runs Keras' generic transposed conv."""
    from keras_seg.layers.upsample import standard_form

    x = np.random.default_rng(3).normal(size=(2, 5, 7, 6)).astype("float32")
    _, layer = _pair(4, 2, 2, x.shape)
    fast = keras.ops.convert_to_numpy(layer(x))
    with standard_form():
        assert not layer._as_matmul()
        standard = keras.ops.convert_to_numpy(layer(x))
    assert layer._as_matmul()
    np.testing.assert_allclose(standard, fast, atol=1e-5)


def test_upsample_is_a_repeat_for_nearest_and_takes_any_size():
    from keras_seg.layers import Upsample

    x = np.random.default_rng(4).normal(size=(2, 3, 5, 4)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(Upsample(2)(x)), x.repeat(2, axis=1).repeat(2, axis=2))
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, Upsample(3, "bilinear")(inputs))
    assert model(x).shape == (2, 9, 15, 4)
    assert Upsample.from_config(Upsample(3, "bilinear").get_config()).get_config()["scale"] == 3
    with pytest.raises(ValueError, match="scale=0"):
        Upsample(0)


def _against_tensorflows_gradient(op, interpolation, coordinates, source, target, seed):
    """Random ``x`` and loss weights, TensorFlow's ``op(x)`` and its registered gradient of ``sum(op(x) * weights)``,
    and ``ours(x, weights)``: keras_seg's training-mode resize and its gradient, to trace as a tf.function."""
    import tensorflow as tf

    from keras_seg.layers.resize import resize

    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(2, *source, 3)), tf.float32)
    weights = tf.constant(rng.normal(size=(2, *target, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        plain = op(x)
        loss = tf.reduce_sum(plain * weights)
    expected = tape.gradient(loss, x).numpy()

    def ours(x, weights):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = resize(x, target, interpolation, coordinates, training=True)
            loss = tf.reduce_sum(y * weights)
        return y, tape.gradient(loss, x)

    return x, weights, plain, expected, ours


@pytest.mark.parametrize("coordinates", ["half_pixel", "asymmetric"])
@pytest.mark.parametrize("source, target", [((3, 5), (6, 10)), ((3, 5), (9, 15)), ((2, 3), (14, 21)), ((5, 7), (11, 13)),
                                            ((6, 9), (4, 5)), ((4, 4), (4, 4)), ((2, 3), (50, 75)), ((2, 2), (22, 22))])  # fmt: skip
def test_nearest_resize_gradient_is_tensorflows_and_compiles_under_xla(coordinates, source, target):
    """Training on TensorFlow + XLA: the nearest resize's own gradient op has no XLA kernel; keras_seg's equals it."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's op and its gradient; JAX and PyTorch differentiate gathers")
    import tensorflow as tf

    half_pixel = coordinates == "half_pixel"
    x, weights, plain, expected, ours = _against_tensorflows_gradient(  # ResizeNearestNeighborGrad
        lambda x: tf.raw_ops.ResizeNearestNeighbor(images=x, size=target, align_corners=False, half_pixel_centers=half_pixel),
        "nearest", coordinates, source, target, seed=5)  # fmt: skip
    # static: shapes known, an integer upscale sums blocks
    static = tf.function(ours, jit_compile=True)
    dynamic = tf.function(ours, jit_compile=True, input_signature=[tf.TensorSpec((None, None, None, 3))] * 2)
    for fn in (static, dynamic):
        y, grad = fn(x, weights)
        if source != target:
            np.testing.assert_array_equal(y.numpy(), plain.numpy())
        # Each source pixel sums up to `terms` products in its own order: float32 rounding grows with the count
        # (about 2e-5 for the 625 of a 25x upscale); a wrong source index is off by a whole product (~1).
        terms = -(-target[0] // source[0]) * -(-target[1] // source[1])
        np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-6, atol=1e-6 * max(terms, 1))
    assert expected.any()


@pytest.mark.parametrize("source, target", [((8, 8), (32, 32)), ((32, 32), (128, 128)), ((1, 1), (5, 7)),
                                            ((7, 5), (3, 9)), ((6, 6), (1, 1)), ((13, 9), (50, 31))])  # fmt: skip
def test_align_corners_resize_gradient_is_tensorflows_and_compiles_under_xla(source, target):
    """XLA compiles TensorFlow's align-corners resize and gradient to slow (and at 13x9 -> 50x31 wrong) code;
    keras_seg's matrix form, under XLA too, equals TensorFlow's op and its registered gradient."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's op and its gradient; JAX and PyTorch differentiate gathers")
    import tensorflow as tf

    x, weights, plain, expected, ours = _against_tensorflows_gradient(
        lambda x: tf.raw_ops.ResizeBilinear(images=x, size=target, align_corners=True, half_pixel_centers=False),
        "bilinear", "align_corners", source, target, seed=6)  # fmt: skip
    static = tf.function(ours, jit_compile=True)
    dynamic = tf.function(ours, jit_compile=True, input_signature=[tf.TensorSpec((None, None, None, 3))] * 2)
    for fn in (static, dynamic, tf.function(ours)):
        y, grad = fn(x, weights)
        np.testing.assert_allclose(y.numpy(), plain.numpy(), rtol=1e-6, atol=1e-6)
        terms = (-(-target[0] // source[0]) + 1) * (-(-target[1] // source[1]) + 1)
        np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-5, atol=2e-6 * terms)
    assert np.abs(expected).max() > 0.1


def test_nearest_gradient_of_a_static_integer_upscale_is_a_block_sum():
    """A U-Net's 2x upsamples have static sizes: their gradient needs no segment sums (6.5 ms a step once)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow graph's ops")
    import tensorflow as tf

    from keras_seg.layers import ResizeLike, Upsample

    conv = keras.layers.Conv2D(3, 1)
    inputs, skip = keras.Input((4, 6, 3)), keras.Input((8, 12, 2))
    model = keras.Model([inputs, skip], ResizeLike("nearest")([Upsample(2)(conv(inputs)), skip]))

    def op_types(signature):
        @tf.function(input_signature=signature)
        def step(x, s):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(model([x, s], training=True))
            return tape.gradient(loss, conv.kernel)

        return {op.type for op in step.get_concrete_function().graph.get_operations()}

    static = op_types([tf.TensorSpec((2, 4, 6, 3)), tf.TensorSpec((2, 8, 12, 2))])
    assert "UnsortedSegmentSum" not in static and "ResizeNearestNeighborGrad" not in static
    dynamic = op_types([tf.TensorSpec((None, None, None, 3)), tf.TensorSpec((None, None, None, 2))])
    assert "UnsortedSegmentSum" in dynamic and "ResizeNearestNeighborGrad" not in dynamic


@keras.saving.register_keras_serializable(package="test_layers")
class UserNet(keras.Model):
    """A user's own subclassed model, made of keras_seg's block layers."""

    def __init__(self, num_classes=3, **kwargs):
        super().__init__(**kwargs)
        from keras_seg import layers as L

        self.num_classes = num_classes
        self.stem = L.ConvBNAct(8, 3)
        self.pool = keras.layers.MaxPooling2D(2)
        self.block = L.DoubleConv(8)
        self.aspp = L.ASPP(8, rates=(1, 2), dropout=0.0)
        self.ppm = L.PyramidPooling(4, sizes=(1, 2, 3), coordinates="align_corners")
        self.reduce = L.ConvBNAct(8, 1)  # the pooled context (8 + 3 x 4 channels) back to the FPN width
        self.fpn = L.FPNBlock(8, lateral_norm="batch", interpolation="bilinear")
        self.head = L.SegmentationHead(num_classes, kernel_size=3, upsampling=2)
        self.resize = L.ResizeLike("bilinear")

    def call(self, x):
        stem = self.stem(x / 255.0)
        deep = self.reduce(self.ppm(self.aspp(self.block(self.pool(stem)))))
        fused = self.fpn([deep, self.pool(stem)])
        return self.resize([self.head(fused), x])

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def test_block_layers_in_a_subclassed_model_fit_save_and_load(tmp_path):
    model = UserNet(3)
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 255, (4, 24, 20, 3)).astype("float32")
    y = rng.integers(0, 3, (4, 24, 20))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras_seg_losses().CrossEntropyLoss())
    losses = [float(model.train_on_batch(x, y)) for _ in range(4)]
    assert losses[-1] < losses[0], losses
    assert model(x).shape == (4, 24, 20, 3) and model(x[:, :17, :13]).shape == (1 * 4, 17, 13, 3)  # any size
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    path = str(tmp_path / "user.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)), expected, atol=1e-5)
    assert len(loaded.weights) == len(model.weights) > 40
    from keras_seg import layers as L

    for cls in (L.ConvBNAct, L.DoubleConv, L.ASPP, L.PyramidPooling, L.FPNBlock, L.SegmentationHead):
        layer = getattr(model, {"ConvBNAct": "stem", "DoubleConv": "block", "ASPP": "aspp", "PyramidPooling": "ppm",
                                "FPNBlock": "fpn", "SegmentationHead": "head"}[cls.__name__])  # fmt: skip
        clone = cls.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def keras_seg_losses():
    import keras_seg

    return keras_seg.losses
