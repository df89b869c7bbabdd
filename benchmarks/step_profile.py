"""Where a training step's time goes: keras_seg on TensorFlow against segmentation_models.pytorch, by layer kind.

    python benchmarks/step_profile.py                                   # unet-resnet34, 128 x 128, batch 4
    python benchmarks/step_profile.py --out benchmarks/results/step_profile_<cpu>.json

Two child processes (PyTorch and TensorFlow never share one here), each profiling ``--steps`` training steps
of the same network after ``--warmup`` untimed ones:

- ``smp``: SMP's network (``worker.smp_network``, seed-0 weights) in native PyTorch eager, AdamW +
  cross-entropy, under ``torch.profiler``; every op's self time goes to the kind named by the outermost
  name of its call chain (``aten::conv2d`` over ``aten::mkldnn_convolution``, ``ConvolutionBackward0``
  over the kernels it runs; anything under ``Optimizer.step`` is the optimizer): :func:`_torch_kind`.
- ``tensorflow``: the same network imported into keras_seg (``worker.build_keras_model``), compiled as
  ``keras-seg bench``'s ``tensorflow`` row (AdamW, ``CrossEntropyLoss``, ``jit_compile=False``), stepped with
  ``train_on_batch`` under TensorFlow's profiler; the trace (XSpace protobuf) is read back and every kernel's
  time is put in the kind of the Keras layer whose scope its op runs in (a BatchNormalization layer's mean,
  variance, rsqrt, multiply and their gradients all count as BatchNorm), else the optimizer's or the
  loss's by scope, else "other". TensorFlow runs one op at a time here (``inter_op_parallelism_threads=1``)
  so that kernel times add up to the step as PyTorch's do: its step is slower than in ``keras-seg bench``,
  where independent ops overlap.

The table gives milliseconds per step per kind and the ratio TensorFlow / SMP, so a gap can be named: a
kind of layer, or time outside the kernels (the step's wall time minus its kernels' time: Python and
framework dispatch).
"""

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Layer kinds, in table order. A Keras layer class maps to one; an op of neither side's layers to "other".
KINDS = ("convolution", "batchnorm", "relu", "upsample", "concatenate", "add (residual)", "padding / pooling",
         "loss", "optimizer", "other")  # fmt: skip
KERAS_LAYER_KINDS = {"Conv2D": "convolution", "BatchNormalization": "batchnorm", "ReLU": "relu",
                     "Activation": "relu", "UpSampling2D": "upsample", "Resizing": "upsample", "ResizeLike": "upsample",
                     "Upsample": "upsample",
                     "Concatenate": "concatenate", "Add": "add (residual)", "ZeroPadding2D": "padding / pooling",
                     "MaxPooling2D": "padding / pooling"}  # fmt: skip
# PyTorch: an op's kind is read off the outermost name of its call chain that says one (the forward
# "aten::conv2d" over "aten::mkldnn_convolution", the backward "ConvolutionBackward0" over the kernels it
# runs); everything under the optimizer's "Optimizer.step" / "Optimizer.zero_grad" spans is the optimizer.
TORCH_KEYWORDS = (("conv", "convolution"), ("batch_norm", "batchnorm"), ("batchnorm", "batchnorm"),
                  ("relu", "relu"), ("threshold", "relu"), ("upsample", "upsample"), ("aten::cat", "concatenate"),
                  ("catbackward", "concatenate"), ("max_pool", "padding / pooling"), ("maxpool", "padding / pooling"),
                  ("nll", "loss"), ("log_softmax", "loss"), ("logsoftmax", "loss"), ("cross_entropy", "loss"))  # fmt: skip
TORCH_ADDS = ("aten::add_", "aten::add", "addbackward0")


def _torch_kind(chain):
    """The kind of a profiled op from its call chain, outermost name first."""
    lows = [name.lower() for name in chain]
    if any(low.startswith("optimizer.") for low in lows):
        return "optimizer"
    for low in lows:
        for word, kind in TORCH_KEYWORDS:
            if word in low:
                return kind
        if low.split(": ")[-1] in TORCH_ADDS:
            return "add (residual)"
    return "other"


def _torch_side(args):
    os.environ["KERAS_BACKEND"] = "torch"  # keras_seg's imports then pull no TensorFlow into this process
    import torch
    from torch.profiler import ProfilerActivity, profile

    sys.path.insert(0, ROOT)
    from keras_seg.bench import worker

    torch.set_num_threads(args.threads)
    net = worker.smp_network(args.model).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=worker.LEARNING_RATE, weight_decay=worker.WEIGHT_DECAY)
    images, masks = worker.shapes_batches(args.batch_size, args.image_size, count=1)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous() / 255.0
    y = torch.from_numpy(masks).long()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    walls = []
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            start = time.perf_counter()
            step()
            walls.append(time.perf_counter() - start)
    kinds = dict.fromkeys(KINDS, 0.0)
    ops = {}
    for event in prof.events():  # self times: each microsecond counted once, in the innermost span it ran in
        chain, parent = [event.name], event.cpu_parent
        while parent is not None:
            chain.append(parent.name)
            parent = parent.cpu_parent
        kinds[_torch_kind(reversed(chain))] += event.self_cpu_time_total
        ops[event.name] = ops.get(event.name, 0.0) + event.self_cpu_time_total
    per_step = {k: v / 1000.0 / args.steps for k, v in kinds.items()}
    top = sorted(ops.items(), key=lambda kv: -kv[1])[:25]
    return {"side": "smp", "wall_ms": 1000 * statistics.median(walls), "kinds_ms": per_step,
            "top_ops_ms": {k: v / 1000.0 / args.steps for k, v in top}, "threads": torch.get_num_threads(),
            "versions": {"torch": torch.__version__}}  # fmt: skip


def _xspace_kernels(logdir):
    """``(op name, op type, microseconds)`` of every TensorFlow kernel run in the trace under ``logdir``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    (path,) = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    kernels = []
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name.split("#", 1)[0]  # "op:Type#id=..#"
                op_name, colon, op_type = name.rpartition(":")
                # An op kernel's trace is "scope/op_name:OpType"; framework spans (function calls, the executor,
                # Python) have no such form.
                if not colon or not op_name or not (op_type[:1].isupper() or op_type[:1] == "_") or ":" in op_name:
                    continue
                kernels.append((op_name, op_type, event.duration_ps / 1e6))
    return kernels


def _tensorflow_side(args):
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import segmentation_models_pytorch  # noqa: F401  (SMP builds the weights; it and triton before TensorFlow)

    sys.path.insert(0, ROOT)
    import keras
    import tensorflow as tf

    from keras_seg.bench import worker
    from keras_seg.losses import CrossEntropyLoss

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    # One op at a time (TensorFlow would run independent ops side by side), so that kernel times add up to
    # the step as PyTorch's do; the step's wall time is reported as measured under this setting.
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = worker.build_keras_model(args.model, args.image_size)
    model.compile(optimizer=keras.optimizers.AdamW(worker.LEARNING_RATE, weight_decay=worker.WEIGHT_DECAY),
                  loss=CrossEntropyLoss(), jit_compile=False)  # fmt: skip
    images, masks = worker.shapes_batches(args.batch_size, args.image_size, count=1)
    for _ in range(args.warmup):
        float(model.train_on_batch(images, masks))
    layer_kind = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        layer_kind[layer.name] = KERAS_LAYER_KINDS.get(type(layer).__name__, "other")
    logdir = tempfile.mkdtemp(prefix="tf_step_profile_")
    walls = []
    tf.profiler.experimental.start(logdir)
    for _ in range(args.steps):
        start = time.perf_counter()
        float(model.train_on_batch(images, masks))
        walls.append(time.perf_counter() - start)
    tf.profiler.experimental.stop()
    kinds = dict.fromkeys(KINDS, 0.0)
    ops = {}
    kernels = _xspace_kernels(logdir)
    shutil.rmtree(logdir, ignore_errors=True)
    for op_name, op_type, us in kernels:
        # Scopes carry the layer's name, suffixed "_1" when TensorFlow re-enters it ("layer3_0_conv1_1").
        parts = [p for part in reversed(op_name.split("/")) for p in (part, re.sub(r"_\d+$", "", part))]
        kind = next((layer_kind[p] for p in parts if p in layer_kind), None)
        if kind is None:
            low = op_name.lower()
            kind = "optimizer" if "adam" in low or "optimizer" in low else "loss" if "loss" in low else "other"
        kinds[kind] += us
        ops[op_type] = ops.get(op_type, 0.0) + us
    per_step = {k: v / 1000.0 / args.steps for k, v in kinds.items()}
    top = sorted(ops.items(), key=lambda kv: -kv[1])[:25]
    return {"side": "tensorflow", "wall_ms": 1000 * statistics.median(walls), "kinds_ms": per_step,
            "top_ops_ms": {k: v / 1000.0 / args.steps for k, v in top}, "threads": args.threads,
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}  # fmt: skip


def _child(side, args):
    argv = [sys.executable, os.path.abspath(__file__), "--child", side, "--model", args.model, "--image-size",
            str(args.image_size), "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup",
            str(args.warmup), "--threads", str(args.threads)]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    line = next((l for l in result.stdout.splitlines() if l.startswith("PROFILE ")), None)
    if result.returncode or line is None:
        raise RuntimeError(f"the {side} profile failed:\n{result.stderr[-3000:]}")
    return json.loads(line[len("PROFILE "):])


def table(smp, tf_):
    lines = ["| kind | SMP (PyTorch eager) ms/step | keras_seg TensorFlow ms/step | TF − SMP ms | TF × SMP |",
             "|---|---|---|---|---|"]  # fmt: skip
    rows = [(k, smp["kinds_ms"][k], tf_["kinds_ms"][k]) for k in KINDS]
    sk, tk = sum(r[1] for r in rows), sum(r[2] for r in rows)
    rows.append(("all kernels", sk, tk))
    rows.append(("outside kernels (wall − kernels)", smp["wall_ms"] - sk, tf_["wall_ms"] - tk))
    rows.append(("step wall time (median)", smp["wall_ms"], tf_["wall_ms"]))
    for name, a, b in rows:
        ratio = f"{b / a:.2f}" if a > 0.05 else ""
        lines.append(f"| {name} | {a:.1f} | {b:.1f} | {b - a:+.1f} | {ratio} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet-resnet34")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6, help="profiled steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", help="JSON here, and a .md table beside it")
    parser.add_argument("--child", choices=("smp", "tensorflow"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = _torch_side(args) if args.child == "smp" else _tensorflow_side(args)
        print("PROFILE " + json.dumps(result), flush=True)
        return
    sys.path.insert(0, ROOT)
    from keras_seg.bench.worker import cpu_info

    smp = _child("smp", args)
    tf_ = _child("tensorflow", args)
    text = table(smp, tf_)
    cpu = cpu_info()
    print(text)
    for side in (smp, tf_):
        print(f"\n{side['side']}: top ops, ms/step")
        for name, ms in side["top_ops_ms"].items():
            print(f"  {ms:8.2f}  {name}")
    if args.out:
        record = {"args": {k: v for k, v in vars(args).items() if k != "child"}, "cpu": cpu, "smp": smp,
                  "tensorflow": tf_, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)
        with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
            f.write(f"{args.model}, batch {args.batch_size} at {args.image_size}², {args.threads} threads; "
                    f"{cpu['model']}, {cpu['cores']} cores, {' '.join(cpu['flags'])}\n\n{text}\n")  # fmt: skip


if __name__ == "__main__":
    main()
