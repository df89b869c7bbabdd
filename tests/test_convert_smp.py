"""segmentation_models.pytorch as the reference: parameter for parameter, and logits for logits after import.

SMP (and timm, torchvision) are test-only references from the ``dev`` extra, built with
``encoder_weights=None`` and re-randomised BatchNorm / GroupNorm / LayerNorm statistics, saved with
``save_pretrained`` and read back by :func:`keras_seg.models.from_smp`; nothing is downloaded.
"""

import os
import warnings

import keras
import numpy as np
import pytest

import keras_seg
from keras_seg import models as M
from torch_reference import keras_logits, randomised, reference_logits

smp = pytest.importorskip("segmentation_models_pytorch", reason="the SMP reference is in the dev extra")
torch = pytest.importorskip("torch")
BACKEND = keras.backend.backend()

# SMP class name -> keras_seg builder with SMP's defaults
PAIRS = {
    "Unet": lambda k, e="resnet34": M.UNet(k, encoder=e),
    "UnetPlusPlus": lambda k, e="resnet34": M.UNetPlusPlus(k, encoder=e),
    "FPN": lambda k, e="resnet34": M.FPN(k, encoder=e),
    "PSPNet": lambda k, e="resnet34": M.PSPNet(k, encoder=e),
    "Linknet": lambda k, e="resnet34": M.LinkNet(k, encoder=e),
    "MAnet": lambda k, e="resnet34": M.MANet(k, encoder=e),
    "PAN": lambda k, e="resnet34": M.PAN(k, encoder=e),
    "UPerNet": lambda k, e="resnet34": M.UPerNet(k, encoder=e),
    "DeepLabV3": lambda k, e="resnet34": M.DeepLabV3(k, encoder=e),
    "DeepLabV3Plus": lambda k, e="resnet34": M.DeepLabV3Plus(k, encoder=e),
}


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def unused_by_smp_pspnet(reference):
    """The parameters SMP's PSPNet builds in its encoder (layer3, layer4 at encoder_depth=3) and never runs."""
    return sum(p.numel() for n, p in reference.named_parameters() if n.startswith(("encoder.layer3.", "encoder.layer4.")))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="parameter counts do not depend on the backend")
@pytest.mark.parametrize("arch", sorted(PAIRS))
def test_parameter_counts_equal_smp_on_resnet34(arch):
    for classes in (1, 5):
        reference = getattr(smp, arch)("resnet34", encoder_weights=None, classes=classes)
        expected = sum(p.numel() for p in reference.parameters())
        if arch == "PSPNet":  # keras_seg does not build the stages a depth-3 encoder never runs (README)
            expected -= unused_by_smp_pspnet(reference)
        assert trainable(PAIRS[arch](classes)) == expected, (arch, classes)
        keras.utils.clear_session()


# SMP's own defaults of output stride throughout (DeepLabV3: 8, PAN and DeepLabV3+: 16). SMP's MiT (mit_b0) with
# every architecture that takes one (SMP refuses it for UnetPlusPlus and Linknet; DeepLabV3 and PAN dilate it the
# way SMP does); Segformer takes nothing but a MiT here.
MIT_ARCHS = ["DeepLabV3", "DeepLabV3Plus", "FPN", "MAnet", "PAN", "PSPNet", "Segformer", "UPerNet", "Unet"]
# Every architecture on resnet34 and one more encoder: mit_b0 where the architecture takes one, resnet18 for
# UnetPlusPlus and Linknet (SMP refuses MiT there). On all three backends: every architecture on resnet34, and the
# MiT under Segformer and under DeepLabV3 (SMP's dilated MiT); the other MiT and resnet18 pairs repeat, on the
# JAX and PyTorch passes, an encoder and a decoder each checked there already, so they run on the TensorFlow pass
# with the Bottleneck resnet50 under FPN and DeepLabV3+.
EVERY_BACKEND_MIT = ("Segformer", "DeepLabV3")
CASES = [(arch, "resnet34") for arch in sorted(PAIRS)] + [
    pytest.param(arch, "resnet18", marks=pytest.mark.breadth) for arch in sorted(PAIRS) if arch not in MIT_ARCHS
] + [pytest.param("FPN", "resnet50", marks=pytest.mark.breadth), pytest.param("DeepLabV3Plus", "resnet50", marks=pytest.mark.breadth)
] + [(arch, "mit_b0") if arch in EVERY_BACKEND_MIT else pytest.param(arch, "mit_b0", marks=pytest.mark.breadth)
     for arch in MIT_ARCHS]  # fmt: skip
SIZE = {"PAN": (256, 256)}  # its pyramid attention pools the stride-16 map three times


@pytest.mark.slow
@pytest.mark.parametrize("arch, encoder", CASES)
def test_imported_smp_models_give_smps_logits(arch, encoder, tmp_path):
    reference = randomised(getattr(smp, arch)(encoder, encoder_weights=None, classes=3))
    reference.save_pretrained(tmp_path / "smp")
    size = SIZE.get(arch, (64, 96))  # not square; SMP needs sizes divisible by the encoder's stride
    images = np.random.default_rng(1).uniform(0, 255, (2, *size, 3)).astype("float32")
    expected = reference_logits(reference, images)
    model = keras_seg.models.from_smp(tmp_path / "smp")
    expected_class = "SegFormer" if arch == "Segformer" else PAIRS[arch](1).__class__.__name__
    assert type(model).__name__ == expected_class and model.num_classes == 3
    got = keras_logits(model, images)
    scale = float(np.abs(expected).max())
    assert np.abs(got - expected).max() <= 1e-4 * scale, (arch, encoder, np.abs(got - expected).max(), scale)


@pytest.mark.slow
@pytest.mark.once
def test_the_comparison_fails_when_one_tensor_is_perturbed(tmp_path):
    from safetensors.numpy import load_file, save_file

    reference = randomised(smp.FPN("resnet18", encoder_weights=None, classes=3))
    reference.save_pretrained(tmp_path / "smp")
    images = np.random.default_rng(2).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    expected = reference_logits(reference, images)
    tensors = load_file(tmp_path / "smp" / "model.safetensors")
    tensors["decoder.p3.skip_conv.weight"] = tensors["decoder.p3.skip_conv.weight"] * 1.01  # one tensor, 1 %
    save_file(tensors, tmp_path / "smp" / "model.safetensors")
    got = keras.ops.convert_to_numpy(keras_seg.models.from_smp(tmp_path / "smp")(images))
    assert np.abs(got - expected).max() > 1e-4 * np.abs(expected).max()


@pytest.mark.skipif(BACKEND != "tensorflow", reason="argument handling does not depend on the backend")
def test_a_bare_state_dict_and_the_errors(tmp_path):
    from safetensors.torch import save_file

    reference = randomised(smp.Linknet("resnet18", encoder_weights=None, classes=2, aux_params={"classes": 4}))
    save_file(reference.state_dict(), tmp_path / "link.safetensors")
    torch.save(reference.state_dict(), tmp_path / "link.pth")
    for path in ("link.safetensors", "link.pth"):
        with pytest.warns(UserWarning, match=r"ignored the classification head \(SMP aux_params, 2 tensors"):
            model = keras_seg.models.from_smp(tmp_path / path, arch="Linknet", encoder="resnet18", class_names=["a", "b"])
        assert model.class_names == ["a", "b"] and model.num_classes == 2
    with pytest.raises(ValueError, match="no config.json says which SMP architecture"):
        keras_seg.models.from_smp(tmp_path / "link.safetensors")
    with pytest.raises(ValueError, match=r"the SMP architecture 'DPT' has no keras_seg counterpart"):
        keras_seg.models.from_smp(tmp_path / "link.safetensors", arch="DPT")
    with pytest.raises(ValueError, match=r"the SMP encoder 'efficientnet-b0' is not supported.*resnet18, resnet34"):
        keras_seg.models.from_smp(tmp_path / "link.safetensors", arch="Linknet", encoder="efficientnet-b0")
    with pytest.raises(ValueError, match=r"checkpoint tensors are unused \(decoder\.blocks"):
        keras_seg.models.from_smp(tmp_path / "link.safetensors", arch="Unet", encoder="resnet18")  # another architecture
    with pytest.raises(FileNotFoundError, match="is a folder without model.safetensors"):
        keras_seg.models.from_smp(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        keras_seg.models.from_smp(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"SMP's Linknet with the encoder 'mit_b0' is not imported: SMP itself builds"):
        keras_seg.models.from_smp(tmp_path / "link.safetensors", arch="Linknet", encoder="mit_b0")
    with pytest.raises(ValueError, match=r"SMP's Segformer with the encoder 'resnet18' is not imported.*mit_b0"):
        keras_seg.models.from_smp(tmp_path / "link.safetensors", arch="Segformer", encoder="resnet18")
    with pytest.raises(ValueError, match=r"has no encoder.patch_embed1.proj.weight: it is not an SMP model with the "
                                         r"encoder 'mit_b2'"):
        keras_seg.models.from_smp(tmp_path / "link.safetensors", arch="Unet", encoder="mit_b2")
    with pytest.raises(ValueError, match="its head predicts 2 classes, not num_classes=3"):
        keras_seg.models.from_smp(tmp_path / "link.safetensors", arch="Linknet", encoder="resnet18", num_classes=3)


@pytest.mark.slow
def test_an_imported_dilated_mit_saves_and_reloads(tmp_path):
    """SMP's MiT settings (LayerNorm epsilon 1e-6, output stride 8 by dilation) travel in the .keras file."""
    reference = randomised(smp.DeepLabV3("mit_b0", encoder_weights=None, classes=2))
    reference.save_pretrained(tmp_path / "smp")
    images = np.random.default_rng(3).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    model = keras_seg.models.from_smp(tmp_path / "smp")
    assert model.encoder.output_stride == 8 and model.encoder.layer_norm_epsilon == 1e-6
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    assert again.encoder.output_stride == 8 and again.encoder.layer_norm_epsilon == 1e-6
    expected = reference_logits(reference, images)
    got = keras.ops.convert_to_numpy(again(images))
    assert np.abs(got - expected).max() <= 1e-4 * float(np.abs(expected).max())
