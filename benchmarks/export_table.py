"""The README's export table (issue 5): architecture x encoder x format x quantization, checked in the runtime.

    python benchmarks/export_table.py                                  # every architecture, TensorFlow backend
    python benchmarks/export_table.py --archs unet fcn8s --epochs 2 --out /tmp/export_table.json

Each architecture is built at ``--image-size`` (64) and trained from scratch (nothing is downloaded) for
``--epochs`` on ``--train-images`` images of the synthetic ``shapes`` data (keras_seg.training.train:
CE + Dice, AdamW, cosine). It is then exported with ``keras_seg.export.export`` to a SavedModel (float32),
TFLite (float32, float16, dynamic, int8) and ONNX (float32, int8), and every artifact runs in its runtime
(TensorFlow, LiteRT, onnxruntime) on ``--num-verify`` images of the ``val`` split, with their masks. Float
rows export float32 images -> logits; int8 rows uint8 pixels -> uint8 labels, calibrated on 100 ``train``
images. A combination that fails to export is a row that says why. Results go to ``--out`` (JSON, every
report field) and beside it as markdown, rewritten after every row: an interrupted run keeps its rows.

Two settings suit so short a run at 64 px. Every BatchNormalization trains with momentum 0.9:
keras.applications' MobileNets keep 0.999, whose moving statistics are still mostly their initial values
after a few hundred steps (the model then predicts background in inference mode). Below 256 px the
DeepLabs use atrous rates (1, 2, 3): the paper's (6, 12, 18) suit 33 x 33 stride-16 features; on 4 x 4
ones they only add padding (DeepLabV3 trains 9x slower in TensorFlow).

Columns (from :class:`keras_seg.export.ExportReport`):
  Agreement     share of pixels whose label equals the Keras model's (%)
  max|Δ|/scale  max |exported - Keras logits| / max |Keras logits| (float outputs only)
  mIoU Keras    mean IoU of the Keras model's labels against the true masks
  mIoU export   the same for the exported artifact
  Size          the artifact's bytes (a SavedModel directory's total)
  ms / image    median latency in the runtime, batch 1 (the Keras model's is in the models table)
  Target        the issue's target: float32 (every format): agreement >= 99.9 % and max|Δ| <= 1e-4 x
                scale; float16: agreement >= 99.5 %; int8: agreement >= 98 %, mIoU at most 1 point below
                the Keras model's, and size <= 30 % of the float32 artifact of the same format (TFLite, ONNX).
                Dynamic quantization has no target ("—").
"""

import argparse
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

from keras_seg import data, models  # noqa: E402
from keras_seg.export import export  # noqa: E402
from keras_seg.export.convert import _layers as all_layers  # noqa: E402  (every layer, nested models too)
from keras_seg.training import train  # noqa: E402


def rates(shape):  # see the module docstring
    return None if min(shape[:2]) >= 256 else (1, 2, 3)


ARCHS = {  # name: (model, True if it takes --encoder, builder(num_classes, input_shape, encoder))
    "unet": ("U-Net", False, lambda k, s, e: models.UNet(k, widths=(16, 32, 64, 128), input_shape=s)),
    "unet-enc": ("U-Net", True, lambda k, s, e: models.UNet(k, encoder=e, input_shape=s)),
    "fcn8s": ("FCN-8s", True, lambda k, s, e: models.FCN(k, encoder=e, variant="8s", input_shape=s)),
    "deeplabv3": ("DeepLabV3", True,
                  lambda k, s, e: models.DeepLabV3(k, encoder=e, input_shape=s, atrous_rates=rates(s))),
    "deeplabv3plus": ("DeepLabV3+", True,
                      lambda k, s, e: models.DeepLabV3Plus(k, encoder=e, input_shape=s, atrous_rates=rates(s))),
    "unetplusplus": ("UNet++", True, lambda k, s, e: models.UNetPlusPlus(k, encoder=e, input_shape=s)),
    "fpn": ("FPN", True, lambda k, s, e: models.FPN(k, encoder=e, input_shape=s)),
    "pspnet": ("PSPNet", True, lambda k, s, e: models.PSPNet(k, encoder=e, input_shape=s)),
    "linknet": ("LinkNet", True, lambda k, s, e: models.LinkNet(k, encoder=e, input_shape=s)),
    "manet": ("MA-Net", True, lambda k, s, e: models.MANet(k, encoder=e, input_shape=s)),
    "pan": ("PAN", True, lambda k, s, e: models.PAN(k, encoder=e, input_shape=s)),
    "upernet": ("UPerNet", True, lambda k, s, e: models.UPerNet(k, encoder=e, input_shape=s)),
    "lraspp": ("LR-ASPP", True, lambda k, s, e: models.LRASPP(k, encoder=e, input_shape=s)),
}
FLOAT, INT8 = {"output": "logits"}, {"output": "labels", "input_dtype": "uint8"}
EXPORTS = [  # (format, quantize, export arguments)
    ("saved_model", None, FLOAT), ("tflite", None, FLOAT), ("tflite", "float16", FLOAT),
    ("tflite", "dynamic", FLOAT), ("tflite", "int8", INT8), ("onnx", None, FLOAT), ("onnx", "int8", INT8),
]  # fmt: skip
PACKAGES = ("keras", "tensorflow", "ai-edge-litert", "onnxruntime", "tf2onnx", "onnx", "numpy", "keras-seg")


def check_target(row, rows):
    """``(meets, why)`` for the issue's target of this row's quantization; ``meets`` is None without a target."""
    if row.get("error"):
        return False, "export failed"
    r, q, checks = row["report"], row["quantize"], []
    if q is None:
        checks = [(r["label_agreement"] >= 0.999, f"agreement {100 * r['label_agreement']:.3f} % < 99.9 %"),
                  (r["relative_diff"] <= 1e-4, f"max|Δ|/scale {r['relative_diff']:.1e} > 1e-4")]  # fmt: skip
    elif q == "float16":
        checks = [(r["label_agreement"] >= 0.995, f"agreement {100 * r['label_agreement']:.3f} % < 99.5 %")]
    elif q == "int8":
        drop = r["miou_keras"] - r["miou_export"]
        base = next((o for o in rows if o["arch"] == row["arch"] and o["format"] == row["format"]
                     and o["quantize"] is None and not o.get("error")), None)  # fmt: skip
        share = r["file_size"] / base["report"]["file_size"] if base else None
        checks = [(r["label_agreement"] >= 0.98, f"agreement {100 * r['label_agreement']:.2f} % < 98 %"),
                  (drop <= 0.01, f"mIoU {100 * drop:.1f} points below Keras"),
                  (share is not None and share <= 0.3,
                   f"size {100 * share:.1f} % of float32" if share else "no float32 size to compare")]  # fmt: skip
    else:
        return None, "no target"
    failed = [why for ok, why in checks if not ok]
    return not failed, "; ".join(failed)


def run_architecture(name, args, train_ds, val, calibration, artifacts, rows, models_info, save):
    title, takes_encoder, build = ARCHS[name]
    encoder = args.encoder if takes_encoder else None
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    size, start, model, failure = args.image_size, time.time(), None, None
    print(f"\n== {name}: {title}, encoder {encoder or 'classic'}", flush=True)
    try:
        model = build(len(data.SHAPES_CLASSES), (size, size, 3), encoder)
        for layer in all_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9  # see the module docstring
        train(model, train_ds, epochs=args.epochs, learning_rate=args.learning_rate,
              warmup_epochs=1 if args.epochs > 2 else 0, verbose=2)  # fmt: skip
    except Exception as error:  # noqa: BLE001 - every export of this model becomes a row that says why
        failure = f"building or training failed: {type(error).__name__}: {error}"
    info = {"arch": name, "model": title, "encoder": encoder, "parameters": model.count_params() if model else None,
            "train_seconds": round(time.time() - start, 1), "epochs": args.epochs, "train_images": args.train_images}
    models_info.append(info)
    for format, quantize, kwargs in EXPORTS:
        ext = {"tflite": ".tflite", "onnx": ".onnx"}.get(format, "")
        path = os.path.join(artifacts, f"{name}_{quantize or 'float32'}_{format}{ext}")
        row = {"arch": name, "model": title, "encoder": encoder, "format": format, "quantize": quantize,
               "output": kwargs["output"], "input_dtype": kwargs.get("input_dtype", "float32")}  # fmt: skip
        start = time.time()
        try:
            if failure:
                raise RuntimeError(failure)
            report = export(model, path, format=format, input_size=size, quantize=quantize,
                            class_names=list(data.SHAPES_CLASSES), verify_data=val, num_verify=len(val[0]),
                            representative_data=calibration if quantize == "int8" else None,
                            latency_runs=args.latency_runs, quiet=True, **kwargs)  # fmt: skip
            row["report"] = report.to_dict()
            info.setdefault("keras_latency_ms", report.keras_latency_ms)
            info.setdefault("keras_miou", report.miou_keras)
        except Exception as error:  # noqa: BLE001 - a failed combination is a row that says why
            row["error"] = failure or f"{type(error).__name__}: {error}"
        row["seconds"] = round(time.time() - start, 1)
        rows.append(row)
        row["meets_target"], row["target_detail"] = check_target(row, rows)
        print(" | ".join(table_row(row)), flush=True)
        save()


def table_row(row):
    quant = row["quantize"] or "float32"
    io = f"{'u8' if row['input_dtype'] == 'uint8' else 'f32'} → {row['output']}"
    head = [row["model"], row["encoder"] or "classic", row["format"], quant, io]
    if row.get("error"):
        return head + ["—"] * 6 + ["failed: " + row["error"].strip().splitlines()[0][:160].replace("|", "/")]
    r = row["report"]
    rel = "—" if r["relative_diff"] is None else f"{r['relative_diff']:.1e}"
    target = {True: "yes", False: f"**no**: {row['target_detail']}", None: "—"}[row["meets_target"]]
    return head + [f"{100 * r['label_agreement']:.3f} %", rel, f"{r['miou_keras']:.3f}", f"{r['miou_export']:.3f}",
                   f"{r['file_size'] / 1e6:.2f} MB", f"{r['latency_ms']:.2f}", target]  # fmt: skip


def markdown(result):
    s = result["settings"]
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [f"# Export table ({result['date']})", "", f"Machine: {result['machine']}. Versions: {versions}.",
             f"Trained {s['epochs']} epoch(s) on {s['train_images']} shapes images of {s['image_size']} px (batch "
             f"{s['batch_size']}); verified on {s['num_verify']} val images with masks; latency: median of "
             f"{s['latency_runs']} runs, batch 1.", "",
             "| Model | Encoder | Params | Train s | Keras mIoU | Keras ms / image |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for m in result["models"]:
        cells = [m["model"], m["encoder"] or "classic", m["parameters"], m["train_seconds"], m.get("keras_miou"),
                 m.get("keras_latency_ms")]  # fmt: skip
        formats = ["{}", "{}", "{:,}", "{:.0f}", "{:.3f}", "{:.2f}"]
        lines.append("| " + " | ".join("—" if c is None else f.format(c) for f, c in zip(formats, cells)) + " |")
    header = ["Model", "Encoder", "Format", "Quant.", "Input → output", "Agreement", "max\\|Δ\\|/scale",
              "mIoU Keras", "mIoU export", "Size", "ms / image", "Target"]  # fmt: skip
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(table_row(row)) + " |" for row in result["rows"]]
    notes = [f"- {r['model']} {r['encoder'] or 'classic'} {r['format']} {r['quantize'] or 'float32'}: {n}"
             for r in result["rows"] for n in r.get("report", {}).get("notes", [])]  # fmt: skip
    return "\n".join(lines + (["", "Notes from the export reports:"] + notes if notes else [])) + "\n"


def machine():
    """The CPU model, its logical CPUs and vector flags (keras_seg.bench.worker.cpu_info), as one line."""
    from keras_seg.bench.worker import cpu_info

    info = cpu_info()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    flags = ", ".join(info["flags"]) or "no AVX2 / AVX-512 / AMX"
    return (f"{info['model']}, {info['cores']} logical CPUs" + (f" ({usable} usable)" if usable != info["cores"] else "")
            + f", vector flags: {flags}")


def version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", choices=sorted(ARCHS), default=list(ARCHS))
    parser.add_argument("--encoder", default="mobilenetv3small", help="encoder of every model but the classic U-Net")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-images", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--num-verify", type=int, default=64, help="val images the artifacts are compared on")
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--artifacts", help="keep the exported files here (default: a temporary folder)")
    parser.add_argument("--out", default="benchmarks/results/export_table.json")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        parser.error(f"run under the TensorFlow backend (KERAS_BACKEND={keras.backend.backend()})")
    size, md_path = args.image_size, os.path.splitext(args.out)[0] + ".md"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    train_ds = data.prepare(data.shapes("train", args.train_images, size), args.batch_size, shuffle=args.train_images)
    val = data.shapes_arrays("val", args.num_verify, size)  # (uint8 images, masks)
    calibration = data.shapes_arrays("train", 100, size)[0]
    settings = {k: getattr(args, k) for k in ("archs", "encoder", "image_size", "epochs", "train_images", "batch_size",
                                              "learning_rate", "num_verify", "latency_runs")}  # fmt: skip
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "backend": "tensorflow",
              "versions": {p: version(p) for p in PACKAGES}, "settings": settings, "models": [], "rows": []}

    def save():
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        with open(md_path, "w") as f:
            f.write(markdown(result))

    artifacts = args.artifacts or tempfile.mkdtemp(prefix="export_table_")
    os.makedirs(artifacts, exist_ok=True)
    try:
        for name in args.archs:
            run_architecture(name, args, train_ds, val, calibration, artifacts, result["rows"], result["models"], save)
    finally:
        if not args.artifacts:
            shutil.rmtree(artifacts, ignore_errors=True)
    print("\n" + markdown(result) + f"\nwrote {args.out} and {md_path}")


if __name__ == "__main__":
    main()
