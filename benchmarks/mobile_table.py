"""The mobile table (issue 15): LR-ASPP and DeepLabV3+ on MobileNetV3-Large as phones run them.

    python benchmarks/mobile_table.py                        # train both, export, measure (about 30 min, 2 cores)
    python benchmarks/mobile_table.py --epochs 1 --sizes 257 --out /tmp/mobile.json

Each model is trained from scratch (nothing is downloaded) on the synthetic ``shapes`` data at
``--train-size`` px for ``--epochs`` (keras_seg.training.train: CE + Dice, AdamW, cosine; every
BatchNormalization with momentum 0.9, see benchmarks/export_table.py), then exported at each of
``--sizes`` (fully convolutional: the same weights at 257 x 257 and 512 x 512) as TFLite float32
(float32 pixels in), float16 (float32 in) and int8 (uint8 pixels in, calibrated on 100 train
images), always with the default output (logits and MediaPipe's SOFTMAX metadata), i.e. the file
a phone app hands to MediaPipe's ImageSegmenter. For each file:

  Size          bytes of the .tflite
  CPU ms        LiteRT on this machine's CPU with ``--threads`` threads (2), batch 1, median of
                ``--latency-runs``: not a phone figure
  Agreement     share of pixels whose LiteRT label equals the Keras model's, on ``--num-verify``
                shapes val images at that size
  MediaPipe     share of pixels where MediaPipe's ImageSegmenter category mask equals the Keras
                labels (when mediapipe is installed)
  GPU delegate  keras_seg.export.gpu_delegate's verdict (the delegate's op list, versions, rank <= 4,
                types; int8 checked as the delegate's quantized mode)

Beside it, the published reference: TensorFlow Lite's DeepLabv3 (MobileNetV2, 257 x 257) is 2.7 MB
and runs in 37 ms on a Pixel 3 CPU with 4 threads (tensorflow.org/lite/examples/segmentation) -
a phone figure, quoted, not measured here.
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from export_table import all_layers, machine, version  # noqa: E402
from keras_seg import data, models  # noqa: E402
from keras_seg.export import export, gpu_delegate, mediapipe_segment  # noqa: E402
from keras_seg.export import verify as V  # noqa: E402
from keras_seg.inference import predict_mask  # noqa: E402
from keras_seg.training import train  # noqa: E402

MODELS = {
    "lraspp": ("LR-ASPP", lambda k, size: models.LRASPP(k, encoder="mobilenetv3large")),
    "deeplabv3plus": ("DeepLabV3+", lambda k, size: models.DeepLabV3Plus(
        k, encoder="mobilenetv3large", atrous_rates=None if size >= 256 else (1, 2, 3))),
}  # fmt: skip
VARIANTS = [("float32", None, "float32"), ("float16", "float16", "float32"), ("int8", "int8", "uint8")]
PACKAGES = ("keras", "tensorflow", "ai-edge-litert", "mediapipe", "numpy", "keras-seg")
REFERENCE = ("TFLite DeepLabv3 (MobileNetV2), published", "257×257", "2.7 MB", "37 ms on a Pixel 3 CPU, 4 threads")


def mediapipe_agreement(path, images, keras_labels):
    """Share of pixels where MediaPipe's ImageSegmenter (in its own process) gives the Keras label; None without it."""
    try:
        result = mediapipe_segment(path, images)
    except ImportError:
        return None
    return float(np.mean(result.category_masks == keras_labels))


def cpu_latency_ms(path, input_dtype, size, threads, runs):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3)).astype(input_dtype)

    def once():
        interpreter.set_tensor(source["index"], image)
        interpreter.invoke()

    return V.median_ms(once, runs)


def run_model(name, args, result, save, artifacts):
    title, build = MODELS[name]
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    start = time.time()
    model = build(len(data.SHAPES_CLASSES), args.train_size)
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    train_ds = data.prepare(data.shapes("train", args.train_images, args.train_size), args.batch_size,
                            shuffle=args.train_images)  # fmt: skip
    cached = os.path.join(args.models_dir, f"{name}_{args.train_size}px_{args.epochs}ep.keras") if args.models_dir else None
    seconds = None
    if cached and os.path.exists(cached):
        model = keras.saving.load_model(cached)
        if os.path.exists(cached + ".json"):  # the training time of the run that trained it
            with open(cached + ".json") as f:
                seconds = json.load(f).get("train_seconds")
        print(f"loaded {cached} (trained earlier)")
    else:
        train(model, train_ds, epochs=args.epochs, learning_rate=args.learning_rate, warmup_epochs=1, verbose=2)
        seconds = round(time.time() - start)
        if cached:
            os.makedirs(args.models_dir, exist_ok=True)
            model.save(cached)
            with open(cached + ".json", "w") as f:
                json.dump({"train_seconds": seconds}, f)
    info = {"model": name, "title": title, "parameters": model.count_params(), "train_seconds": seconds}
    result["models"].append(info)
    for size in args.sizes:
        images, masks = data.shapes_arrays("val", args.num_verify, size, seed=11)
        # The model on the image as it is (no padding to the stride, unlike predict_mask's default): what the
        # TFLite file computes, so the columns compare one network.
        keras_labels = predict_mask(model, images.astype("float32"), pad_to=None)
        info[f"keras_miou_{size}"] = float(_miou(keras_labels, masks))
        calibration = data.shapes_arrays("train", 100, size, seed=12)[0]
        for variant, quantize, input_dtype in VARIANTS:
            path = os.path.join(artifacts, f"{name}_{size}_{variant}.tflite")
            row = {"model": name, "title": title, "size": size, "variant": variant, "input_dtype": input_dtype}
            try:
                report = export(model, path, input_size=size, quantize=quantize, input_dtype=input_dtype,
                                class_names=list(data.SHAPES_CLASSES), verify_data=(images, masks),
                                representative_data=calibration if quantize == "int8" else None,
                                latency_runs=3, quiet=True)  # fmt: skip
                row.update(file_size=report.file_size, agreement=report.label_agreement, miou=report.miou_export,
                           gpu=gpu_delegate.summary(report.num_ops, report.gpu_issues),
                           gpu_compatible=report.gpu_compatible, mediapipe_metadata=report.mediapipe,
                           cpu_ms=cpu_latency_ms(path, input_dtype, size, args.threads, args.latency_runs),
                           mediapipe=mediapipe_agreement(path, images, keras_labels), notes=report.notes)  # fmt: skip
            except Exception as error:  # noqa: BLE001 - a failed combination is a row that says why
                row["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
            result["rows"].append(row)
            print(" | ".join(table_row(row)), flush=True)
            save()


def _miou(pred, truth, k=len(data.SHAPES_CLASSES)):
    ious = []
    for c in range(k):
        union = np.sum((pred == c) | (truth == c))
        if union:
            ious.append(np.sum((pred == c) & (truth == c)) / union)
    return np.mean(ious)


def table_row(row):
    head = [row["title"], f"{row['size']}×{row['size']}", row["variant"], "uint8" if row["input_dtype"] == "uint8" else "float32"]
    if row.get("error"):
        return head + ["—"] * 5 + ["failed: " + row["error"].replace("|", "/")]
    mp = "—" if row["mediapipe"] is None else f"{100 * row['mediapipe']:.2f} %"
    gpu = "all ops" if row["gpu_compatible"] else "**" + row["gpu"] + "**"
    return head + [f"{row['file_size'] / 1e6:.2f} MB", f"{row['cpu_ms']:.1f}", f"{100 * row['agreement']:.2f} %",
                   f"{row['miou']:.3f}", mp, gpu]  # fmt: skip


def markdown(result):
    s = result["settings"]
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    lines = [f"# Mobile table ({result['date']})", "", f"Machine: {result['machine']}. Versions: {versions}.",
             f"Trained {s['epochs']} epochs on {s['train_images']} shapes images of {s['train_size']} px (batch "
             f"{s['batch_size']}); verified on {s['num_verify']} val images at each size; CPU latency: LiteRT, "
             f"{s['threads']} threads, batch 1, median of {s['latency_runs']} runs.", "",
             "| Model | Params | Train s | " + " | ".join(f"Keras mIoU {z}" for z in s["sizes"]) + " |",
             "|---|---|---|" + "---|" * len(s["sizes"])]  # fmt: skip
    for m in result["models"]:
        mious = " | ".join(f"{m.get(f'keras_miou_{z}', float('nan')):.3f}" for z in s["sizes"])
        seconds = "–" if m["train_seconds"] is None else m["train_seconds"]
        lines.append(f"| {m['title']} (MobileNetV3-Large) | {m['parameters']:,} | {seconds} | {mious} |")
    header = ["Model", "Input", "Weights", "Pixels in", "Size", "CPU ms", "Agreement", "mIoU", "MediaPipe", "GPU delegate"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(table_row(row)) + " |" for row in result["rows"]]
    name, size, file_size, latency = REFERENCE
    lines += ["", f"Reference (quoted, not measured here): {name}, {size}, {file_size}, {latency}."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[257, 512])
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train-images", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--num-verify", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-runs", type=int, default=15)
    parser.add_argument("--models-dir", help="keep the trained models here and reuse them on the next run")
    parser.add_argument("--out", default="benchmarks/results/mobile_table.json")
    args = parser.parse_args(argv)
    md_path = os.path.splitext(args.out)[0] + ".md"
    settings = {k: getattr(args, k) for k in ("models", "sizes", "train_size", "epochs", "train_images", "batch_size",
                                              "learning_rate", "num_verify", "threads", "latency_runs")}  # fmt: skip
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "versions": {p: version(p) for p in PACKAGES},
              "settings": settings, "models": [], "rows": []}  # fmt: skip

    def save():
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        with open(md_path, "w") as f:
            f.write(markdown(result))

    with tempfile.TemporaryDirectory(prefix="mobile_table_") as artifacts:
        for name in args.models:
            run_model(name, args, result, save, artifacts)
    print("\n" + markdown(result) + f"\nwrote {args.out} and {md_path}")


if __name__ == "__main__":
    main()
