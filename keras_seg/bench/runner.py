"""``keras-seg bench``: training and inference speed per backend, as ratios to native PyTorch.

Each measurement runs in its own child process (``python -m keras_seg.bench.worker``) with
the Keras backend it needs; see :mod:`keras_seg.bench.worker` for what is timed. The native
PyTorch U-Net (:mod:`keras_seg.bench.torch_unet`) and SegFormer-B0 (``transformers``',
:mod:`keras_seg.bench.torch_segformer`) run in the same command, so every classic-U-Net and
SegFormer-B0 figure is also a ratio: ``step time / native step time`` (below 1 is faster than
native PyTorch) and ``latency / native latency``.
"""

import json
import os
import subprocess
import sys
import time

from keras_seg.bench.worker import EXPORTED
from keras_seg.bench.worker import MODELS
from keras_seg.bench.worker import is_model
from keras_seg.bench.worker import smp_reference
from keras_seg.bench.worker import NATIVE
from keras_seg.bench.worker import NATIVE_COMPILE
from keras_seg.bench.worker import NATIVES
from keras_seg.bench.worker import backend_of
from keras_seg.bench.worker import cpu_info
from keras_seg.bench.worker import has_native

IMPLS = ("tensorflow", "tensorflow-xla", "jax", "torch", "torch-compile") + NATIVES + tuple(EXPORTED)
# The SMP-parity models of the head-to-head with segmentation_models.pytorch (preset "smp").
SMP_MODELS = ("unet-resnet34", "fpn-resnet34", "deeplabv3plus-resnet34")
PRECISIONS = ("float32", "mixed")
DATA = ("memory", "pipeline")


def presets(name):
    """The measurements of ``keras-seg bench --preset NAME`` as :func:`plan` arguments (plus ``extra`` cfgs).

    ``quick``: the classic U-Net, batch 4 at 128x128, float32, on TensorFlow, JAX, the PyTorch
    backend, native PyTorch and TFLite float32 / int8 (under 3 minutes on 2 CPU cores).
    ``cpu``: the same U-Net on every implementation and data variant, then the three encoder
    models and SegFormer-B0 on the Keras backends (SegFormer-B0 also in native PyTorch).
    ``gpu``: batch 16 at 256x256 on JAX, the PyTorch backend and native PyTorch (AMP +
    channels_last for mixed precision), ordered so a run cut short keeps the headline rows.
    ``smp``: the head-to-head with segmentation_models.pytorch: U-Net, FPN and DeepLabV3+ on
    resnet34 (the SMP network and its weights in both) and the seed's U-Net, batch 4 at 128x128,
    on the three Keras backends, native PyTorch eager and compiled, TFLite float32 / int8 and ONNX,
    in 3 alternating rounds.
    """
    if name == "quick":
        return dict(models=("unet",), impls=("tensorflow", "jax", "torch", NATIVE, "tflite", "tflite-int8"),
                    precisions=("float32",), data=("memory",), batch_size=4, image_size=128, steps=4, warmup=1)  # fmt: skip
    common = dict(precisions=("float32",), batch_size=4, image_size=128, steps=8, warmup=2)
    if name == "cpu":
        others = ("unet-resnet50", "deeplabv3plus-resnet50", "fcn8s", "segformer-b0")
        extra = plan(others, ("tensorflow", "jax", "torch"), data=("memory",), **common)
        extra += plan(("segformer-b0",), (NATIVE,), data=("memory",), **common)
        return dict(models=("unet",), impls=("tensorflow", "tensorflow-xla", "jax", "torch", NATIVE) + tuple(EXPORTED),
                    data=DATA, extra=extra, **common)  # fmt: skip
    if name == "gpu":
        gpu = dict(data=("memory",), batch_size=16, image_size=256, steps=20, warmup=5)
        others = ("unet-resnet50", "deeplabv3plus-resnet50", "fcn8s", "segformer-b0")
        extra = plan(others, ("jax", "torch"), ("mixed",), **gpu)
        extra += plan(("unet",), ("torch-compile",), ("mixed",), **gpu)
        extra += plan(others, ("jax", "torch"), ("float32",), **gpu)
        extra += plan(("segformer-b0",), (NATIVE,), PRECISIONS, **gpu)
        return dict(models=("unet",), impls=(NATIVE, "torch", "jax"), precisions=PRECISIONS, extra=extra, **gpu)
    if name == "smp":
        impls = (NATIVE, "tensorflow", "jax", "torch", NATIVE_COMPILE, "tflite", "tflite-int8", "onnx")
        return dict(models=SMP_MODELS + ("unet",), impls=impls, data=("memory",), rounds=3, **common)
    raise ValueError(f"Unknown preset {name!r}; expected quick, cpu, gpu or smp.")


def plan(models, impls, precisions, data, batch_size, image_size, steps, warmup, tasks=("train", "predict")):
    """The measurements to run: every model x implementation x precision x data variant that makes sense.

    The native PyTorch reference exists for the classic U-Net and SegFormer-B0 and reads data
    from memory; the ``pipeline`` variant (tf.data feeding ``fit``) needs TensorFlow and is timed
    for training only; exported models (TFLite, ONNX) are float32 inference only.
    """
    bad_models = [m for m in models if not is_model(m)]
    if bad_models or not models:
        raise ValueError(f"Unknown model {', '.join(map(repr, bad_models)) or '(none given)'}; expected some of "
                         f"{', '.join(MODELS)}, or <architecture>-<encoder> (keras-seg info lists both).")  # fmt: skip
    _check("implementation", impls, IMPLS)
    _check("precision", precisions, PRECISIONS)
    _check("data", data, DATA)
    cfgs = []
    for model in models:
        for precision in precisions:
            for variant in data:
                for impl in impls:
                    if impl in NATIVES and (not has_native(model) or variant != "memory"):
                        continue
                    exported = impl in EXPORTED
                    if exported and (variant != "memory" or precision != "float32" or "predict" not in tasks):
                        continue
                    cfgs.append(
                        dict(
                            tasks=["predict"] if exported else list(tasks) if variant == "memory" else ["train"],
                            impl=impl,
                            model=model,
                            batch_size=int(batch_size),
                            image_size=int(image_size),
                            precision=precision,
                            data=variant,
                            steps=int(steps),
                            warmup=int(warmup),
                        )
                    )
    return cfgs


def _check(what, values, allowed):
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"Unknown {what} {', '.join(map(repr, bad)) or '(none given)'}; expected some of {', '.join(allowed)}.")


def run(cfgs, timeout=900, progress=print, python=None, path=None, rounds=1):
    """Run each measurement in a child process, ``rounds`` times over; a failed one becomes a row with ``error``.

    A round runs every measurement once, in order, so the implementations alternate (A B C, A B C,
    ...) and a slow patch of a shared machine hits one round rather than one implementation; ratios
    are taken within a round (:func:`with_ratios`) and summarised over rounds (:func:`summary`).
    With ``path``, the results so far are written (:func:`write`) after every measurement, so an
    interrupted run keeps what it measured.
    """
    results, total = [], len(cfgs) * rounds
    for r in range(rounds):
        for i, cfg in enumerate(cfgs, 1):
            n = r * len(cfgs) + i
            label = f"[{n}/{total}] round {r + 1}: {cfg['impl']} {cfg['model']} {cfg['precision']} {cfg['data']}"
            progress(f"{label} ...")
            row = run_one(cfg, timeout=timeout, python=python)
            row["round"] = r
            results.append(row)
            progress(f"{label}: " + (row["error"] if "error" in row else _summary(row)))
            if path:
                write(with_ratios(results), path)
    return with_ratios(results)


def _child_program(cfg):
    """The child's program: the worker, after segmentation_models.pytorch (and so torch and triton) when the
    model is an SMP one. Importing keras_seg imports TensorFlow, and triton imported after TensorFlow
    crashes the process (exit -11), so the SMP import must come before the worker module's own."""
    first = ""
    if smp_reference(cfg["model"]) is not None:
        first = ("import importlib.util\nif importlib.util.find_spec('segmentation_models_pytorch'):\n"
                 "    import segmentation_models_pytorch\n")
    return first + "from keras_seg.bench.worker import main\nmain()\n"


def run_one(cfg, timeout=900, python=None):
    env = dict(os.environ, KERAS_BACKEND=backend_of(cfg["impl"]), TF_CPP_MIN_LOG_LEVEL="2")
    command = [python or sys.executable, "-c", _child_program(cfg), json.dumps(cfg)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(cfg, error=f"timed out after {timeout} s")
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            row = json.loads(line[len("BENCH_RESULT "):])
            row["process_s"] = time.perf_counter() - start
            return row
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return dict(cfg, error=f"exit {done.returncode}: {tail[0][:300]}")


def _summary(row):
    parts = []
    if "train" in row:
        parts.append(f"train {row['train']['median_step_s'] * 1000:.0f} ms/step")
    if "predict" in row:
        parts.append(f"predict {row['predict']['latency_ms']:.0f} ms/image")
    return ", ".join(parts)


def _key(row):
    return row["model"], row["batch_size"], row["image_size"], row["precision"], row.get("round", 0)


def with_ratios(results):
    """Add ``train_vs_native`` / ``predict_vs_native`` (time ratios) where the native eager reference was timed
    in the same setting and round."""
    native = {_key(r): r for r in results if r["impl"] == NATIVE and "error" not in r}
    for row in results:
        ref = native.get(_key(row))
        if ref is None or "error" in row:
            continue
        if "train" in row and "train" in ref:
            row["train_vs_native"] = row["train"]["median_step_s"] / ref["train"]["median_step_s"]
        if "predict" in row and "predict" in ref:
            row["predict_vs_native"] = row["predict"]["latency_ms"] / ref["predict"]["latency_ms"]
            row["predict_throughput_vs_native"] = ref["predict"]["median_step_s"] / row["predict"]["median_step_s"] * (
                row["batch_size"] / ref["batch_size"]
            )
    return results


def _fmt(value, spec, unit=""):
    return "–" if value is None else format(value, spec) + unit


def markdown(results):
    """A markdown table of the training and inference figures, one row per measurement."""
    lines = [
        "| model | implementation | precision | data | batch × size | train step (median) | images/s | "
        "× native | first step | predict 1 image | images/s (batch) | × native | peak memory |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        head = f"| {r['model']} | {r['impl']} | {r['precision']} | {r['data']} | {r['batch_size']} × {r['image_size']}² |"
        if r.get("round"):
            head = head.replace(f"| {r['model']} |", f"| {r['model']} (round {r['round'] + 1}) |", 1)
        if "error" in r:
            lines.append(head + f" not measured: {r['error']} |||||||||")
            continue
        train, pred = r.get("train", {}), r.get("predict", {})
        memory = r.get("device_peak_mb") or r.get("host_peak_mb")
        where = "GPU" if r.get("device_peak_mb") else "RSS"
        lines.append(
            head
            + f" {_fmt(train.get('median_step_s') and train['median_step_s'] * 1000, '.0f', ' ms')}"
            + f" | {_fmt(train.get('images_per_s'), '.1f')} | {_fmt(r.get('train_vs_native'), '.2f')}"
            + f" | {_fmt(train.get('first_step_s'), '.1f', ' s')}"
            + f" | {_fmt(pred.get('latency_ms'), '.1f', ' ms')} | {_fmt(pred.get('images_per_s'), '.1f')}"
            + f" | {_fmt(r.get('predict_vs_native'), '.2f')} | {f'{memory:,.0f} MB {where}' if memory else '–'} |"
        )
    devices = sorted({r["device"] for r in results if r.get("device")})
    lines.append("")
    lines.append(f"Device: {'; '.join(devices) or 'unknown'}. × native = time / native PyTorch time (below 1: faster).")
    return "\n".join(lines)


SUMMARISED = {"train_vs_native": "train × native", "predict_vs_native": "predict × native"}


def summary(results):
    """Per setting (model, implementation, precision, data, batch, size): each ratio's median over the rounds,
    with its spread (min and max) and the number of rounds it was measured in."""
    groups = {}
    for r in results:
        if "error" in r:
            continue
        key = (r["model"], r["impl"], r["precision"], r["data"], r["batch_size"], r["image_size"])
        groups.setdefault(key, []).append(r)
    out = []
    for (model, impl, precision, data, batch, size), rows in groups.items():
        entry = dict(model=model, impl=impl, precision=precision, data=data, batch_size=batch, image_size=size,
                     rounds=len(rows))  # fmt: skip
        for name, values in (("train_ms", [r["train"]["median_step_s"] * 1000 for r in rows if "train" in r]),
                             ("predict_ms", [r["predict"]["latency_ms"] for r in rows if "predict" in r]),
                             *((k, [r[k] for r in rows if k in r]) for k in SUMMARISED)):  # fmt: skip
            if values:
                entry[name] = {"median": _median(values), "min": min(values), "max": max(values), "n": len(values)}
        out.append(entry)
    return out


def _median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _spread(stat, spec, unit=""):
    if not stat:
        return "–"
    text = format(stat["median"], spec) + unit
    return text if stat["n"] == 1 else f"{text} ({format(stat['min'], spec)}–{format(stat['max'], spec)})"


def summary_markdown(entries, machine=None):
    """The medians over rounds with their spread: one row per setting."""
    lines = ["| model | implementation | precision | rounds | train step (median, min–max) | train × native | "
             "predict 1 image | predict × native |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for e in entries:
        lines.append(f"| {e['model']} | {e['impl']} | {e['precision']} | {e['rounds']} | "
                     f"{_spread(e.get('train_ms'), '.0f', ' ms')} | {_spread(e.get('train_vs_native'), '.2f')} | "
                     f"{_spread(e.get('predict_ms'), '.1f', ' ms')} | {_spread(e.get('predict_vs_native'), '.2f')} |")  # fmt: skip
    if machine:
        lines += ["", machine_line(machine)]
    return "\n".join(lines)


def machine_line(machine):
    flags = ", ".join(machine.get("flags") or ["none of " + "/".join(("avx2", "avx512f", "amx_tile"))])
    return (f"CPU: {machine['model']}, {machine['cores']} cores, vector flags: {flags}. × native = time / "
            "native PyTorch eager time in the same round (below 1: faster); medians over rounds, min–max in brackets.")


def write(results, path):
    """``path`` (JSON: ``machine``, every ``rows`` figure, the ``summary`` over rounds) and ``path`` with ``.md``."""
    from keras_seg.utils.io import atomic_path

    machine = cpu_info()
    entries = summary(results)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump({"machine": machine, "rows": results, "summary": entries}, f, indent=1)
    md = os.path.splitext(path)[0] + ".md"
    with atomic_path(md) as tmp, open(tmp, "w") as f:
        f.write(markdown(results) + "\n\n" + machine_line(machine) + "\n\n## Over rounds\n\n"
                + summary_markdown(entries) + "\n")  # fmt: skip
    return md
