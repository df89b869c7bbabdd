"""torchvision's segmentation models as keras_seg models: the same logits, then on to TFLite; ``keras-seg convert``.

torchvision is a test-only reference (the ``dev`` extra). The models are built with random weights
(``weights=None``), their BatchNorm statistics re-randomised, saved with ``torch.save`` as torchvision
publishes them (``aux_classifier`` included) and imported; nothing is downloaded.
"""

import os

import keras
import numpy as np
import pytest

import keras_seg
from keras_seg import cli
from keras_seg.convert import torchvision as TV
from torch_reference import keras_logits, randomised, reference_logits

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision", reason="torchvision is the test-only reference (dev extra)")
BACKEND = keras.backend.backend()


def torchvision_model(arch, tmp_path, num_classes=21):
    aux = None if arch.startswith("lraspp") else True
    model = randomised(getattr(torchvision.models.segmentation, arch)(weights=None, weights_backbone=None,
                                                                      num_classes=num_classes, aux_loss=aux))  # fmt: skip
    path = tmp_path / f"{arch}.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(TV.MODELS))
def test_imported_torchvision_models_give_torchvisions_logits(arch, tmp_path):
    reference, path = torchvision_model(arch, tmp_path)
    images = np.random.default_rng(3).uniform(0, 255, (1, 97, 75, 3)).astype("float32")  # odd sizes: torchvision takes any
    expected = reference_logits(reference, images)
    with pytest.warns(UserWarning, match="left out the auxiliary classifier") if not arch.startswith("lraspp") else _nothing():
        model = keras_seg.models.from_torchvision(arch, path)
    got = keras_logits(model, images)
    scale = float(np.abs(expected).max())
    assert np.abs(got - expected).max() <= 1e-4 * scale, (arch, np.abs(got - expected).max(), scale)
    assert model.class_names == list(TV.VOC_CLASSES)
    expected_params = sum(p.numel() for n, p in reference.named_parameters() if not n.startswith("aux_classifier."))
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected_params


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


@pytest.mark.slow
@pytest.mark.once
def test_the_comparison_fails_when_one_tensor_is_perturbed(tmp_path):
    reference, path = torchvision_model("lraspp_mobilenet_v3_large", tmp_path, num_classes=4)
    images = np.random.default_rng(4).uniform(0, 255, (1, 64, 80, 3)).astype("float32")
    expected = reference_logits(reference, images)
    state = torch.load(path, weights_only=True)
    state["backbone.4.block.2.fc1.weight"] = state["backbone.4.block.2.fc1.weight"] * 1.01  # one tensor, 1 %
    torch.save(state, path)
    got = keras.ops.convert_to_numpy(keras_seg.models.from_torchvision("lraspp_mobilenet_v3_large", path)(images))
    assert np.abs(got - expected).max() > 1e-4 * np.abs(expected).max()


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "tensorflow", reason="conversions run in-process on TensorFlow")
def test_deeplabv3_resnet50_to_tflite_keeps_pytorchs_labels(tmp_path):
    """From torchvision's file to a phone: the converted deeplabv3_resnet50 as float32 TFLite, in LiteRT."""
    reference, path = torchvision_model("deeplabv3_resnet50", tmp_path)
    with pytest.warns(UserWarning, match="auxiliary classifier"):
        model = keras_seg.models.from_torchvision("deeplabv3_resnet50", path)
    images = np.random.default_rng(5).integers(0, 256, (2, 96, 128, 3)).astype("float32")
    report = keras_seg.export.export(model, tmp_path / "deeplab.tflite", input_size=(96, 128), verify_data=images,
                                     quiet=True)  # fmt: skip
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tmp_path / "deeplab.tflite"))
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    labels = []
    for image in images:
        interpreter.set_tensor(source["index"], image[None])
        interpreter.invoke()
        labels.append(interpreter.get_tensor(target["index"])[0].argmax(-1))
    agreement = float((np.stack(labels) == reference_logits(reference, images).argmax(-1)).mean())
    assert agreement >= 0.999, agreement
    assert report.gpu_compatible and keras_seg.export.read_metadata(tmp_path / "deeplab.tflite")["class_names"][15] == "person"


@pytest.mark.once
def test_torchvision_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"arch='fcn_vgg16' is not a torchvision segmentation model keras_seg imports"):
        keras_seg.models.from_torchvision("fcn_vgg16", tmp_path / "x.pth")
    with pytest.raises(FileNotFoundError, match=r"x\.pth does not exist"):
        keras_seg.models.from_torchvision("fcn_resnet50", tmp_path / "x.pth")
    _, path = torchvision_model("lraspp_mobilenet_v3_large", tmp_path, num_classes=3)
    with pytest.raises(ValueError, match=r"has no classifier\.4\.weight: it is not a torchvision fcn_resnet50 state dict"):
        keras_seg.models.from_torchvision("fcn_resnet50", path)
    assert TV.guess_arch(torch.load(path, weights_only=True)) == "lraspp_mobilenet_v3_large"


# ---------------------------------------------------------------------------------------------- keras-seg convert


def run_cli(capsys, argv):
    capsys.readouterr()
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err.strip()


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the command line runs on the TensorFlow pass")
def test_keras_seg_convert_then_export(tmp_path, capsys):
    reference, path = torchvision_model("lraspp_mobilenet_v3_large", tmp_path)
    code, out, err = run_cli(capsys, ["convert", path, tmp_path / "lraspp.keras"])  # recognised from its tensors
    assert code == 0, err
    assert "LRASPP on" in out and "21 classes (background, aeroplane" in out
    assert keras_seg.training.read_state(tmp_path / "lraspp.keras")["class_names"] == list(TV.VOC_CLASSES)
    code, out, err = run_cli(capsys, ["export", tmp_path / "lraspp.keras", tmp_path / "lraspp.tflite", "--input-size",
                                      "65,97", "--no-verify"])  # fmt: skip
    assert code == 0, err
    meta = keras_seg.export.read_metadata(tmp_path / "lraspp.tflite")
    assert meta["class_names"] == list(TV.VOC_CLASSES) and meta["mediapipe"]
    images = np.random.default_rng(6).uniform(0, 255, (1, 65, 97, 3)).astype("float32")
    loaded = keras.saving.load_model(tmp_path / "lraspp.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(images)), reference_logits(reference, images),
                               atol=1e-4 * np.abs(reference_logits(reference, images)).max())  # fmt: skip


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the command line runs on the TensorFlow pass")
def test_keras_seg_convert_errors_are_one_line(tmp_path, capsys):
    smp = pytest.importorskip("segmentation_models_pytorch")
    (tmp_path / "notsmp").mkdir()
    (tmp_path / "notsmp" / "readme.txt").write_text("hello")
    reference = smp.Unet("resnet18", encoder_weights=None, classes=2)
    from safetensors.torch import save_file

    save_file(reference.state_dict(), tmp_path / "unet.safetensors")
    cases = [
        (["convert", tmp_path / "missing.pth", tmp_path / "a.keras"], "missing.pth does not exist"),
        (["convert", tmp_path / "notsmp", tmp_path / "a.keras"], "is a folder without model.safetensors"),
        (["convert", tmp_path / "unet.safetensors", tmp_path / "a.keras", "--arch", "Unet", "--encoder", "timm-regnetx_002"],
         "the SMP encoder 'timm-regnetx_002' is not supported"),
        (["convert", tmp_path / "unet.safetensors", tmp_path / "a.keras", "--arch", "FPN", "--encoder", "resnet18"],
         "the checkpoint does not fit the Keras model"),
        (["convert", tmp_path / "unet.safetensors", tmp_path / "a.tflite", "--arch", "Unet"], "must end in .keras"),
    ]  # fmt: skip
    for argv, message in cases:
        code, _, err = run_cli(capsys, argv)
        assert code == 1 and err.count("\n") == 0 and err.startswith("keras-seg: error: ") and message in err, err
    assert not os.path.exists(tmp_path / "a.keras")
    code, out, err = run_cli(capsys, ["convert", tmp_path / "unet.safetensors", tmp_path / "unet.keras", "--arch", "Unet",
                                      "--encoder", "resnet18", "--classes", "bg,road"])  # fmt: skip
    assert code == 0 and "UNet on" in out and "2 classes (bg, road)" in out, err
    # a second convert to the same path keeps the file there (a model someone trained, perhaps) unless --overwrite
    before = (tmp_path / "unet.keras").read_bytes()
    again = ["convert", tmp_path / "unet.safetensors", tmp_path / "unet.keras", "--arch", "Unet", "--encoder", "resnet18"]
    code, _, err = run_cli(capsys, again)
    assert code == 1 and "unet.keras already exists" in err and "--overwrite" in err and err.count("\n") == 0, err
    assert (tmp_path / "unet.keras").read_bytes() == before
    code, _, err = run_cli(capsys, again + ["--overwrite"])
    assert code == 0, err
    assert keras_seg.training.read_state(tmp_path / "unet.keras").get("class_names") is None  # replaced: no --classes
