"""Encoders: feature tables, output stride by dilation, weights from a file, other input channels."""

import keras
import numpy as np
import pytest

from keras_seg import encoders
from keras_seg.encoders import ApplicationEncoder, UNetEncoder
from keras_seg.encoders.applications import analyse, feature_layers
from keras_seg.layers import ImagePreprocessing
from keras_seg.models import DeepLabV3Plus

REQUESTED = (
    ["vgg16", "vgg19", "resnet50", "resnet101", "resnet152", "resnet50v2", "resnet101v2", "resnet152v2"]
    + ["mobilenetv2", "mobilenetv3small", "mobilenetv3large"]
    + [f"efficientnetb{i}" for i in range(8)]
    + [f"efficientnetv2b{i}" for i in range(4)]
    + ["efficientnetv2s", "convnexttiny", "convnextsmall", "convnextbase", "densenet121", "xception"]
)
# Cheap families that cover every special case: P0 (VGG), overrides (ResNetV2), hard-swish and
# squeeze-excitation (MobileNetV3), nested blocks and no stride 2 (ConvNeXt), valid convs (Xception).
REPRESENTATIVE = ["vgg16", "resnet50v2", "mobilenetv2", "mobilenetv3small", "efficientnetb0", "densenet121", "xception"]
if keras.backend.backend() != "tensorflow":  # JAX's shape inference is slow on deep graphs; TF checks them all
    REPRESENTATIVE = ["vgg16", "resnet50v2", "xception"]


def images(batch=1, size=64, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, channels)).astype("float32")


def test_list_encoders_has_every_requested_family():
    assert set(REQUESTED) <= set(encoders.list_encoders())


def _check_pyramid(encoder, size=64):
    out = encoder(keras.KerasTensor((1, size, size, encoder.input_shape[-1])))  # shapes only: no compute
    assert list(out) == list(encoder.pyramid_channels)
    for key, feature in out.items():
        stride = encoders.level_stride(key)
        # Valid-padded families (Xception) lose a pixel or two per level, never a whole level.
        assert abs(feature.shape[1] - size / stride) <= 3, (key, feature.shape)
        assert feature.shape[-1] == encoder.pyramid_channels[key]


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_feature_pyramid_strides(name):
    encoder = ApplicationEncoder(name)
    _check_pyramid(encoder)
    assert max(encoder.strides) == 32


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="graph analysis is backend-independent: one backend builds all 30")
@pytest.mark.parametrize("name", sorted(set(REQUESTED) - set(REPRESENTATIVE)))
def test_feature_pyramid_strides_all_families(name):
    _check_pyramid(ApplicationEncoder(name))


def test_feature_tables_pick_stage_outputs():
    resnet = feature_layers(keras.applications.ResNet50(include_top=False, weights=None))
    assert resnet == {2: "conv1_relu", 4: "conv2_block3_out", 8: "conv3_block4_out", 16: "conv4_block6_out", 32: "conv5_block3_out"}
    mobilenet = feature_layers(keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(None, None, 3)))
    assert mobilenet == {
        2: "block_1_expand_relu",
        4: "block_3_expand_relu",
        8: "block_6_expand_relu",
        16: "block_13_expand_relu",
        32: "out_relu",
    }
    assert ApplicationEncoder("resnet50v2").feature_table[8] == "conv3_block4_preact_relu"
    assert ApplicationEncoder("vgg16").feature_table[1] == "block1_conv2"


@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride_dilates_without_changing_weights(output_stride):
    base = ApplicationEncoder("vgg16")
    dilated = ApplicationEncoder("vgg16", output_stride=output_stride)
    assert [w.shape for w in base.weights] == [w.shape for w in dilated.weights]
    out = dilated(images(size=64))
    deepest = encoders.level_key(output_stride)
    assert list(out)[-1] == deepest
    assert out[deepest].shape[1:3] == (64 // output_stride, 64 // output_stride)
    assert out[deepest].shape[-1] == 512
    # Same weights, finer levels untouched: the stride-4 feature is identical.
    dilated.set_weights(base.get_weights())
    x = images(size=64)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(dilated(x)["P2"]), keras.ops.convert_to_numpy(base(x)["P2"]), atol=1e-4
    )


def test_dilation_rates_in_the_dilated_stage():
    dilated = ApplicationEncoder("resnet50", output_stride=8)
    app = next(l for l in dilated.layers if isinstance(l, keras.Model))
    rates = {l.name: l.dilation_rate[0] for l in app.layers if isinstance(l, keras.layers.Conv2D)}
    strides = {l.name: l.strides[0] for l in app.layers if isinstance(l, keras.layers.Conv2D)}
    assert rates["conv3_block4_2_conv"] == 1 and rates["conv4_block2_2_conv"] == 2 and rates["conv5_block3_2_conv"] == 4
    assert strides["conv4_block1_1_conv"] == 1 and strides["conv5_block1_1_conv"] == 1
    assert strides["conv3_block1_1_conv"] == 2


def test_convnext_refuses_dilation():
    with pytest.raises(ValueError, match="output_stride=16"):
        ApplicationEncoder("convnexttiny", output_stride=16)


def _reference_features(app, layer_name, x, mode):
    tap = keras.Model(app.input, app.get_layer(layer_name).output)
    return keras.ops.convert_to_numpy(tap(ImagePreprocessing(mode)(x)))


def test_weights_from_a_file_load_into_encoder_and_model(tmp_path):
    app = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path / "vgg16_notop.weights.h5")
    app.save_weights(path)
    x = images(size=64)
    expected = _reference_features(app, "block5_pool", x, "caffe")

    encoder = ApplicationEncoder("vgg16", weights=path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoder(x)["P5"]), expected, rtol=1e-4, atol=1e-3)

    model = DeepLabV3Plus(2, encoder="vgg16", encoder_weights=path, output_stride=32, aspp_channels=8)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.encoder(x)["P5"]), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("channels", [1, 4])
def test_other_input_channels_adapt_the_first_kernel(tmp_path, channels):
    app = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path / "v.weights.h5")
    app.save_weights(path)
    rgb_kernel = app.get_layer("block1_conv1").get_weights()[0]
    encoder = ApplicationEncoder("vgg16", weights=path, in_channels=channels)
    inner = next(l for l in encoder.layers if isinstance(l, keras.Model))
    kernel = inner.get_layer("block1_conv1").get_weights()[0]
    assert kernel.shape == (3, 3, channels, 64)
    if channels == 1:
        np.testing.assert_allclose(kernel[:, :, 0], rgb_kernel.sum(axis=2), rtol=1e-6)
    else:
        np.testing.assert_allclose(kernel[:, :, 3], rgb_kernel[:, :, 0] * 3 / 4, rtol=1e-6)
        np.testing.assert_allclose(kernel[:, :, 1], rgb_kernel[:, :, 1] * 3 / 4, rtol=1e-6)
    # Later layers are copied unchanged.
    np.testing.assert_array_equal(inner.get_layer("block5_conv3").get_weights()[0], app.get_layer("block5_conv3").get_weights()[0])
    assert encoder(images(channels=channels))["P5"].shape == (1, 2, 2, 512)


def test_imagenet_offline_fails_fast_with_a_fix(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ConnectionError) as info:
        ApplicationEncoder("mobilenetv2", weights="imagenet")
    message = str(info.value)
    assert "~/.keras/models/" in message and "encoder_weights='/path/to/file.h5'" in message


def test_missing_weights_file_is_named():
    with pytest.raises(FileNotFoundError, match="no/such.h5"):
        ApplicationEncoder("mobilenetv2", weights="no/such.h5")


def test_unet_encoder_pyramid():
    encoder = UNetEncoder(widths=(4, 8, 16), in_channels=1)
    assert encoder.pyramid_channels == {"P0": 4, "P1": 8, "P2": 16, "P3": 32}
    out = encoder(images(size=16, channels=1))
    assert out["P3"].shape == (1, 2, 2, 32)


def test_analysis_tracks_strides_through_the_graph():
    app = keras.applications.ResNet50(include_top=False, weights=None)
    s_in, s_out, _ = analyse(app)
    assert s_out["conv1_conv"] == 2 and s_out["pool1_pool"] == 4 and s_in["conv5_block1_1_conv"] == 16
    assert s_out["conv5_block3_out"] == 32


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="graph checks run on one backend")
def test_convnext_with_other_channels_normalises_in_keras_seg():
    # keras' ConvNeXt drops its RGB normalisation for C != 3; ImageNet statistics then come from ours.
    encoder = ApplicationEncoder("convnexttiny", in_channels=1)
    assert encoder.get_layer("preprocessing").mode == "torch"
    _check_pyramid(encoder)
