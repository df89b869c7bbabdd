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
