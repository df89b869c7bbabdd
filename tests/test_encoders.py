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


@pytest.mark.once
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


@pytest.mark.once
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
    assert [k for k in out if encoders.is_level(k)][-1] == deepest  # the levels; "C<k>" extras keep replaced ones
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


@pytest.mark.once
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


@pytest.mark.once
def test_imagenet_offline_fails_fast_with_a_fix(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ConnectionError) as info:
        ApplicationEncoder("mobilenetv2", weights="imagenet")
    message = str(info.value)
    assert "~/.keras/models/" in message and "encoder_weights='/path/to/file.h5'" in message


@pytest.mark.once
def test_missing_weights_file_is_named():
    with pytest.raises(FileNotFoundError, match="no/such.h5"):
        ApplicationEncoder("mobilenetv2", weights="no/such.h5")


def test_unet_encoder_pyramid():
    encoder = UNetEncoder(widths=(4, 8, 16), in_channels=1)
    assert encoder.pyramid_channels == {"P0": 4, "P1": 8, "P2": 16, "P3": 32}
    out = encoder(images(size=16, channels=1))
    assert out["P3"].shape == (1, 2, 2, 32)


@pytest.mark.once
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


# ---------------------------------------------------------------------------------------------- torchvision-layout ResNets

TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def _torchvision_features(net, x):
    """torchvision ResNet's stride 2..32 outputs (the encoder levels) for an NHWC numpy batch in [0, 255]."""
    import torch

    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    t = torch.from_numpy(((x / 255.0 - mean) / std).astype("float32")).permute(0, 3, 1, 2)
    with torch.no_grad():
        feats = [net.relu(net.bn1(net.conv1(t)))]
        y = net.maxpool(feats[0])
        for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
            y = stage(y)
            feats.append(y)
    return {f"P{i + 1}": f.permute(0, 2, 3, 1).numpy() for i, f in enumerate(feats)}


@pytest.mark.parametrize("name", TORCHVISION_RESNETS)
@pytest.mark.once
def test_torchvision_resnets_have_torchvisions_parameters_and_shapes(name):
    torchvision = pytest.importorskip("torchvision", reason="torchvision is the test-only reference (dev extra)")
    reference = getattr(torchvision.models, name)(weights=None)
    expected = sum(p.numel() for n, p in reference.named_parameters() if not n.startswith("fc."))
    encoder = encoders.ResNetEncoder(name)
    assert sum(int(np.prod(w.shape)) for w in encoder.trainable_weights) == expected
    x = images(1, 97)[:, :, :61]
    got = {k: tuple(v.shape) for k, v in encoder(keras.KerasTensor(x.shape)).items()}
    want = {k: v.shape for k, v in _torchvision_features(reference.eval(), x).items()}
    assert got == want  # strides 2, 4, 8, 16, 32 at an odd size: PyTorch's padding arithmetic


def _randomised_torchvision(name, **kwargs):
    import torchvision

    from torch_reference import randomised

    return randomised(getattr(torchvision.models, name)(weights=None, **kwargs))


@pytest.mark.parametrize("name, output_stride", [("resnet18", 32), ("resnet50", 8)])
def test_torchvision_weights_load_and_give_torchvisions_features(name, output_stride, tmp_path):
    """A torchvision weights file (.pth) as encoder_weights: the same features, also dilated as torchvision dilates."""
    pytest.importorskip("torchvision", reason="torchvision is the test-only reference (dev extra)")
    import torch

    dilate = {32: [False, False, False], 8: [False, True, True]}[output_stride]
    reference = _randomised_torchvision(name, **({"replace_stride_with_dilation": dilate} if any(dilate) else {}))
    torch.save(reference.state_dict(), tmp_path / f"{name}.pth")  # with fc.*, as torchvision publishes it
    encoder = encoders.build_encoder(name, str(tmp_path / f"{name}.pth"), output_stride=output_stride)
    x = images(2, 64)[:, :, :48]
    want = _torchvision_features(reference, x)
    got = {k: keras.ops.convert_to_numpy(v) for k, v in encoder(x).items()}
    # ours -> torchvision's stage output: at output stride 8 the deepest (layer4) is P3, and layer2 / layer3,
    # whose level it took, stay as C3 / C4
    pairs = {32: {f"P{i}": f"P{i}" for i in range(1, 6)}, 8: {"P1": "P1", "P2": "P2", "C3": "P3", "C4": "P4", "P3": "P5"}}
    assert sorted(got) == sorted(pairs[output_stride])
    for key, theirs in pairs[output_stride].items():
        ref = want[theirs]
        np.testing.assert_allclose(got[key], ref, atol=2e-4 * np.abs(ref).max(), err_msg=key)
    gray = encoders.build_encoder(name, str(tmp_path / f"{name}.pth"), in_channels=1)
    kernel = keras.ops.convert_to_numpy(gray.get_layer("conv1").kernel)
    np.testing.assert_allclose(kernel[:, :, 0, :], reference.conv1.weight.detach().numpy().sum(1).transpose(1, 2, 0),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


@pytest.mark.once
def test_a_torchvision_mobilenetv3_file_loads_into_a_one_channel_encoder(tmp_path):
    """in_channels != 3 with a torchvision file: every weight from the file, the first kernel summed over RGB."""
    pytest.importorskip("torchvision", reason="torchvision is the test-only reference (dev extra)")
    import torch

    reference = _randomised_torchvision("mobilenet_v3_small")
    torch.save(reference.state_dict(), tmp_path / "mnv3.pth")
    gray = encoders.build_encoder("mobilenet_v3_small", str(tmp_path / "mnv3.pth"), in_channels=1)
    kernel = keras.ops.convert_to_numpy(gray.get_layer("features_0_0").kernel)
    np.testing.assert_allclose(kernel[:, :, 0, :], reference.features[0][0].weight.detach().numpy().sum(1).transpose(1, 2, 0),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    head = keras.ops.convert_to_numpy(gray.get_layer("features_1_block_0_1").moving_variance)
    np.testing.assert_allclose(head, reference.features[1].block[0][1].running_var.numpy(), rtol=1e-6)


@pytest.mark.once
def test_torchvision_resnet_errors_and_imagenet_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_SEG_CACHE", str(tmp_path / "cache"))
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError, match=r"Could not download the ImageNet weights of resnet34.*encoder_weights="):
        encoders.build_encoder("resnet34", "imagenet")
    assert not any((tmp_path / "cache").rglob("*.safetensors"))  # nothing half-written left behind
    with pytest.raises(FileNotFoundError, match="encoder_weights='nope.pth': no such file"):
        encoders.build_encoder("resnet18", "nope.pth")
    with pytest.raises(ValueError, match="depth=6 must be an int from 1 to 5"):
        encoders.ResNetEncoder("resnet18", depth=6)
    with pytest.raises(ValueError, match="output_stride=4 is not supported"):
        encoders.ResNetEncoder("resnet18", output_stride=4)
    (tmp_path / "other.pth").write_bytes(b"")
    torch = pytest.importorskip("torch")
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other\.pth: the checkpoint does not fit the Keras model: \d+ Keras weights have no tensor"):
        encoders.build_encoder("resnet18", str(tmp_path / "other.pth"))


@pytest.mark.once
def test_keras_applications_resnets_keep_working_under_their_new_and_old_names():
    old = ApplicationEncoder("resnet50")  # a config written before 0.2 names the keras.applications network so
    assert old.backbone == "keras_resnet50"
    assert encoders.pyramid_channels(encoders.build_encoder("keras_resnet50")) == encoders.pyramid_channels(old)
    assert isinstance(encoders.build_encoder("resnet50"), encoders.ResNetEncoder)  # the name is torchvision's now
