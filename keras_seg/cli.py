"""The ``keras-seg`` command: ``info``, ``train``, ``evaluate``, ``predict``, ``export``, ``convert``, ``bench``.

Errors a user can cause (a missing folder, a mask without an image, an unknown
encoder) print one line, ``keras-seg: error: ...``, and exit with status 1; bad
arguments exit with 2 and the usage. ``KERAS_SEG_DEBUG=1`` shows the traceback.
Every command takes ``--backend`` (it re-runs itself in a child process with
``KERAS_BACKEND`` set, because Keras fixes its backend at import); ``bench`` starts a child
per backend itself.
"""

import argparse
import glob
import importlib.metadata
import json
import os
import sys
import time
import warnings

BACKENDS = ("tensorflow", "jax", "torch")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
EXPORT_FORMATS = ("saved_model", "tflite", "onnx")  # keras_seg.export.FORMATS (not imported: it loads Keras)
EXPORT_OUTPUTS = ("logits", "probabilities", "labels")
ARCHITECTURES = ("unet", "fcn", "unetplusplus", "fpn", "pspnet", "linknet", "manet", "pan", "upernet", "deeplabv3",
                 "deeplabv3plus", "segformer", "lraspp")  # fmt: skip  # keras_seg.models.ARCHITECTURES (not imported here)


def _version():
    from keras_seg.version import __version__

    return __version__


# ---------------------------------------------------------------------------------------------- parser


def _positive_int(text):
    """argparse type: an int >= 1 (a bad value exits with status 2 and the usage)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _int_list(text):
    """argparse type: comma-separated positive ints, e.g. ``16,32,64``."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of positive integers separated by commas, e.g. 16,32,64")
    return values


def _class_names(text):
    """argparse type: comma-separated class names, index 0 first; each non-empty and used once."""
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty class name; give one name per class, e.g. background,cat,dog")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{text!r} names {', '.join(repeated)} more than once; each class needs its own name")
    return names


def _image_size(text):
    """argparse type: ``"256,320"`` -> (256, 320); ``"256"`` -> (256, 256)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not H,W or one number of pixels, e.g. 256,256")
    return values * 2 if len(values) == 1 else values


def _architecture(text):
    key = text.lower().replace("-", "").replace("_", "").replace("++", "plusplus")
    if key not in ARCHITECTURES:
        raise argparse.ArgumentTypeError(f"{text!r} is not an architecture; choose from {', '.join(ARCHITECTURES)}")
    return key


def _add_data_args(p, split):
    g = p.add_argument_group("data")
    g.add_argument("--data", default="shapes", choices=("shapes", "folder", "voc", "pets"), help="dataset (default: shapes)")
    g.add_argument("--root", help="voc: the VOC2012 folder")
    g.add_argument("--images", help="folder: the training image folder")
    g.add_argument("--masks", help="folder: the training mask folder (class-index or palette PNGs)")
    g.add_argument("--val-images", help="folder: validation images (default: --val-fraction of --images)")
    g.add_argument("--val-masks", help="folder: validation masks")
    g.add_argument("--val-fraction", type=float, default=0.1, help="folder: share held out for validation (0.1)")
    g.add_argument("--classes", type=_class_names, help="folder: comma-separated class names, index 0 first")
    g.add_argument("--ignore-index", type=int, help="folder: the void label of the masks, e.g. 255")
    g.add_argument("--data-dir", help="pets: tensorflow-datasets data folder")
    g.add_argument("--skip-corrupt", action="store_true", help="folder, voc: leave out unreadable images / masks")
    g.add_argument("--num-train", type=_positive_int, default=1024, help="shapes: training images (1024)")
    g.add_argument("--num-val", type=_positive_int, default=128, help="shapes: validation images (128)")
    g.add_argument("--split", default=split, help=f"the split to read (default: {split})")
    g.add_argument("--seed", type=int, default=0, help="data and initialisation seed (0)")


def _add_inference_args(p):
    g = p.add_argument_group("inference")
    g.add_argument("--sliding-window", type=_positive_int, metavar="PIXELS", help="predict by windows of this size")
    g.add_argument("--overlap", type=float, default=0.5, help="window overlap, in [0, 1) (0.5)")
    g.add_argument("--blend", default="gaussian", choices=("gaussian", "uniform"), help="window blending (gaussian)")
    g.add_argument("--tta", action="store_true", help="test-time augmentation: average with the horizontal flip")
    g.add_argument("--tta-scales", default="1", help="with --tta, comma-separated scales, e.g. 0.75,1,1.25 (1)")


def _inference_options(args):
    """``(sliding_window, tta)`` configs for keras_seg.inference.predict_mask from the command line."""
    from keras_seg import inference

    window = None
    if args.sliding_window:
        window = inference.sliding_window(args.sliding_window, overlap=args.overlap, blend=args.blend)
    tta = None
    if args.tta:
        try:
            scales = tuple(float(s) for s in args.tta_scales.split(","))
        except ValueError:
            raise ValueError(f"--tta-scales {args.tta_scales!r} must be numbers separated by commas, e.g. 0.75,1,1.25")
        tta = inference.tta(flips=("horizontal",), scales=scales)
    return window, tta


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-seg",
        description="Semantic segmentation with Keras 3 on TensorFlow, JAX or PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"keras-seg {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    backend = argparse.ArgumentParser(add_help=False)
    backend.add_argument(
        "--backend", choices=BACKENDS, help="Keras backend (default: $KERAS_BACKEND, else Keras' own default)"
    )

    sub.add_parser("info", parents=[backend], help="show the Keras backend in use, library versions and devices")

    t = sub.add_parser("train", parents=[backend], help="train a model and write checkpoints, log and pictures")
    m = t.add_argument_group("model")
    m.add_argument("--model", default="unet", type=_architecture, help=f"{', '.join(ARCHITECTURES)} (default: unet)")
    m.add_argument("--encoder", help="encoder name (keras-seg info lists them; default: the architecture's own)")
    m.add_argument("--encoder-weights", help="imagenet or a .weights.h5 path (default: random init)")
    m.add_argument("--widths", type=_int_list, default=[16, 32, 64, 128],
                   help="classic U-Net (no --encoder) widths (16,32,64,128)")  # fmt: skip
    m.add_argument("--freeze-encoder-epochs", type=int, default=0, help="train only the decoder at first (0)")
    _add_data_args(t, "train")
    f = t.add_argument_group("training")
    f.add_argument("--image-size", type=_positive_int, default=64, help="training crop / resize size in pixels (64)")
    f.add_argument("--batch-size", type=_positive_int, default=16, help="(16)")
    f.add_argument("--epochs", type=_positive_int, default=20, help="(20)")
    f.add_argument("--lr", type=_positive_float, default=3e-3, help="AdamW peak learning rate (3e-3)")
    f.add_argument("--weight-decay", type=float, default=1e-4, help="(1e-4)")
    f.add_argument("--schedule", default="cosine", choices=("cosine", "poly", "constant"), help="(cosine)")
    f.add_argument("--warmup-epochs", type=int, default=1, help="(1)")
    f.add_argument("--loss", default="ce+dice", help="e.g. ce, ce+dice, 0.5*ce+dice, focal+lovasz (ce+dice)")
    f.add_argument("--class-weights", choices=("inverse_frequency", "median_frequency"), help="weight the ce term")
    f.add_argument("--no-augment", action="store_true", help="no flips / scale / rotation / colour jitter")
    f.add_argument("--precision", default="float32", choices=PRECISIONS, help="(float32)")
    f.add_argument("--jit-compile", action="store_true",
                   help="XLA for the training step (Keras turns it off on a CPU-only TensorFlow; there it makes the "
                   "demo U-Net's step about a fifth faster after a compile of about 50 s: worth it for long runs)")  # fmt: skip
    f.add_argument("--patience", type=int, help="early stopping on val mean IoU after this many epochs")
    f.add_argument("--out", default="runs/train", help="output folder (runs/train)")
    f.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    f.add_argument("--overwrite", action="store_true", help="start a new run in an --out that holds one")
    f.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2), help="Keras fit verbosity (2)")
    f.add_argument("--distribute", action="store_true",
                   help="data-parallel on all local GPUs (JAX, TensorFlow; --batch-size is the global batch, a multiple "
                   "of the device count); KERAS_SEG_CPU_DEVICES=N splits the CPU into N devices to try it")  # fmt: skip

    e = sub.add_parser("evaluate", parents=[backend], help="per-class IoU / Dice / precision / recall of a model")
    e.add_argument("model", help="a .keras file or a preset directory (save_to_preset)")
    _add_data_args(e, "val")
    e.add_argument("--image-size", type=int, help="resize to this size (default: each image at its own size)")
    e.add_argument("--batch-size", type=int, default=16)
    e.add_argument("--out", help="folder for report.json and confusion.png (default: beside the model)")
    _add_inference_args(e)

    p = sub.add_parser("predict", parents=[backend], help="label PNGs and colour overlays for images")
    p.add_argument("model", help="a .keras file or a preset directory (save_to_preset)")
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--out", default="predictions", help="output folder (predictions)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (0.5)")
    _add_inference_args(p)

    x = sub.add_parser("export", parents=[backend], help="convert a .keras model to SavedModel, TFLite or ONNX, check it")
    x.add_argument("model", help="a .keras file or a preset directory (save_to_preset)")
    x.add_argument("out", help="the artifact: a SavedModel folder, a .tflite or an .onnx file")
    x.add_argument("--format", choices=EXPORT_FORMATS, help="(default: from OUT: .tflite, .onnx, else saved_model)")
    x.add_argument("--input-size", type=_image_size,
                   help="fixed input size H,W (or one number), e.g. 256,256; TFLite needs one")  # fmt: skip
    x.add_argument("--batch-size", type=int, help="fixed batch size (default: 1 for TFLite, any for the others)")
    x.add_argument("--output", choices=EXPORT_OUTPUTS, help="logits, probabilities or labels (a uint8 label map)")
    x.add_argument("--quantize", choices=("float16", "dynamic", "int8"), help="TFLite: all three; ONNX: dynamic, int8")
    x.add_argument("--input-dtype", default="float32", choices=("float32", "uint8"), help="pixel type taken (float32)")
    x.add_argument("--opset", type=int, help="ONNX opset (17)")
    x.add_argument("--no-verify", action="store_true", help="do not run the artifact and compare it with the model")
    x.add_argument("--no-mediapipe", action="store_true",
                   help="TFLite: leave out MediaPipe's ImageSegmenter metadata (written by default when possible)")  # fmt: skip
    d = x.add_argument_group("calibration and verification data")
    d.add_argument("--calibration", metavar="SOURCE",
                   help="int8 calibration images: shapes, folder, voc, pets (see below) or a folder of images")  # fmt: skip
    d.add_argument("--num-calibration", type=int, default=100, help="calibration images (100)")
    d.add_argument("--verify-data", metavar="SOURCE",
                   help="images to compare on, as --calibration (default: the calibration data or synthetic)")  # fmt: skip
    d.add_argument("--num-verify", type=int, default=32, help="verification images (32)")
    d.add_argument("--split", default="val", help="the split calibration images come from (val)")
    d.add_argument("--verify-split", help="the split verification images come from (default: --split)")
    d.add_argument("--root", help="voc: the VOC2012 folder")
    d.add_argument("--images", help="folder: the image folder")
    d.add_argument("--masks", help="folder: the mask folder")
    d.add_argument("--val-fraction", type=float, default=0.1, help="folder: share held out as the val split (0.1)")
    d.add_argument("--classes", type=_class_names,
                   help="comma-separated class names, index 0 first (default: those stored in MODEL)")  # fmt: skip
    d.add_argument("--ignore-index", type=int, help="folder: the void label of the masks")
    d.add_argument("--data-dir", help="pets: tensorflow-datasets data folder")
    d.add_argument("--seed", type=int, default=0, help="shapes: the data seed (0)")

    c = sub.add_parser("convert", parents=[backend],
                       help="a segmentation_models.pytorch or torchvision checkpoint into a keras_seg .keras model")  # fmt: skip
    c.add_argument("source", help="an SMP save_pretrained folder, or a weights file (.safetensors, .pth, .bin)")
    c.add_argument("out", help="the .keras file to write")
    c.add_argument("--from", dest="source_kind", choices=("smp", "torchvision"),
                   help="(default: smp for a folder with config.json, else recognised from the tensors)")  # fmt: skip
    c.add_argument("--arch", help="the architecture: an SMP class (Unet, FPN, ...) or a torchvision builder "
                   "(deeplabv3_resnet50, ...); needed for a bare SMP state dict")  # fmt: skip
    c.add_argument("--encoder", help="SMP: the encoder of a bare state dict (resnet34, ...)")
    c.add_argument("--classes", type=_class_names, help="comma-separated class names, index 0 first "
                   "(default: the 21 VOC names for torchvision's models)")  # fmt: skip
    c.add_argument("--overwrite", action="store_true", help="replace an existing .keras file at OUT (a trained model "
                   "there is lost)")  # fmt: skip

    b = sub.add_parser("bench", help="training and inference speed per backend, as ratios to native PyTorch")
    b.add_argument("--quick", action="store_true", help="the classic U-Net on every backend, float32 (under 3 minutes)")
    b.add_argument("--preset", choices=("quick", "cpu", "gpu", "smp"), default="cpu",
                   help="quick, cpu (the full CPU table, default), gpu (JAX, PyTorch, native, bigger batches) or smp "
                   "(U-Net / FPN / DeepLabV3+ on resnet34 against segmentation_models.pytorch, 3 rounds)")  # fmt: skip
    b.add_argument("--rounds", type=int, help="run every measurement this many times, alternating the implementations; "
                   "ratios are medians over the rounds (preset: 1, smp 3)")  # fmt: skip
    b.add_argument("--models", help="comma-separated: unet, fcn8s, segformer-b0, or ARCHITECTURE-ENCODER such as "
                   "fpn-resnet34, pspnet-resnet34, lraspp-mobilenetv3large")  # fmt: skip
    b.add_argument("--impls", help="comma-separated: tensorflow, tensorflow-xla, jax, torch, torch-compile, "
                   "pytorch-native, pytorch-native-compile, tflite, tflite-int8, onnx")  # fmt: skip
    b.add_argument("--precisions", help="comma-separated: float32, mixed")
    b.add_argument("--data", help="comma-separated: memory (arrays), pipeline (tf.data with augmentation)")
    b.add_argument("--batch-size", type=int, help="images per step (preset: 4 on CPU, 16 on GPU)")
    b.add_argument("--image-size", type=int, help="square image side (preset: 128 on CPU, 256 on GPU)")
    b.add_argument("--steps", type=int, help="timed steps after the warm-up")
    b.add_argument("--warmup", type=int, help="steps left out of the median (the first is reported apart)")
    b.add_argument("--out", default="bench.json", help="JSON results; the table goes beside it as .md (bench.json)")
    b.add_argument("--timeout", type=int, default=900, help="seconds allowed per measurement (900)")
    return parser


# ---------------------------------------------------------------------------------------------- commands


def info(args):
    import keras

    from keras_seg.encoders import list_encoders

    backend = keras.backend.backend()
    rows = [("keras-seg", _version()), ("python", sys.version.split()[0]), ("backend", backend)]
    for dist in ("keras", "numpy", "tensorflow", "jax", "jaxlib", "torch", "tf2onnx", "onnxruntime", "ai-edge-litert"):
        rows.append((dist, _package_version(dist) or "not installed"))
    rows.append(("devices", ", ".join(_devices(backend)) or "none"))
    rows.append(("encoders", ", ".join(list_encoders())))
    for key, value in rows:
        print(f"{key:<15} {value}")
    return 0


def train(args):
    import contextlib

    with contextlib.ExitStack() as parallel:  # --distribute: data_parallel() from the first operation to the last epoch
        return _train(args, parallel)


def _train(args, parallel):
    import keras

    import keras_seg
    from keras_seg import data as D
    from keras_seg.training import train as fit_recipe

    replicas = _data_parallel(args, parallel)  # first: before the backend runs anything (simulated CPUs, several hosts)
    _check_out_folder(args.out)
    last = os.path.join(args.out, "last.keras")
    if args.resume:  # before any data is read: is there a run, and is anything left to do?
        if not os.path.exists(last):
            raise FileNotFoundError(f"--resume: there is no run to resume in {args.out} (no last.keras); drop --resume "
                                    "to start a new run there, or pass the run's folder as --out.")  # fmt: skip
        from keras_seg.utils.modelfile import archive_problem

        problem = archive_problem(last)
        done = None if problem else keras_seg.training.read_state(last).get("epoch")
        if done is not None and done >= args.epochs:
            print(f"nothing to do: the run in {args.out} already completed {done} epoch(s) of --epochs {args.epochs}; "
                  "pass a larger --epochs to train it further.")  # fmt: skip
            return 0
    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.precision)
    train_ds, meta = _dataset(args, args.split)
    val_ds, _ = _dataset(args, "val")
    size = (args.image_size, args.image_size)
    augment = None
    if not args.no_augment:
        augment = D.Augment(crop_size=size, scale=(0.75, 1.5), rotation=15, brightness=0.1, contrast=0.1,
                            ignore_index=meta.ignore_index)  # fmt: skip
    distributed = bool(replicas and replicas.distributed)  # equal shares each step: drop a short last training batch
    train_b = D.prepare(train_ds, args.batch_size, size, augment=augment, shuffle=1024, seed=args.seed,
                        drop_remainder=distributed)  # fmt: skip
    if distributed and int(train_b.cardinality()) == 0:
        raise ValueError(
            f"--distribute trains on full batches only, and the training data has fewer images than --batch-size "
            f"{args.batch_size}; lower --batch-size (a multiple of {replicas.num_replicas}) or add images."
        )
    val_b = D.prepare(val_ds, args.batch_size, size)
    weights = None
    if args.class_weights:
        weights = keras_seg.losses.compute_class_weights(
            train_ds, meta.num_classes, method=args.class_weights, ignore_index=meta.ignore_index
        ).tolist()
        print("class weights:", [round(w, 3) for w in weights])

    model = None if args.resume else _build_model(args, meta.num_classes)
    if model is not None:
        print(f"{model.name}: {model.count_params():,} parameters, {meta.num_classes} classes ({meta.name})")
    start = time.time()
    result = fit_recipe(
        model,
        train_b,
        val_b,
        epochs=args.epochs,
        out_dir=args.out,
        loss=args.loss,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        freeze_encoder_epochs=args.freeze_encoder_epochs,
        ignore_index=meta.ignore_index,
        class_weights=weights,
        class_names=meta.class_names,
        patience=args.patience,
        resume=args.resume,
        overwrite=args.overwrite,
        verbose=args.verbose,
        jit_compile=True if args.jit_compile else "auto",
    )
    seconds = time.time() - start
    parallel.close()  # leave data_parallel(): the pictures below run on one device
    _write_json(os.path.join(args.out, "run.json"), {
        "command": "keras-seg " + " ".join(sys.argv[1:]),
        "backend": keras.backend.backend(),
        "replicas": replicas.num_replicas if replicas else 1,
        "seconds": round(seconds, 1),
        "epochs_run": len(result.history.get("loss", [])),
        "history": result.history,
    })  # fmt: skip
    pictures = _training_pictures(result, val_b, meta, args.out)
    best = keras_seg.training.read_state(result.best_path) if result.best_path else {}
    print(f"trained in {seconds:.0f} s; best val mean IoU {best.get('best', float('nan')):.4f} at epoch {best.get('best_epoch')}")
    print(f"wrote {result.best_path}, {result.last_path}, {result.log_path}, " + ", ".join(pictures))
    return 0


def _data_parallel(args, stack):
    """``--distribute``: enter ``keras_seg.training.data_parallel()`` on ``stack`` and say so; None without the flag."""
    if not args.distribute:
        return None
    import warnings

    from keras_seg.training import data_parallel

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replicas = stack.enter_context(data_parallel())
    for warning in caught:
        print(f"keras-seg: warning: {warning.message}", file=sys.stderr)
    per_replica = replicas.check_batch_size(args.batch_size, "--batch-size")
    if not replicas.is_chief:  # the other hosts write the same files where they do not race the chief's
        args.out = os.path.join(args.out, f"worker-{replicas.process_id}")
    print(f"data parallel: {replicas}; {per_replica} images per replica and step")
    return replicas


def evaluate(args):
    import keras
    import numpy as np

    import keras_seg
    from keras_seg import viz

    if args.out:
        _check_out_folder(args.out)
    model, state = _load(args.model)
    ds, meta = _dataset(args, args.split, class_names=state.get("class_names"))
    if meta.num_classes != model.output_shape[-1]:
        raise ValueError(
            f"{args.model} predicts {model.output_shape[-1]} classes but the {meta.name} data has {meta.num_classes}."
        )
    size = (args.image_size, args.image_size) if args.image_size else None
    batch = args.batch_size if size or meta.name == "shapes" else 1  # images of different sizes go one by one
    window, tta = _inference_options(args)
    confusion = keras_seg.metrics.ConfusionMatrix(meta.num_classes, ignore_index=meta.ignore_index)
    count = 0
    for images, masks in keras_seg.data.prepare(ds, batch, size).as_numpy_iterator():
        _, probs = keras_seg.inference.predict_mask(model, images, probabilities=True, sliding_window=window, tta=tta)
        confusion.update_state(masks, probs)
        count += int(images.shape[0])
    report = keras_seg.metrics.segmentation_report(confusion, class_names=meta.class_names)
    print(f"{args.model} on {meta.name}/{args.split} ({count} images, backend {keras.backend.backend()})")
    print(report)
    out = args.out or os.path.dirname(os.path.abspath(args.model))
    matrix = np.asarray(keras.ops.convert_to_numpy(confusion.confusion_matrix()))
    picture = viz.plot_confusion_matrix(matrix, os.path.join(out, "confusion.png"), class_names=meta.class_names)
    path = os.path.join(out, "report.json")
    _write_json(path, dict(report.to_dict(), images=count, data=meta.name, split=args.split, confusion=matrix.tolist()))
    print(f"wrote {path}, {picture}")
    return 0


def predict(args):
    import keras

    import keras_seg
    from keras_seg import viz

    _check_out_folder(args.out)
    model, state = _load(args.model)
    names = state.get("class_names")
    window, tta = _inference_options(args)
    files = _expand_inputs(args.inputs)
    outputs = _prediction_paths(files, args.out)
    os.makedirs(args.out, exist_ok=True)
    bar = keras.utils.Progbar(len(files), unit_name="image") if len(files) > 1 else None
    for i, (path, (label_path, overlay_path)) in enumerate(zip(files, outputs)):
        image = keras_seg.data.read_image(path)
        mask = keras_seg.inference.predict_mask(model, image, sliding_window=window, tta=tta)
        viz.save_label_png(label_path, mask)
        picture = viz.overlay(image, mask, alpha=args.alpha, class_names=names)
        viz.save_rgb_png(overlay_path, picture)
        if bar is not None:
            bar.update(i + 1)
    print(f"wrote {len(files)} label PNG(s) and overlay(s) to {args.out}")
    return 0


def export(args):
    import keras_seg.export

    if not os.path.exists(args.model) and not args.model.startswith(("hf://", "kaggle://")):
        raise FileNotFoundError(f"{args.model} does not exist; pass a .keras file (keras-seg train, model.save) or a "
                                "preset directory (save_to_preset).")  # fmt: skip
    size = args.input_size
    names = list(args.classes) if args.classes else None
    try:
        stored = keras_seg.training.read_state(args.model).get("class_names")
    except Exception:  # noqa: BLE001 - not a keras_seg checkpoint; export() says what is wrong with the file
        stored = None
    calibration = _export_data(args, args.calibration, args.split, args.num_calibration, size, names or stored)
    verify_source = args.verify_data or args.calibration
    verify_data = None
    if not args.no_verify:
        verify_data = _export_data(args, verify_source, args.verify_split or args.split, args.num_verify, size,
                                   names or stored)  # fmt: skip
    if args.quantize == "int8" and calibration is None:
        raise ValueError("--quantize int8 needs calibration images: add --calibration shapes|folder|voc|pets|FOLDER.")
    with warnings.catch_warnings(record=True) as caught:  # the report lists them as notes too
        warnings.simplefilter("always")
        report = _export(args, size, calibration, names, verify_data)
    for warning in caught:
        print(f"keras-seg: warning: {warning.message}", file=sys.stderr)
    print(report)
    print(f"wrote {args.out}")
    return 0


def _export(args, size, calibration, names, verify_data):
    import keras_seg.export

    return keras_seg.export.export(
        args.model, args.out, format=args.format, input_size=size, batch_size=args.batch_size, output=args.output,
        quantize=args.quantize, representative_data=calibration, input_dtype=args.input_dtype, class_names=names,
        verify=not args.no_verify, verify_data=verify_data, opset=args.opset, num_calibration=args.num_calibration,
        num_verify=args.num_verify, mediapipe=False if args.no_mediapipe else None, quiet=True,
    )  # fmt: skip


def convert(args):
    """``keras-seg convert SOURCE OUT.keras``: the checkpoint as a keras_seg model, class names stored in the file."""
    import keras

    from keras_seg.convert import smp, torchvision
    from keras_seg.training.callbacks import save_checkpoint

    if not args.out.endswith(".keras"):
        raise ValueError(f"{args.out} must end in .keras (the converted model is a Keras file).")
    if os.path.isdir(args.out) or (os.path.exists(args.out) and not zipfile_ok(args.out)):
        raise FileExistsError(f"{args.out} exists and is not a .keras file; choose another path.")
    if os.path.exists(args.out) and not args.overwrite:
        raise FileExistsError(f"{args.out} already exists (a model you trained may be in it); choose another path, "
                              "or pass --overwrite to replace it.")  # fmt: skip
    if not os.path.exists(args.source):
        raise FileNotFoundError(f"{args.source} does not exist; pass an SMP save_pretrained folder or a weights file.")
    kind = args.source_kind
    if kind is None:
        if os.path.isdir(args.source) or (args.arch in smp.ARCHITECTURES):
            kind = "smp"
        elif args.arch in torchvision.MODELS:
            kind = "torchvision"
        else:
            from keras_seg.convert.tensors import read_weights

            kind = "torchvision" if torchvision.guess_arch(read_weights(args.source)) else "smp"
    names = list(args.classes) if args.classes else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if kind == "smp":
            model = smp.from_smp(args.source, args.arch, encoder=args.encoder, class_names=names)
        else:
            model = torchvision.from_torchvision(args.arch, args.source, class_names=names)
    for warning in caught:
        print(f"keras-seg: warning: {warning.message}", file=sys.stderr)
    names = getattr(model, "class_names", None)
    state = {"source": os.path.abspath(args.source), "converted_from": kind}
    if names:
        state["class_names"] = list(names)
    save_checkpoint(model, args.out, state)
    described = f"{len(names)} classes ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else f"{model.num_classes} classes"
    print(f"{type(model).__name__} on {model.encoder.name}: {model.count_params():,} parameters, {described}, "
          f"backend {keras.backend.backend()}")  # fmt: skip
    print(f"wrote {args.out}; next: keras-seg export {args.out} model.tflite --input-size 512")
    return 0


def zipfile_ok(path):
    import zipfile

    return zipfile.is_zipfile(path)


# ---------------------------------------------------------------------------------------------- helpers


def _prediction_paths(files, out):
    """``[(label_png, overlay_png)]`` for each input; refuses names that collide or would overwrite an input."""
    inputs = {os.path.realpath(f): f for f in files}
    taken, paths = {}, []
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        pair = (os.path.join(out, f"{stem}.png"), os.path.join(out, f"{stem}_overlay.png"))
        for target in pair:
            real = os.path.realpath(target)
            if real in inputs:
                raise FileExistsError(f"--out {out}: writing {target} would overwrite the input image "
                                      f"{inputs[real]}; choose an --out folder apart from the images.")  # fmt: skip
            if real in taken:
                raise ValueError(f"{taken[real]} and {path} would both be written to {target} (same file stem); "
                                 "predict them into different --out folders, or rename one.")  # fmt: skip
            taken[real] = path
        paths.append(pair)
    return paths


def _check_out_folder(path, flag="--out"):
    """A usable output folder: absent (it will be made) or a folder, never an existing file."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{flag} {path} is a file, and {flag} names a folder; choose another path "
                              f"(e.g. {flag} {os.path.splitext(path)[0]}_out) or move the file.")  # fmt: skip


def _export_data(args, source, split, count, size, class_names):
    """Calibration / verification data for ``keras-seg export``: a catalog dataset or a folder of images."""
    from keras_seg.data import catalog

    if source is None:
        return None
    if source in catalog.DATASETS:
        options = argparse.Namespace(**vars(args))
        options.data, options.num_train, options.num_val = source, count, count
        options.image_size = size or 64
        options.val_images = options.val_masks = None
        return _dataset(options, split, class_names=class_names)[0]
    if os.path.isdir(source):
        from keras_seg.data import read_image

        return [read_image(path) for path in _expand_inputs([source])[:count]]
    raise FileNotFoundError(f"{source!r} is neither a dataset ({', '.join(catalog.DATASETS)}) nor a folder of images.")


def _dataset(args, split, class_names=None):
    from keras_seg.data import catalog

    classes = list(args.classes) if args.classes else class_names
    images, masks = args.images, args.masks
    if args.data == "folder" and split != "train" and args.val_images:
        images, masks = args.val_images, args.val_masks
    return catalog.load(
        args.data,
        split,
        root=args.root,
        images=images,
        masks=masks,
        class_names=classes,
        ignore_index=args.ignore_index,
        num_images=args.num_train if split == "train" else args.num_val,
        image_size=getattr(args, "image_size", None) or 64,
        seed=args.seed,
        data_dir=args.data_dir,
        val_fraction=0.0 if args.val_images else args.val_fraction,
        skip_corrupt=getattr(args, "skip_corrupt", False),
    )


def _build_model(args, num_classes):
    import keras_seg

    cls = keras_seg.models.get(args.model)
    kwargs = {"encoder_weights": args.encoder_weights}
    if args.encoder:
        kwargs["encoder"] = args.encoder
    elif cls is keras_seg.models.UNet:
        kwargs["widths"] = tuple(args.widths)
    return cls(num_classes, **kwargs)


def _load(path):
    """The model in ``path`` (checked to be a segmentation model) and its keras_seg training state."""
    import keras_seg
    from keras_seg.utils.modelfile import check_segmentation_model, load_model

    model = check_segmentation_model(load_model(path), where=path)
    return model, keras_seg.training.read_state(path)


def _training_pictures(result, val_batches, meta, out):
    import keras
    import numpy as np

    from keras_seg import viz

    curves = viz.plot_history(result.log_path, os.path.join(out, "curves.png"), title=f"{meta.name}")
    model = keras.saving.load_model(result.best_path) if result.best_path else result.model
    images, masks = next(iter(val_batches))
    images, masks = np.asarray(images)[:4], np.asarray(masks)[:4]
    predictions = model.predict_mask(images)
    samples = viz.plot_samples(images, masks, predictions, os.path.join(out, "samples.png"),
                               class_names=meta.class_names, ignore_index=meta.ignore_index)  # fmt: skip
    return [curves, samples]


def _expand_inputs(inputs):
    from keras_seg.data.folders import IMAGE_EXTENSIONS

    files = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in the folder {item}.")
            files += found
        elif os.path.isfile(item):
            files.append(item)
        else:
            matched = sorted(glob.glob(item))
            if not matched:
                raise FileNotFoundError(f"{item} is not an image, a folder, or a glob pattern that matches files.")
            files += matched
    return files


def _write_json(path, value):
    from keras_seg.utils.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(value, f, indent=1, default=float)


def _package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _devices(backend):
    """Devices the active backend sees, as short strings."""
    if backend == "jax":
        import jax

        return [f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices()]
    if backend == "tensorflow":
        import tensorflow as tf

        return [f"{d.device_type}:{d.name.split(':')[-1]}" for d in tf.config.list_physical_devices()]
    if backend == "torch":
        import torch

        found = ["cpu"]
        if torch.cuda.is_available():
            found += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            found.append("mps")
        return found
    return []


def _rerun_with_backend(backend, argv):
    """Run this command again in a child process with KERAS_BACKEND set.

    Keras picks its backend once, when it is first imported, so a ``--backend`` that
    differs from the one this process would load needs a fresh process. Returns the
    child's exit code, or None when no re-run is needed. Keras is not imported here.
    """
    import subprocess

    if backend is None or os.environ.get("KERAS_BACKEND") == backend or "keras" in sys.modules and _loaded() == backend:
        return None
    env = dict(os.environ, KERAS_BACKEND=backend)
    return subprocess.call([sys.executable, "-m", "keras_seg", *argv], env=env)


def _loaded():
    import keras

    return keras.backend.backend()


def bench(args):
    from keras_seg.bench import runner

    preset = runner.presets("quick" if args.quick else args.preset)
    for name in ("models", "impls", "precisions", "data"):
        if getattr(args, name):
            preset[name] = tuple(v.strip() for v in getattr(args, name).split(",") if v.strip())
    for name in ("batch_size", "image_size", "steps", "warmup"):
        if getattr(args, name) is not None:
            preset[name] = getattr(args, name)
    extra = preset.pop("extra", [])
    rounds = args.rounds if args.rounds is not None else preset.pop("rounds", 1)
    preset.pop("rounds", None)
    if rounds < 1:
        print(f"keras-seg: error: --rounds {rounds}: give 1 or more (3 or more for a median with a spread).",
              file=sys.stderr)  # fmt: skip
        return 2
    cfgs = runner.plan(**preset) + (extra if not any(getattr(args, n) for n in ("models", "impls")) else [])
    start = time.time()
    results = runner.run(cfgs, timeout=args.timeout, path=args.out, rounds=rounds)
    print(runner.markdown(results))
    if rounds > 1:
        print(runner.summary_markdown(runner.summary(results), runner.cpu_info()))
    print(f"{len(results)} measurements in {time.time() - start:.0f} s; results in {args.out} and "
          f"{os.path.splitext(args.out)[0]}.md")  # fmt: skip
    return 0 if all("error" not in r for r in results) else 1


COMMANDS = {"info": info, "train": train, "evaluate": evaluate, "predict": predict, "export": export, "convert": convert,
            "bench": bench}  # fmt: skip


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    code = _rerun_with_backend(getattr(args, "backend", None), argv)
    if code is not None:
        return code
    try:
        return COMMANDS[args.command](args)
    except (ValueError, OSError, ImportError, ArithmeticError) as error:  # OSError: files, downloads; ArithmeticError: a NaN loss
        if os.environ.get("KERAS_SEG_DEBUG"):
            raise
        print(f"keras-seg: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
