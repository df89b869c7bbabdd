"""keras_seg.bench: the native PyTorch reference is the same network, and the benchmark runs.

Speed itself is judged from the benchmark's output (benchmarks/RESULTS.md), never here.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_seg.bench import runner
from keras_seg.bench import worker

torch = pytest.importorskip("torch")

from keras_seg.bench.torch_unet import TorchUNet, count_parameters  # noqa: E402

pytestmark = pytest.mark.once  # the benchmark starts a process per backend itself: backend-independent


def test_reference_has_the_stated_parameter_count():
    assert count_parameters(TorchUNet()) == 31_043_521
    assert count_parameters(TorchUNet(3, 4)) == 31_043_521 + 3 * 64 + 3


def _copy_keras_weights_to_torch(model, net):
    """Layer by layer, by name: conv kernels (kh, kw, in, out) -> (out, in, kh, kw), transposed-conv
    kernels (kh, kw, out, in) -> (in, out, kh, kw), BatchNorm scale / offset / statistics / epsilon."""

    def weights(name):
        for owner in (model, model.encoder):
            try:
                layer = owner.get_layer(name)
            except ValueError:
                continue
            return layer, [np.asarray(keras.ops.convert_to_numpy(w)) for w in layer.weights]
        raise KeyError(name)

    def set_(param, value):
        param.data = torch.from_numpy(np.ascontiguousarray(value))

    def conv(name, dst):
        kernel, bias = weights(name)[1]
        set_(dst.weight, kernel.transpose(3, 2, 0, 1))
        set_(dst.bias, bias)

    def bn(name, dst):
        layer, (gamma, beta, mean, var) = weights(name)
        for param, value in ((dst.weight, gamma), (dst.bias, beta), (dst.running_mean, mean), (dst.running_var, var)):
            set_(param, value)
        dst.eps = layer.epsilon

    def block(prefix, seq):  # Sequential(conv, bn, relu, conv, bn, relu)
        conv(f"{prefix}_1_conv", seq[0])
        bn(f"{prefix}_1_bn", seq[1])
        conv(f"{prefix}_2_conv", seq[3])
        bn(f"{prefix}_2_bn", seq[4])

    levels = len(net.encoder)
    for level in range(levels):
        block(f"down{level}", net.encoder[level])
    block("bottleneck", net.bottleneck)
    for i, level in enumerate(reversed(range(levels))):
        conv(f"up{level}_transpose", net.up[i])  # the same (3, 2, 0, 1) permutation maps (kh, kw, out, in) -> (in, out, kh, kw)
        block(f"up{level}", net.decoder[i])
    conv("head_conv", net.head)


def test_reference_computes_what_the_keras_unet_computes():
    """The same weights in both give the same logits: the reference is the same network, not a look-alike."""
    from keras_seg.models import UNet

    widths = (4, 8, 16)
    model = UNet(3, widths=widths)
    x = np.random.default_rng(0).uniform(0, 255, (2, 24, 40, 3)).astype("float32")
    # Non-trivial BatchNorm statistics, so that a swapped mean / variance would show.
    for layer in model.encoder.layers + model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights([gamma + rng.uniform(0, 0.5, gamma.shape), beta + rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2.0, var.shape)])  # fmt: skip
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    net = TorchUNet(3, 3, widths).eval()
    _copy_keras_weights_to_torch(model, net)
    with torch.no_grad():
        got = net(torch.from_numpy(x / 255.0).float().permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert got.shape == expected.shape == (2, 24, 40, 3)
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())


def test_plan_skips_what_has_no_meaning_and_names_bad_values():
    cfgs = runner.plan(("unet", "fcn8s"), ("tensorflow", "pytorch-native", "tflite"), ("float32", "mixed"),
                       ("memory", "pipeline"), batch_size=2, image_size=32, steps=1, warmup=0)  # fmt: skip
    keys = {(c["impl"], c["model"], c["precision"], c["data"]) for c in cfgs}
    # native: classic U-Net from memory only; tflite: float32 inference from memory only
    assert ("pytorch-native", "fcn8s", "float32", "memory") not in keys
    assert ("pytorch-native", "unet", "float32", "pipeline") not in keys
    assert ("tflite", "unet", "mixed", "memory") not in keys
    assert len(cfgs) == 2 * 2 * 2 + 2 + 2  # tensorflow everywhere; native: U-Net x 2 precisions; tflite: 2 models
    assert [c["tasks"] for c in cfgs if c["data"] == "pipeline"][0] == ["train"]
    with pytest.raises(ValueError, match="'resnet9'.*unet, unet-resnet50"):
        runner.plan(("resnet9",), ("jax",), ("float32",), ("memory",), 2, 32, 1, 0)
    with pytest.raises(ValueError, match="'mxnet'"):
        worker.backend_of("mxnet")


def test_ratios_divide_by_the_native_row_of_the_same_setting():
    def row(impl, step, latency, batch_throughput, precision="float32"):
        return dict(impl=impl, model="unet", batch_size=4, image_size=128, precision=precision, data="memory",
                    train={"median_step_s": step}, predict={"latency_ms": latency, "median_step_s": batch_throughput})  # fmt: skip

    rows = runner.with_ratios([row("jax", 3.0, 30.0, 1.0), row("pytorch-native", 2.0, 20.0, 0.5),
                               row("jax", 1.0, 10.0, 1.0, precision="mixed")])  # fmt: skip
    assert rows[0]["train_vs_native"] == pytest.approx(1.5)
    assert rows[0]["predict_vs_native"] == pytest.approx(1.5)
    assert rows[0]["predict_throughput_vs_native"] == pytest.approx(0.5)
    assert rows[1]["train_vs_native"] == pytest.approx(1.0)
    assert "train_vs_native" not in rows[2]  # no native mixed-precision row to compare with
    lines = runner.markdown(rows).splitlines()
    assert lines[2] == "| unet | jax | float32 | memory | 4 × 128² | 3000 ms | – | 1.50 | – | 30.0 ms | – | 1.50 | – |"
    assert lines[4].endswith("| 10.0 ms | – | – | – |")  # mixed: no native row, no ratio


@pytest.mark.slow
def test_bench_command_measures_keras_and_native_pytorch(tmp_path):
    """``keras-seg bench`` on a tiny setting: a Keras row and a native row, each trained and timed, with ratios."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the command starts its own child per backend; one run (TensorFlow CI pass) covers it")
    out = tmp_path / "bench.json"
    impl = keras.backend.backend()
    command = [sys.executable, "-m", "keras_seg.cli", "bench", "--models", "unet", "--impls", f"{impl},pytorch-native",
               "--data", "memory", "--batch-size", "1", "--image-size", "32", "--steps", "2", "--warmup", "1",
               "--rounds", "1", "--out", str(out)]  # fmt: skip
    # (one round: each child builds and traces the 31 M parameter U-Net, about 25 s apiece on the 2-core machine;
    # the alternation over rounds is checked with stand-in children in test_rounds_alternate_...)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads(out.read_text())
    rows = saved["rows"]
    assert [(r["impl"], r["round"]) for r in rows] == [(impl, 0), ("pytorch-native", 0)]
    assert saved["machine"]["cores"] == os.cpu_count() and saved["machine"]["model"]
    assert all(r["threads"] >= 1 for r in rows)
    over = {e["impl"]: e for e in saved["summary"]}
    assert over[impl]["rounds"] == 1 and over[impl]["train_vs_native"]["median"] == rows[0]["train_vs_native"]
    keras_row, native = rows
    for r in rows:
        assert r["train"]["median_step_s"] > 0 and r["predict"]["latency_ms"] > 0
        assert r["train"]["images_per_s"] == pytest.approx(1 / r["train"]["median_step_s"])
    assert keras_row["params"] == native["params"] == 31_043_521 + 3 * 64 + 3 + 0  # 4 classes
    assert keras_row["train_vs_native"] == pytest.approx(
        keras_row["train"]["median_step_s"] / native["train"]["median_step_s"]
    )
    table = (tmp_path / "bench.md").read_text()
    assert table.count("| unet |") == 2 + 2 and "× native" in table  # two rows, then two over the round
    assert "CPU: " in table and "vector flags" in table and "## Over rounds" in table
    assert "× native" in done.stdout


def test_rounds_alternate_the_implementations_and_every_measurement_is_written_at_once(tmp_path, monkeypatch):
    """``runner.run`` with stand-in children: A B, A B, A B in that order, each row written to disk as it comes
    (an interrupted run keeps what it measured), the ratios within each round and their spread over the rounds."""
    steps = iter([2.0, 1.0, 3.0, 1.0, 1.0, 1.0])  # the TensorFlow row's ratio to native: 2, 3, 1 in rounds 1-3
    order, written = [], []

    def child(cfg, timeout=900, python=None):
        order.append(cfg["impl"])
        written.append(len(json.loads(path.read_text())["rows"]) if path.exists() else 0)
        return dict(cfg, train={"median_step_s": next(steps)}, predict={"latency_ms": 1.0, "median_step_s": 1.0})

    monkeypatch.setattr(runner, "run_one", child)
    path = tmp_path / "bench.json"
    cfgs = runner.plan(("unet",), ("tensorflow", "pytorch-native"), ("float32",), ("memory",), 1, 32, 1, 0)
    rows = runner.run(cfgs, progress=lambda line: None, path=path, rounds=3)
    assert order == ["tensorflow", "pytorch-native"] * 3 and written == [0, 1, 2, 3, 4, 5]
    assert [(r["impl"], r["round"]) for r in rows] == [(i, k) for k in range(3) for i in ("tensorflow", "pytorch-native")]
    assert [r["train_vs_native"] for r in rows if r["impl"] == "tensorflow"] == [2.0, 3.0, 1.0]
    saved = json.loads(path.read_text())
    entry = {e["impl"]: e for e in saved["summary"]}["tensorflow"]
    assert entry["rounds"] == 3 and entry["train_vs_native"] == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    table = (tmp_path / "bench.md").read_text()
    assert "| unet (round 2) |" in table and "| unet (round 3) |" in table and "## Over rounds" in table


def test_summary_takes_medians_over_rounds_with_their_spread():
    def row(impl, step, round_):
        return dict(impl=impl, model="fpn-resnet34", batch_size=4, image_size=128, precision="float32", data="memory",
                    train={"median_step_s": step}, round=round_)  # fmt: skip

    native_steps, jax_steps = (1.0, 2.0, 1.0), (1.5, 2.0, 3.0)  # ratios 1.5, 1.0, 3.0 within the rounds
    rows = runner.with_ratios([row(i, t, r) for r, (n, j) in enumerate(zip(native_steps, jax_steps))
                               for i, t in (("pytorch-native", n), ("jax", j))])  # fmt: skip
    assert [r["train_vs_native"] for r in rows if r["impl"] == "jax"] == [1.5, 1.0, 3.0]
    entry = {e["impl"]: e for e in runner.summary(rows)}["jax"]
    assert entry["rounds"] == 3
    assert entry["train_vs_native"] == {"median": 1.5, "min": 1.0, "max": 3.0, "n": 3}
    assert entry["train_ms"]["median"] == pytest.approx(2000.0)
    table = runner.summary_markdown(runner.summary(rows), {"model": "Some CPU", "cores": 2, "flags": ["avx2"]})
    assert "| fpn-resnet34 | jax | float32 | 3 | 2000 ms (1500–3000) | 1.50 (1.00–3.00) | – | – |" in table
    assert "CPU: Some CPU, 2 cores, vector flags: avx2." in table


def test_smp_parity_models_have_smp_as_their_native_reference():
    assert worker.smp_reference("fpn-resnet34") == ("FPN", "resnet34")
    assert worker.smp_reference("deeplabv3plus-resnet18") == ("DeepLabV3Plus", "resnet18")
    assert worker.smp_reference("unet") is None and worker.smp_reference("unet-mobilenetv2") is None
    cfgs = runner.plan(("fpn-resnet34", "unet-mobilenetv2"), ("jax", "pytorch-native", "pytorch-native-compile"),
                       ("float32",), ("memory",), 2, 32, 1, 0)  # fmt: skip
    assert {(c["impl"], c["model"]) for c in cfgs} == {
        ("jax", "fpn-resnet34"), ("pytorch-native", "fpn-resnet34"), ("pytorch-native-compile", "fpn-resnet34"),
        ("jax", "unet-mobilenetv2")}  # fmt: skip
    assert worker.backend_of("pytorch-native-compile") == "torch"


def test_the_smp_benchmark_times_one_network_in_two_implementations():
    """The Keras model of an SMP-parity benchmark is SMP's network with SMP's weights: equal logits."""
    pytest.importorskip("segmentation_models_pytorch")
    model = worker.build_keras_model("fpn-resnet18", 64)
    net = worker.native_network("fpn-resnet18").eval()
    images = worker.shapes_batches(2, 64, count=1)[0]
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    with torch.no_grad():
        x = torch.from_numpy(worker._torch_input({"model": "fpn-resnet18"}, images)).permute(0, 3, 1, 2)
        got = net(x).permute(0, 2, 3, 1).numpy()
    assert worker.keras_params(model) == sum(p.numel() for p in net.parameters())
    np.testing.assert_allclose(expected, got, atol=1e-4 * np.abs(got).max())


@pytest.mark.slow
def test_an_smp_model_measures_in_a_tensorflow_child():
    """The child of an SMP-parity measurement imports segmentation_models.pytorch (torch, triton) before keras_seg
    pulls in TensorFlow: the other order crashes the child (exit -11), which this run would report as an error row."""
    pytest.importorskip("segmentation_models_pytorch")
    [cfg] = runner.plan(["fpn-resnet18"], ["tensorflow"], ["float32"], ["memory"], batch_size=1, image_size=64, steps=1,
                        warmup=1, tasks=("predict",))  # fmt: skip
    row = runner.run_one(cfg, timeout=600)
    assert "error" not in row, row.get("error")
    assert row["weights"] == "smp seed 0" and row["predict"]["latency_ms"] > 0


def _step_profile():
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "step_profile.py")
    spec = importlib.util.spec_from_file_location("step_profile", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_step_profile_puts_torch_ops_in_the_kind_of_their_outermost_call():
    sp = _step_profile()
    kind = sp._torch_kind
    assert kind(["aten::conv2d", "aten::convolution", "aten::mkldnn_convolution"]) == "convolution"
    assert kind(["autograd::engine::evaluate_function: ConvolutionBackward0", "aten::convolution_backward"]) == "convolution"
    assert kind(["aten::batch_norm", "aten::native_batch_norm", "aten::add"]) == "batchnorm"  # BN's own add
    assert kind(["autograd::engine::evaluate_function: AddBackward0"]) == "add (residual)"
    assert kind(["aten::add_"]) == "add (residual)"
    assert kind(["Optimizer.step#AdamW.step", "aten::mul_"]) == "optimizer"
    assert kind(["aten::cross_entropy_loss", "aten::log_softmax", "aten::_log_softmax"]) == "loss"
    assert kind(["aten::upsample_nearest2d"]) == "upsample" and kind(["aten::cat"]) == "concatenate"
    assert kind(["aten::empty"]) == "other"


def test_step_profile_table_adds_kinds_and_the_time_outside_kernels():
    sp = _step_profile()
    smp = {"kinds_ms": dict.fromkeys(sp.KINDS, 0.0), "wall_ms": 12.0}
    tf_ = {"kinds_ms": dict.fromkeys(sp.KINDS, 0.0), "wall_ms": 30.0}
    smp["kinds_ms"].update(convolution=8.0, batchnorm=2.0)
    tf_["kinds_ms"].update(convolution=12.0, batchnorm=8.0)
    rows = {line.split(" | ")[0].strip("| "): line for line in sp.table(smp, tf_).splitlines()}
    assert rows["convolution"] == "| convolution | 8.0 | 12.0 | +4.0 | 1.50 |"
    assert rows["batchnorm"] == "| batchnorm | 2.0 | 8.0 | +6.0 | 4.00 |"
    assert rows["all kernels"] == "| all kernels | 10.0 | 20.0 | +10.0 | 2.00 |"
    assert rows["outside kernels (wall − kernels)"] == "| outside kernels (wall − kernels) | 2.0 | 10.0 | +8.0 | 5.00 |"
