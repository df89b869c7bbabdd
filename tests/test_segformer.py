"""SegFormer and its Mix Transformer encoder: Hugging Face parity and weight import, parameter counts, the model battery.

The parity tests build randomly initialised ``transformers`` models (no download), save them
and read them back with keras_seg on the active backend.
"""

import json
import os

import keras
import numpy as np
import pytest

import keras_seg
from keras_seg.encoders import MiTEncoder, build_encoder, list_encoders
from keras_seg.encoders.mit import DropPath
from keras_seg.models import FCN, DeepLabV3Plus, SegFormer, UNet
from keras_seg.convert import huggingface
from test_models import tiny_encoder  # the bring-your-own encoder of the model battery
from torch_reference import keras_logits as run  # inference-mode outputs as numpy: compiled on JAX, eager elsewhere

BACKEND = keras.backend.backend()
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
# Parameters of SegformerForSemanticSegmentation with 150 classes (ADE20K), counted with transformers 5.24.
HF_PARAMS = {"b0": 3_752_694, "b1": 13_715_798, "b2": 27_461_974, "b3": 47_337_814, "b4": 64_108_374, "b5": 84_708_694}
# The SegFormer README (NVlabs) / paper table, millions, ADE20K.
PAPER_PARAMS = {"b0": 3.8, "b1": 13.7, "b2": 27.5, "b3": 47.3, "b4": 64.1, "b5": 84.7}
HF_SIZES = {"b0": [32, 64, 160, 256]}
DEPTHS = {"b0": [2, 2, 2, 2], "b1": [2, 2, 2, 2], "b2": [3, 4, 6, 3], "b3": [3, 4, 18, 3], "b4": [3, 8, 27, 3], "b5": [3, 6, 40, 3]}


def images(batch=2, height=40, width=56, seed=0):
    """By default 2 x 40 x 56: not a multiple of 32 (stages of 10x14, 5x7, 3x4, 2x2). Few distinct shapes keep
    JAX fast: its eager ops compile once per shape, for every model after."""
    return np.random.default_rng(seed).uniform(0, 255, (batch, height, width, 3)).astype("float32")


# A small MiT (widths 8-64, one block a stage): b0's graph, every kind of layer in it, at a fraction of its build,
# trace and conversion time; for the tests that are about SegFormer's wiring, not b0's sizes.
SMALL_MIT = dict(hidden_sizes=(8, 16, 40, 64), depths=(1, 1, 1, 1))


def small_segformer(num_classes=3, drop_path_rate=0.1, **kwargs):
    return SegFormer(num_classes, encoder=MiTEncoder(drop_path_rate=drop_path_rate, **SMALL_MIT), decoder_channels=16,
                     **kwargs)  # fmt: skip


# ---------------------------------------------------------------------------------------------- Hugging Face


@pytest.fixture(scope="module")
def hf():
    """A randomised SegformerForSemanticSegmentation (MiT-b0, 3 labels, decoder width 64), in eval mode.

    Every parameter is drawn anew (transformers initialises biases to 0 and LayerNorms to 1,
    which would hide a swapped bias), the BatchNorm statistics too; the patch-embedding and
    spatial-reduction convs are scaled down so their LayerNorms see inputs of variance ~1e-6,
    where the epsilon (1e-5) matters: 1e-6 instead moves the logits by ~1, the tanh GELU by ~5e-4.
    """
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.SegformerConfig(num_labels=3, decoder_hidden_size=64)
    model = transformers.SegformerForSemanticSegmentation(config).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.normal_(0, 1 / np.sqrt(p[0].numel()), generator=g)  # unit-scale activations
            elif "norm" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5, generator=g)
            else:
                p.normal_(0, 0.1, generator=g)
            if "patch_embeddings.proj" in name or "sequence_reduction.sequence_reduction" in name:
                p.mul_(1e-3)
        bn = model.decode_head.batch_norm
        bn.running_mean.normal_(0, 0.5, generator=g)
        bn.running_var.uniform_(0.5, 2.0, generator=g)
    return model


@pytest.fixture(scope="module")
def hf_dir(hf, tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "segformer"
    hf.save_pretrained(path)  # config.json + model.safetensors, the published checkpoints' names
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"]
    return path


def hf_logits(hf, x, size=None):
    """HF logits (B, H/4, W/4, K) for images in [0, 255] (its image processor's normalisation), or resized to ``size``."""
    import torch

    pixels = torch.from_numpy(((x / 255.0 - MEAN) / STD).astype("float32")).permute(0, 3, 1, 2)
    with torch.no_grad():
        logits = hf(pixel_values=pixels).logits
        if size is not None:
            logits = torch.nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits.permute(0, 2, 3, 1).numpy()


def stride4_logits(model, x):
    """keras_seg's class scores before the final resize: the output of the 1x1 classifier ``head_conv``."""
    return run(keras.Model(model.input, model.get_layer("head_conv").output), x)


def test_hugging_face_logits_are_reproduced(hf, hf_dir):
    model = SegFormer.from_huggingface(hf_dir)
    assert (model.variant, model.num_classes, model.decoder_channels) == ("b0", 3, 64)
    assert model.dropout == 0.1 and model.encoder.drop_path_rate == 0.1  # the config's
    x = images()
    want = hf_logits(hf, x)
    got = stride4_logits(model, x)
    assert got.shape == want.shape == (2, 10, 14, 3)
    scale = np.abs(want).max()
    assert 0.5 < scale < 10  # logits of unit scale, so 1e-4 is a relative figure too
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    # The full-resolution output against torch's bilinear (align_corners=False) resize of HF's logits.
    full, want_full = run(model, x), hf_logits(hf, x, size=(40, 56))
    np.testing.assert_allclose(full, want_full, atol=1e-4, rtol=0)
    print(f"HF parity on {BACKEND}: max|Δ| {np.abs(got - want).max():.1e} at stride 4, "
          f"{np.abs(full - want_full).max():.1e} at full size, logits scale {scale:.2f}")  # fmt: skip


def test_state_dict_files_load_with_the_config_read_from_shapes(hf, tmp_path):
    import torch

    # transformers 5's state_dict() names (stages.0.blocks.0.attention.q_proj), no config.json beside them.
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    torch.save({"state_dict": hf.state_dict()}, tmp_path / "checkpoint.pt")  # a training checkpoint's wrapping
    x = images(seed=1)
    want = hf_logits(hf, x)
    for path in (tmp_path, tmp_path / "checkpoint.pt"):
        model = SegFormer.from_huggingface(path)
        assert (model.variant, model.num_classes, model.decoder_channels) == ("b0", 3, 64)
        np.testing.assert_allclose(stride4_logits(model, x), want, atol=1e-4, rtol=0)


def test_another_number_of_classes_keeps_all_but_the_classifier(hf, hf_dir):
    model = SegFormer.from_huggingface(hf_dir, num_classes=5, dropout=0.0)
    assert model.num_classes == 5 and model.dropout == 0.0 and model.decoder_channels == 64
    fuse = hf.decode_head.linear_fuse.weight.detach().numpy()  # (out, in, 1, 1)
    np.testing.assert_array_equal(model.get_layer("decoder_fuse_conv").get_weights()[0], fuse.transpose(2, 3, 1, 0))
    assert model.get_layer("head_conv").get_weights()[0].shape == (1, 1, 64, 5)


@pytest.fixture(scope="module")
def backbone_dirs(hf, tmp_path_factory):
    """The same encoder as ``SegformerModel`` and as an ImageNet-style ``SegformerForImageClassification``."""
    import transformers

    root = tmp_path_factory.mktemp("backbones")
    backbone = transformers.SegformerModel(hf.config).eval()
    backbone.load_state_dict(hf.segformer.state_dict())
    backbone.save_pretrained(root / "model")  # names without the "segformer." prefix
    imagenet = transformers.SegformerForImageClassification(hf.config).eval()
    imagenet.segformer.load_state_dict(hf.segformer.state_dict())
    imagenet.save_pretrained(root / "imagenet")  # "segformer." prefix and a classifier.* head
    return backbone, root / "model", root / "imagenet"


def test_backbone_checkpoints_load_into_the_encoder(hf, backbone_dirs):
    import torch

    backbone, model_dir, imagenet_dir = backbone_dirs
    x = images(seed=2)
    pixels = torch.from_numpy(((x / 255.0 - MEAN) / STD).astype("float32")).permute(0, 3, 1, 2)
    with torch.no_grad():
        stages = backbone(pixel_values=pixels, output_hidden_states=True).hidden_states
    encoder = MiTEncoder.from_huggingface(imagenet_dir)  # "segformer." names, the ImageNet classifier left out
    assert encoder.variant == "b0" and encoder.drop_path_rate == 0.1
    features = run(encoder, x)
    assert list(features) == ["P2", "P3", "P4", "P5"] and len(stages) == 4
    for key, want in zip(features, stages):
        np.testing.assert_allclose(features[key], want.permute(0, 2, 3, 1).numpy(), atol=1e-4, rtol=0)

    # A SegFormer to fine-tune from ImageNet MiT weights: encoder loaded, decoder new.
    model = SegFormer.from_huggingface(imagenet_dir, num_classes=3)
    assert model.num_classes == 3 and model.decoder_channels == 256  # b0's default width: no decoder in the checkpoint
    np.testing.assert_array_equal(model.encoder.get_layer("stage3_norm").get_weights()[0], hf.segformer.state_dict()["stages.3.layer_norm.weight"].numpy())  # fmt: skip
    with pytest.raises(ValueError, match="backbone checkpoint .*pass num_classes="):
        SegFormer.from_huggingface(imagenet_dir)
    # encoder_weights= takes a backbone checkpoint (here SegformerModel's names, no prefix) for any architecture.
    unet = UNet(3, encoder="mit_b0", encoder_weights=str(model_dir), decoder_channels=(16, 16, 8, 8, 8))
    np.testing.assert_array_equal(unet.encoder.get_layer("stage0_patch_conv").get_weights()[1], hf.segformer.state_dict()["stages.0.patch_embeddings.proj.bias"].numpy())  # fmt: skip


@pytest.mark.once
def test_a_whole_segformer_checkpoint_is_not_an_encoder(hf_dir):
    with pytest.raises(ValueError, match="decode head; load it with keras_seg.models.SegFormer.from_huggingface"):
        MiTEncoder.from_huggingface(hf_dir)


@pytest.mark.once
def test_import_is_strict_about_every_tensor(hf, tmp_path):
    import torch

    state = dict(hf.state_dict())
    missing = {k: v for k, v in state.items() if k != "segformer.stages.1.blocks.0.mlp.fc1.bias"}
    torch.save(missing, tmp_path / "missing.bin")
    with pytest.raises(ValueError, match=r"1 Keras weights have no tensor \(encoder.block.1.0.mlp.dense1.bias \(for stage1_block0_mlp_fc1\)\); 0 checkpoint"):
        SegFormer.from_huggingface(tmp_path / "missing.bin")
    torch.save(dict(state, **{"decode_head.extra.weight": torch.zeros(3)}), tmp_path / "extra.bin")
    with pytest.raises(ValueError, match=r"0 Keras weights have no tensor \(\); 1 checkpoint tensors are unused \(decode_head.extra.weight\)"):
        SegFormer.from_huggingface(tmp_path / "extra.bin")


@pytest.mark.once
def test_unsupported_configurations_are_refused(hf_dir, tmp_path):
    config = json.loads((hf_dir / "config.json").read_text())
    for change, shown in (({"hidden_sizes": [16, 32, 64, 128]}, "hidden_sizes=[16, 32, 64, 128]"),
                          ({"num_attention_heads": [1, 1, 1, 1]}, "num_attention_heads=[1, 1, 1, 1]"),
                          ({"hidden_act": "relu"}, "hidden_act='relu'")):  # fmt: skip
        with pytest.raises(ValueError, match="supports the MiT b0..b5 configurations") as info:
            SegFormer.from_huggingface(hf_dir, config=dict(config, **change))
        assert shown in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SegFormer.from_huggingface(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="has none of model.safetensors"):
        SegFormer.from_huggingface(tmp_path)


@pytest.mark.once
def test_safetensors_are_read_without_the_safetensors_package(tmp_path):
    torch = pytest.importorskip("torch")
    save_file = pytest.importorskip("safetensors.torch").save_file  # only to write the reference file
    values = {
        "f32": torch.randn(2, 3),
        "f16": torch.randn(4).half(),
        "bf16": torch.randn(3, 2).bfloat16(),
        "i64": torch.tensor([7, -1]),
        "scalar": torch.tensor(2.5),
    }
    save_file(values, str(tmp_path / "t.safetensors"))
    read = huggingface.read_safetensors(tmp_path / "t.safetensors")
    assert sorted(read) == sorted(values)
    for name, tensor in values.items():
        want = tensor.float().numpy() if tensor.is_floating_point() else tensor.numpy()
        np.testing.assert_array_equal(read[name].astype(want.dtype), want)
    assert read["i64"].dtype == np.int64 and read["scalar"].shape == ()


# ---------------------------------------------------------------------------------------------- parameters


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.once
def test_b0_parameter_count_matches_transformers_and_the_paper():
    model = SegFormer(150)
    assert trainable(model) == HF_PARAMS["b0"]
    assert round(trainable(model) / 1e6, 1) == PAPER_PARAMS["b0"]
    assert trainable(model.encoder) == 3_319_392  # the MiT-b0 encoder alone, as transformers' SegformerModel
    transformers = pytest.importorskip("transformers")
    hf = transformers.SegformerForSemanticSegmentation(transformers.SegformerConfig(num_labels=150))
    assert sum(p.numel() for p in hf.parameters()) == HF_PARAMS["b0"]


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "tensorflow", reason="parameter counts do not depend on the backend: TensorFlow builds all six")
def test_every_variant_has_the_parameters_of_transformers_and_the_paper():
    transformers = pytest.importorskip("transformers")
    for variant in HF_PARAMS:
        config = transformers.SegformerConfig(hidden_sizes=HF_SIZES.get(variant, [64, 128, 320, 512]), depths=DEPTHS[variant],
                                              decoder_hidden_size=256 if variant in ("b0", "b1") else 768, num_labels=150)  # fmt: skip
        hf = transformers.SegformerForSemanticSegmentation(config)
        assert sum(p.numel() for p in hf.parameters()) == HF_PARAMS[variant], variant
        del hf
        model = SegFormer(150, encoder=f"mit_{variant}")  # the MiT named sets the decoder width: 256 or 768
        assert model.decoder_channels == (256 if variant in ("b0", "b1") else 768)
        assert trainable(model) == HF_PARAMS[variant], variant
        assert round(trainable(model) / 1e6, 1) == PAPER_PARAMS[variant], variant
        del model
        keras.utils.clear_session(free_memory=True)


# ---------------------------------------------------------------------------------------------- the battery


@pytest.fixture(scope="module")
def segformer():
    keras.utils.set_random_seed(0)
    return SegFormer(3)


def test_logits_come_back_at_input_size(segformer):
    eager = keras.ops.convert_to_numpy(segformer(images(), training=False))
    compiled = segformer.predict(images(1, 64, 96), verbose=0)  # jit on JAX, tf.function on TensorFlow
    for out, shape in ((eager, (2, 40, 56, 3)), (compiled, (1, 64, 96, 3))):
        assert out.shape == shape
        assert out.dtype == np.float32 and np.isfinite(out).all()


def test_config_and_keras_file_round_trip(segformer, tmp_path):
    config = segformer.get_config()
    assert {k: config[k] for k in ("num_classes", "variant", "encoder", "decoder_channels", "dropout", "drop_path_rate")} == {
        "num_classes": 3, "variant": "b0", "encoder": None, "decoder_channels": 256, "dropout": 0.1, "drop_path_rate": 0.1}  # fmt: skip
    x = images()
    expected = run(segformer, x)
    clone = SegFormer.from_config(config)
    clone.set_weights(segformer.get_weights())
    np.testing.assert_allclose(run(clone, x), expected, atol=1e-5)

    path = str(tmp_path / "segformer.keras")
    segformer.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is SegFormer and type(loaded.encoder) is MiTEncoder
    assert loaded.get_config() == config
    np.testing.assert_allclose(run(loaded, x), expected, atol=1e-5)


def test_a_mit_of_other_sizes_has_the_parameters_of_transformers_and_saves(tmp_path):
    model = small_segformer()
    assert model.encoder.pyramid_channels == {"P2": 8, "P3": 16, "P4": 40, "P5": 64}
    assert len([l for l in model.encoder.layers if l.name.endswith("_attn")]) == 4  # one block a stage
    transformers = pytest.importorskip("transformers")
    config = transformers.SegformerConfig(hidden_sizes=[8, 16, 40, 64], depths=[1, 1, 1, 1], decoder_hidden_size=16,
                                          num_labels=3)  # fmt: skip
    assert trainable(model) == sum(p.numel() for p in transformers.SegformerForSemanticSegmentation(config).parameters())
    x = images()
    path = str(tmp_path / "small.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert (loaded.encoder.hidden_sizes, loaded.encoder.depths) == ((8, 16, 40, 64), (1, 1, 1, 1))
    np.testing.assert_allclose(run(loaded, x), run(model, x), atol=1e-5)


@pytest.mark.slow  # tracing a training step takes TensorFlow and JAX 10-25 s on 2 cores for b0
def test_training_steps_lower_the_loss():
    # Without dropout and drop path the training-mode loss of one batch is a deterministic function of the weights.
    model = small_segformer(dropout=0.0, drop_path_rate=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras_seg.losses.CrossEntropyLoss())
    x = images(2, 32, 32)
    y = np.ones((2, 32, 32), "int32")
    y[:, 16:] = 2
    losses = [float(model.train_on_batch(x, y)) for _ in range(4)]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0], losses


def test_drop_path_drops_whole_samples_in_training_only():
    layer = DropPath(0.5, seed=1)
    x = np.ones((64, 2, 3, 4), "float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)  # inference: identity
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    per_sample = out.reshape(64, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert (per_sample.min(1) == per_sample.max(1)).all()  # a sample is dropped or kept whole, scaled by 1 / (1 - 0.5)
    assert 16 <= (per_sample[:, 0] == 0).sum() <= 48
    from keras_seg.encoders.mit import drop_path_rates

    assert drop_path_rates(0.1, (2, 2, 2, 2)) == pytest.approx([0.1 * k / 7 for k in range(8)])
    encoder = MiTEncoder("b0", drop_path_rate=0.1)
    assert encoder.get_layer("stage0_block0_drop_path1").rate == 0.0
    assert encoder.get_layer("stage3_block1_drop_path2").rate == pytest.approx(0.1)


@pytest.mark.once
def test_the_architecture_registry_and_the_encoder_names():
    model = keras_seg.models.get("segformer")(4, encoder_weights=None)  # how the command line builds models
    assert isinstance(model, SegFormer) and model.num_classes == 4
    assert [n for n in list_encoders() if n.startswith("mit")] == [f"mit_b{i}" for i in range(6)]
    encoder = build_encoder("mit_b0")
    assert isinstance(encoder, MiTEncoder) and encoder.pyramid_channels == {"P2": 32, "P3": 64, "P4": 160, "P5": 256}
    assert encoder.strides == [4, 8, 16, 32]


@pytest.mark.parametrize(
    "make",
    [
        lambda: UNet(3, encoder="mit_b0", decoder_channels=(16, 16, 8, 8, 8)),
        lambda: FCN(3, encoder="mit_b0", head_channels=16),
        lambda: DeepLabV3Plus(3, encoder="mit_b0", aspp_channels=16, low_level_channels=8, decoder_channels=16),
    ],
    ids=["unet", "fcn8s", "deeplabv3plus"],
)
def test_mit_encoder_in_the_other_architectures(make):
    model = make()
    assert isinstance(model.encoder, MiTEncoder)
    assert run(model, images()).shape == (2, 40, 56, 3)
    if isinstance(model, DeepLabV3Plus):  # a transformer cannot be dilated: stride 32, rates for 32
        assert model.output_stride == 32 and model.atrous_rates == [3, 6, 9]


def test_the_decoder_on_a_bring_your_own_encoder():
    model = SegFormer(3, encoder=tiny_encoder(), decoder_channels=8)
    assert {l.name for l in model.layers if l.name.startswith("decoder_proj")} == {f"decoder_proj_P{k}" for k in (2, 3, 4, 5)}
    assert model.get_layer("decoder_concat").output.shape[-1] == 4 * 8  # P1 (stride 2) is left out
    assert run(model, images()).shape == (2, 40, 56, 3)
    assert model.get_config()["encoder"]["class_name"] == "Functional"


@pytest.mark.once
def test_the_native_benchmark_reference_is_the_same_network():
    pytest.importorskip("transformers")
    from keras_seg.bench import runner, worker
    from keras_seg.bench.torch_unet import count_parameters

    net = worker.native_network("segformer-b0")
    keras_model = worker.build_keras_model("segformer-b0", 64)
    assert count_parameters(net) == worker.keras_params(keras_model) == HF_PARAMS["b0"] - 146 * 257  # 4 classes, not 150
    cfgs = runner.plan(("segformer-b0", "fcn8s"), ("pytorch-native",), ("float32",), ("memory",), 2, 32, 1, 0)
    assert [c["model"] for c in cfgs] == ["segformer-b0"]


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: SegFormer(3, variant="b9"), ValueError, "variant='b9' is not a Mix Transformer variant"),
        (lambda: SegFormer(0), ValueError, "num_classes=0"),
        (lambda: SegFormer(3, encoder_weights="imagenet"), ValueError, "no ImageNet weights for the Mix Transformer 'mit_b0'"),
        (lambda: UNet(3, encoder="mit_b0", encoder_weights="imagenet"), ValueError, "SegFormer.from_huggingface(path)"),
        (lambda: UNet(3, encoder="mit_b0", encoder_weights="missing.safetensors"), FileNotFoundError, "'missing.safetensors': no such"),
        (lambda: DeepLabV3Plus(3, encoder="mit_b0", output_stride=16), ValueError, "output_stride=16 is not offered for the Mix Transformer encoder 'mit_b0' by name"),
        (lambda: DeepLabV3Plus(3, encoder="mit_b0", output_stride=8), ValueError, "Pass output_stride=None (or 32)"),
        (lambda: SegFormer(3, activation="relu"), ValueError, "activation='relu'"),
        (lambda: MiTEncoder(hidden_sizes=(8, 16, 32, 64)), ValueError, "hidden_sizes=(8, 16, 32, 64) must be four positive "
         "ints, one per stage, each a multiple of its stage's attention heads (1, 2, 5, 8)"),
        (lambda: MiTEncoder(depths=(1, 1, 1)), ValueError, "depths=(1, 1, 1) must be four positive ints, one per stage."),
    ],
)
@pytest.mark.once
def test_errors_name_the_bad_value(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert message in str(info.value)


def test_weights_file_of_an_encoder_loads_by_name(tmp_path):
    encoder = MiTEncoder("b0")
    path = str(tmp_path / "mit.weights.h5")
    encoder.save_weights(path)
    model = FCN(3, encoder="mit_b0", encoder_weights=path, head_channels=16)  # as in the test above: JAX reuses its compiled shapes
    for a, b in zip(encoder.get_weights(), model.encoder.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_mixed_precision_gives_float32_logits():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = small_segformer()
    assert model.get_layer("logits").compute_dtype == "float32"
    out = run(model, images())  # JAX: compiled (op by op it compiles every bfloat16 op anew)
    assert out.dtype == np.float32 and out.shape == (2, 40, 56, 3)
    assert np.isfinite(out).all()
