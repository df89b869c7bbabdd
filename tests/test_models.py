"""The same battery for every architecture, on the active backend, with tiny encoders and inputs."""

import keras
import numpy as np
import pytest

import keras_seg
from keras_seg.models import FCN, FPN, LRASPP, PAN, DeepLabV3, DeepLabV3Plus, LinkNet, MANet, PSPNet, UNet, UNetPlusPlus, UPerNet
from torch_reference import keras_logits  # the model's logits as numpy: compiled on JAX, eager elsewhere


def tiny_encoder(channels=3):
    """A bring-your-own encoder: five stride-2 convs, features keyed P1..P5."""
    inputs = keras.Input((None, None, channels))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    pyramid = {}
    for level, width in enumerate((4, 6, 8, 8, 8), start=1):
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)
        pyramid[f"P{level}"] = x
    return keras.Model(inputs, pyramid, name="tiny_encoder")


BUILDERS = {
    "fcn8s": lambda **kw: FCN(3, encoder=tiny_encoder(), variant="8s", head_channels=8, **kw),
    "fcn32s": lambda **kw: FCN(3, encoder=tiny_encoder(), variant="32s", head_channels=8, **kw),
    "unet_classic": lambda **kw: UNet(3, widths=(4, 8, 8)),
    "unet_encoder": lambda **kw: UNet(3, encoder=tiny_encoder(), decoder_channels=(8, 8, 8, 4, 4)),
    "deeplabv3": lambda **kw: DeepLabV3(3, encoder=tiny_encoder(), aspp_channels=8, **kw),
    "deeplabv3plus": lambda **kw: DeepLabV3Plus(
        3, encoder=tiny_encoder(), aspp_channels=8, low_level_channels=4, decoder_channels=8, **kw
    ),
    "lraspp": lambda **kw: LRASPP(3, encoder=tiny_encoder(), inter_channels=8),
    "unetplusplus": lambda **kw: UNetPlusPlus(3, encoder=tiny_encoder(), decoder_channels=(8, 8, 8, 4, 4)),
    "fpn": lambda **kw: FPN(3, encoder=tiny_encoder(), decoder_pyramid_channels=8, decoder_segmentation_channels=32, **kw),
    "pspnet": lambda **kw: PSPNet(3, encoder=tiny_encoder(), psp_out_channels=8, **kw),
    "linknet": lambda **kw: LinkNet(3, encoder=tiny_encoder(), prefinal_channels=4),
    "manet": lambda **kw: MANet(3, encoder=tiny_encoder(), decoder_channels=(8, 8, 8, 4, 4), decoder_pab_channels=4),
    "pan": lambda **kw: PAN(3, encoder=tiny_encoder(), decoder_channels=8),
    "upernet": lambda **kw: UPerNet(3, encoder=tiny_encoder(), decoder_channels=8),
}
# PAN's feature pyramid attention max-pools its deepest feature three times: it needs that feature at >= 8 px
# (an input of >= 256 px on a stride-32 encoder, >= 128 at output stride 16), as in segmentation_models.pytorch.
SIZES = {"pan": ((1, 289, 257), (2, 259, 263))}
NO_DROPOUT = {"fcn8s": {"dropout": 0}, "fcn32s": {"dropout": 0}, "deeplabv3": {"aspp_dropout": 0}, "deeplabv3plus": {"aspp_dropout": 0},
              "fpn": {"decoder_dropout": 0}, "pspnet": {"psp_dropout": 0}}


def images(batch, height=97, width=61, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, height, width, channels)).astype("float32")


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_logits_come_back_at_input_size(name):
    model = BUILDERS[name]()
    sizes = SIZES.get(name, ((1, 97, 61), (3, 33, 47)))
    if keras.backend.backend() != "tensorflow":
        sizes = sizes[1:]  # one batch of odd sizes per architecture on the JAX and PyTorch passes
    for batch, h, w in sizes:
        out = keras_logits(model, images(batch, h, w))  # JAX: one compiled graph, 5x quicker than op by op here
        assert out.shape == (batch, h, w, 3)
        assert out.dtype == np.float32 and np.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_config_and_keras_file_round_trip(name, tmp_path):
    model = BUILDERS[name]()
    x = images(2, 256, 256) if name in SIZES else images(2, 40, 24)
    expected = model.predict(x, verbose=0)

    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(x, verbose=0), expected, atol=1e-5)

    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    own = lambda config: {k: v for k, v in config.items() if k != "encoder"}  # noqa: E731
    assert own(loaded.get_config()) == own(model.get_config())
    assert type(loaded.encoder) is type(model.encoder)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_training_steps_lower_the_loss(name):
    # Without dropout the training-mode loss of one batch is a deterministic function of the weights.
    model = BUILDERS[name](**NO_DROPOUT.get(name, {}))
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=keras_seg.losses.CrossEntropyLoss())
    size = 256 if name in SIZES else 32
    x = images(4, size, size)
    y = np.ones((4, size, size), "int32")
    y[:, size // 2 :] = 2  # learnable from class priors alone, so every architecture must make progress
    losses = [float(model.train_on_batch(x, y)) for _ in range(5)]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_training_steps_under_xla_on_tensorflow_match_the_plain_ones(name):
    """jit_compile=True is Keras' "auto" on a TensorFlow GPU; a nearest resize's gradient once had no XLA kernel."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("JAX always trains under XLA (the test above); torch.compile is not run on this CPU suite")
    model = BUILDERS[name](**NO_DROPOUT.get(name, {}))
    compiled = model.__class__.from_config(model.get_config())
    compiled.set_weights(model.get_weights())
    size = 256 if name in SIZES else 32
    x = images(2, size, size)
    y = np.ones((2, size, size), "int32")
    y[:, size // 2 :] = 2
    before = model.get_weights()
    losses, updates = {}, {}
    for jit, net in ((False, model), (True, compiled)):  # one SGD step at lr 1 from the same weights: w - gradient
        net.compile(optimizer=keras.optimizers.SGD(1.0), loss=keras_seg.losses.CrossEntropyLoss(), jit_compile=jit)
        losses[jit] = float(net.train_on_batch(x, y))
        updates[jit] = [w - w0 for w, w0 in zip(net.get_weights(), before)]
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
    # One step, not several: a tiny MAnet's loss moves 1 % when its weights move 1e-6 (chaotic), so losses of
    # later steps compare the two compilers' rounding, amplified, rather than the gradients.
    scale = max(np.abs(u).max() for u in updates[False])  # the largest gradient entry; a wrong one is that size
    for plain, xla in zip(updates[False], updates[True]):
        np.testing.assert_allclose(xla, plain, rtol=1e-2, atol=1e-4 * scale)
    assert scale > 0


@pytest.mark.parametrize("name", ["unet_classic", "deeplabv3plus"])
def test_mixed_precision_gives_float32_logits(name):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = BUILDERS[name]()
    assert model.get_layer("logits").compute_dtype == "float32"
    assert any(layer.compute_dtype == "bfloat16" for layer in model.layers)  # the body runs in bfloat16
    out = model(images(1, 33, 35))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert out.shape == (1, 33, 35, 3)


def test_activation_softmax_and_predict_mask():
    model = UNet(3, widths=(4, 8), activation="softmax")
    x = images(2, 20, 20)
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    masks = model.predict_mask(x)
    assert masks.shape == (2, 20, 20) and masks.dtype == np.int32
    np.testing.assert_array_equal(masks, probs.argmax(-1))
    np.testing.assert_array_equal(model.predict_mask(x[0]), masks[0])


def test_binary_predict_mask_thresholds_the_sigmoid():
    model = UNet(1, widths=(4, 8))
    x = images(2, 16, 16)
    logits = model.predict(x, verbose=0)[..., 0]
    np.testing.assert_array_equal(model.predict_mask(x), (logits > 0).astype("int32"))


@pytest.mark.once
def test_classic_unet_matches_the_reference_parameter_count():
    # The seed's PyTorch UNet(in_channels=3, out_channels=1, features=[64, 128, 256, 512]).
    model = UNet(1)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 31_043_521


def test_classic_unet_size_mismatch_is_handled():
    # 2x2 max-pooling floors odd sizes; the transposed conv comes back a pixel short.
    model = UNet(2, widths=(4, 8, 8))
    assert model(images(1, 13, 11)).shape == (1, 13, 11, 2)


@pytest.mark.once
def test_fcn_variants_differ_by_their_skip_scores():
    names = {v: {l.name for l in FCN(3, encoder=tiny_encoder(), variant=v, head_channels=8).layers} for v in ("32s", "16s", "8s")}
    assert "score_P4" not in names["32s"] and "score_P3" not in names["32s"]
    assert "score_P4" in names["16s"] and "score_P3" not in names["16s"]
    assert {"score_P4", "score_P3"} <= names["8s"]


def test_deeplab_rates_follow_output_stride():
    assert DeepLabV3(3, encoder=tiny_encoder(), aspp_channels=4).atrous_rates == [3, 6, 9]  # stride-32 encoder
    from keras_seg.models.deeplab import default_rates

    assert default_rates(16) == (6, 12, 18) and default_rates(8) == (12, 24, 36)
    model = DeepLabV3(3, encoder=tiny_encoder(), aspp_channels=4, atrous_rates=(2, 4, 6))
    rates = sorted(l.dilation_rate[0] for l in model.layers if l.name.startswith("aspp_b") and l.name.endswith("_conv"))
    assert rates == [1, 2, 4, 6]


def test_encoder_freeze_keeps_its_weights():
    model = UNet(3, encoder=tiny_encoder(), decoder_channels=(8, 8, 8, 4, 4))
    total, in_encoder = len(model.trainable_weights), len(model.encoder.trainable_weights)
    assert in_encoder == 10  # five convs, kernel and bias each
    model.freeze_encoder()
    assert len(model.trainable_weights) == total - in_encoder and not model.encoder.trainable_weights
    before = [w.copy() for w in model.encoder.get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras_seg.losses.DiceLoss())
    model.train_on_batch(images(2, 32, 32), np.zeros((2, 32, 32), "int32"))
    for a, b in zip(before, model.encoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.unfreeze_encoder()
    assert len(model.trainable_weights) == total


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: UNet(0), "num_classes=0"),
        (lambda: FCN(3, encoder=tiny_encoder(), variant="4s"), "variant='4s'"),
        (lambda: UNet(3, encoder="resnet5"), "Unknown encoder 'resnet5'"),
        (lambda: UNet(3, encoder=tiny_encoder(), decoder_channels=(8, 8)), "needs 5"),
        (lambda: DeepLabV3(3, encoder=tiny_encoder(), output_stride=16), "output_stride=16"),
        (lambda: UNet(3, widths=(4, 8), activation="relu"), "activation='relu'"),
        (lambda: UNet(3, encoder=tiny_encoder(), input_shape=(None, None, 1)), "3 input channels"),
        (lambda: UNet(3, widths=(4, 8), input_shape=(32, 32, 0)), "input_shape=(32, 32, 0) must be"),
        (lambda: UNet(3, input_shape=(32, 0, 3)), "input_shape=(32, 0, 3) must be"),
        (lambda: DeepLabV3(3, encoder="mobilenetv2", input_shape=(32, 32, None)), "channels a positive int"),
        (lambda: FCN(3, input_shape=(32, 32)), "input_shape=(32, 32) must be (height, width, channels)"),
    ],
)
@pytest.mark.once
def test_errors_name_the_bad_value(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert message in str(info.value)


def test_keras_hub_backbone_as_encoder_trains():
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 8, 8, 8],
        stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
    )
    model = DeepLabV3Plus(3, encoder=backbone, aspp_channels=8, low_level_channels=4, decoder_channels=8)
    assert model.output_stride is None and model.atrous_rates == [3, 6, 9]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras_seg.losses.CrossEntropyLoss())
    x, y = images(2, 32, 32), np.random.default_rng(1).integers(0, 3, (2, 32, 32))
    losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
    assert losses[-1] < losses[0], losses


def test_fcn_on_a_stride_16_encoder_fuses_only_finer_levels():
    inputs = keras.Input((None, None, 3))
    x, pyramid = inputs, {}
    for level in range(1, 5):
        x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(x)
        pyramid[f"P{level}"] = x
    model = FCN(3, encoder=keras.Model(inputs, pyramid), variant="8s", head_channels=4)
    names = {layer.name for layer in model.layers}
    assert {"score_P4", "score_P3", "fuse_P3"} <= names and "fuse_P4" not in names
    assert model(images(1, 35, 29)).shape == (1, 35, 29, 3)


@pytest.mark.once
def test_lraspp_on_mobilenetv3_has_torchvisions_head():
    """The head of torchvision's lraspp_mobilenet_v3_large, counted by hand, on keras.applications' MobileNetV3."""
    for name, low, high in (("mobilenetv3large", 240, 960), ("mobilenetv3small", 96, 576)):
        model = LRASPP(21, encoder=name)
        assert model.output_stride == 16 and list(model.pyramid_channels.values())[-2:] == [low, high]
        head = sum(int(np.prod(w.shape)) for w in model.trainable_weights) - sum(
            int(np.prod(w.shape)) for w in model.encoder.trainable_weights
        )
        cbr, scale, classifiers = high * 128 + 2 * 128, high * 128, (low + 1) * 21 + (128 + 1) * 21
        assert head == cbr + scale + classifiers, name
        assert model(images(1, 97, 61)).shape == (1, 97, 61, 21)
    with pytest.raises(ValueError, match=r"LRASPP needs a stride-32 feature \('P5'\) and a deeper one"):
        LRASPP(3, encoder=tiny_encoder(), low_level_stride=32)
