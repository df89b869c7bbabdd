"""Where the PyTorch backend's time goes against segmentation_models.pytorch: Keras' channels-last convolution.

    python benchmarks/torch_conv_layout.py                       # unet-resnet34, 128 x 128, 5 rounds
    python benchmarks/torch_conv_layout.py --rounds 7 --out benchmarks/results/torch_conv_layout_avx2.json

One process on the PyTorch backend (the network is SMP's ``Unet("resnet34")`` imported with its weights,
as in ``keras-seg bench``). Keras 3's torch ``conv`` turns every channels-last input into a contiguous
NCHW copy (``permute(...).contiguous()``), copies it back to the channels-last memory format for oneDNN,
and copies every kernel to that format as well, on every call. The variants, alternated in every round
(ratios within a round, medians over the rounds with min-max):

- ``smp``: SMP's network in native PyTorch eager (the reference): ``inference_mode`` for one image, and a
  training step of AdamW + cross-entropy on a batch.
- ``keras``: the keras_seg model on Keras' torch backend as it ships: ``predict_on_batch`` and
  ``train_on_batch``.
- ``keras-view``: the same model and calls with Keras' ``conv`` given the permuted view instead of the NCHW
  copy (a permuted channels-last tensor already has the channels-last memory format, so the second copy
  disappears too). Same outputs bit for bit (checked). A diagnostic of Keras, not something keras_seg
  changes: it measures what the activation copies cost.
- ``keras-compiled`` (with ``--with-compile``): the same model compiled with ``jit_compile=True``
  (Keras wraps its predict and train functions in ``torch.compile``); the compile is in the warm-up.

A torch profiler table of one ``predict_on_batch`` of each Keras variant is written beside the figures.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = "torch"

import torch  # noqa: E402  (before TensorFlow; the keras_seg import below pulls nothing of TF's on this backend)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@contextlib.contextmanager
def conv_on_views():
    """Keras' torch ``conv`` fed the permuted view of a channels-last input (no NCHW copy)."""
    from keras.src.backend.torch import nn as torch_nn

    original, transpose = torch_nn.conv, torch_nn._transpose_spatial_inputs

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        torch_nn._transpose_spatial_inputs = lambda t: t.permute(0, 3, 1, 2) if t.ndim == 4 else transpose(t)
        try:
            return original(inputs, kernel, strides, padding, data_format, dilation_rate)
        finally:
            torch_nn._transpose_spatial_inputs = transpose

    torch_nn.conv = conv
    try:
        yield
    finally:
        torch_nn.conv = original


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet-resnet34")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4, help="training batch (prediction: one image)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    parser.add_argument("--with-compile", action="store_true", help="add a jit_compile=True (torch.compile) variant")
    parser.add_argument("--out", help="write the figures as JSON here (and a .md table beside it)")
    args = parser.parse_args()

    import keras
    import numpy as np

    from keras_seg.bench import worker
    from keras_seg.export.verify import median_ms as time_ms  # warm-ups are done once, below, for every variant
    from keras_seg.losses import CrossEntropyLoss

    threads = torch.get_num_threads()
    size, batch = args.image_size, args.batch_size
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (1, size, size, 3)).astype("float32")
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, worker.NUM_CLASSES, (batch, size, size)).astype("int32")

    model = worker.build_keras_model(args.model, size)  # SMP's network with its seed-0 weights
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.004), loss=CrossEntropyLoss())
    net = worker.smp_network(args.model).eval()
    train_net = worker.smp_network(args.model).train()
    optimizer = torch.optim.AdamW(train_net.parameters(), lr=1e-4, weight_decay=0.004)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    nchw_image = (torch.from_numpy(image).permute(0, 3, 1, 2).contiguous() - mean) / std
    nchw_x = (torch.from_numpy(x).permute(0, 3, 1, 2).contiguous() - mean) / std
    target = torch.from_numpy(y).long()

    def smp_predict():
        with torch.inference_mode():
            net(nchw_image).numpy()

    def smp_train():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(train_net(nchw_x), target)
        loss.backward()
        optimizer.step()
        loss.item()

    def keras_predict():
        model.predict_on_batch(image)

    def keras_train():
        float(model.train_on_batch(x, y))

    reference = model.predict_on_batch(image)
    with conv_on_views():
        same = np.array_equal(model.predict_on_batch(image), reference)
    for fn in (smp_predict, smp_train, keras_predict, keras_train):  # warm-up: oneDNN primitives, optimizer state
        fn()
    with conv_on_views():
        keras_predict(), keras_train()

    variants = {"smp": contextlib.nullcontext, "keras": contextlib.nullcontext, "keras-view": conv_on_views}
    calls = {"smp": (smp_predict, smp_train), "keras": (keras_predict, keras_train), "keras-view": (keras_predict, keras_train)}
    if args.with_compile:
        compiled = keras.models.clone_model(model)
        compiled.set_weights(model.get_weights())
        compiled.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.004), loss=CrossEntropyLoss(),
                         jit_compile=True)  # fmt: skip
        start = time.perf_counter()
        compiled.predict_on_batch(image)
        first_predict = time.perf_counter() - start
        start = time.perf_counter()
        float(compiled.train_on_batch(x, y))
        first_train = time.perf_counter() - start
        print(f"torch.compile: first predict {first_predict:.0f} s, first train step {first_train:.0f} s", flush=True)
        variants["keras-compiled"] = contextlib.nullcontext
        calls["keras-compiled"] = (lambda: compiled.predict_on_batch(image), lambda: float(compiled.train_on_batch(x, y)))
    rows = []
    for round_ in range(args.rounds):
        for name, context in variants.items():
            with context():
                predict_ms = time_ms(calls[name][0], args.repeats, warmup=0)
                train_ms = time_ms(calls[name][1], args.repeats, warmup=0)
            rows.append({"round": round_, "variant": name, "predict_ms": predict_ms, "train_ms": train_ms})
            print(f"round {round_} {name:10s} predict {predict_ms:7.1f} ms   train step {train_ms:7.1f} ms", flush=True)

    def ratios(name, key):
        values = []
        for r in range(args.rounds):
            by = {row["variant"]: row for row in rows if row["round"] == r}
            values.append(by[name][key] / by["smp"][key])
        return statistics.median(values), min(values), max(values)

    def median_ms(name, key):
        return statistics.median(row[key] for row in rows if row["variant"] == name)

    profiles = {}
    from torch.profiler import ProfilerActivity, profile

    for name in ("keras", "keras-view"):
        with variants[name](), profile(activities=[ProfilerActivity.CPU]) as prof:
            keras_predict()
        total = sum(e.self_cpu_time_total for e in prof.key_averages())
        copies = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in ("aten::copy_",))
        profiles[name] = {"copy_share": copies / total, "table": prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8)}

    cpu = worker.cpu_info()
    header = (f"{cpu['model']}, {cpu['cores']} logical CPUs, flags {' '.join(cpu['flags']) or 'none'}; torch "
              f"{torch.__version__} ({threads} threads), Keras {keras.__version__}; {args.model}, {size} x {size}, "
              f"predict 1 image, train batch {batch}; {args.rounds} rounds x {args.repeats} calls")  # fmt: skip
    lines = [header, "", "| variant | predict 1 image | × SMP | train step | × SMP | aten::copy_ share of predict |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name in variants:
        p, t = ratios(name, "predict_ms"), ratios(name, "train_ms")
        share = f"{100 * profiles[name]['copy_share']:.0f} %" if name in profiles else ""
        lines.append(f"| {name} | {median_ms(name, 'predict_ms'):.1f} ms | {p[0]:.2f} ({p[1]:.2f}–{p[2]:.2f}) | "
                     f"{median_ms(name, 'train_ms'):.1f} ms | {t[0]:.2f} ({t[1]:.2f}–{t[2]:.2f}) | {share} |")  # fmt: skip
    lines.append("")
    lines.append(f"keras-view outputs equal Keras' bit for bit: {same}")
    if args.with_compile:
        lines.append(f"keras-compiled: the first predict took {first_predict:.0f} s and the first train step "
                     f"{first_train:.0f} s (torch.compile)")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    for name, profile_ in profiles.items():
        print(f"\n{name}: torch profiler, one predict_on_batch\n{profile_['table']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"header": header, "rows": rows, "same_outputs": same, "cpu": cpu, "threads": threads,
                       "profiles": {k: v["table"] for k, v in profiles.items()}}, f, indent=1)  # fmt: skip
        with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
            f.write(text + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
