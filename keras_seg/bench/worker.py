"""One benchmark measurement, in the process that runs it: ``python -m keras_seg.bench.worker JSON``.

The runner (:mod:`keras_seg.bench.runner`) starts one child per measurement, because Keras
fixes its backend at import and because a fresh process gives an honest peak memory. The
child builds the model once, trains it (``"train"``), then times inference on it
(``"predict"``), and prints one line ``BENCH_RESULT {json}``; peak memory is read after
training.

A measurement is a dict::

    {"tasks": ["train", "predict"],
     "impl": "tensorflow" | "tensorflow-xla" | "jax" | "torch" | "torch-compile" | "pytorch-native"
             | "pytorch-native-compile" | "tflite" | "tflite-int8" | "onnx",
     "model": "unet" | "unet-resnet34" | "fpn-resnet34" | ... | "segformer-b0",
     "batch_size": 4, "image_size": 128, "precision": "float32" | "mixed",
     "data": "memory" | "pipeline", "steps": 10, "warmup": 3}

The native PyTorch reference of a model: the seed's U-Net written in PyTorch for ``"unet"``,
Hugging Face's SegFormer for ``"segformer-b0"``, and segmentation_models.pytorch itself for
``<architecture>-<resnet>`` of the architectures SMP has (``"unet-resnet34"``, ``"fpn-resnet34"``,
``"deeplabv3plus-resnet34"``, ...). For those, the Keras model is the SMP network imported with
:func:`keras_seg.convert.smp.from_smp_tensors`: the same network with the same weights (SMP's seed-0
initialisation), so the comparison is of one network in two implementations.

Timing: every step is synchronised with the host (Keras: a callback that reads the batch's
logs, which waits for the device; PyTorch: ``loss.item()``), so the median step time is a
real step. The first step's time (tracing, compilation, the first allocation) is reported
apart. Throughput is ``batch_size / median step``.
"""

import json
import os
import resource
import sys
import time

import numpy as np

from keras_seg.convert import smp as _smp

NUM_CLASSES = 4  # the shapes dataset's classes
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 0.004  # keras.optimizers.AdamW's default, set on the PyTorch side too
BATCHES_IN_MEMORY = 4  # distinct batches cycled by the "memory" data variant

KERAS_IMPLS = {"tensorflow": "tensorflow", "tensorflow-xla": "tensorflow", "jax": "jax", "torch": "torch",
               "torch-compile": "torch"}  # fmt: skip
# The model exported by keras_seg.export and run in its runtime (inference only).
EXPORTED = {"tflite": ("tflite", None), "tflite-int8": ("tflite", "int8"), "onnx": ("onnx", None)}
NATIVE = "pytorch-native"
NATIVE_COMPILE = "pytorch-native-compile"  # the native network under torch.compile
NATIVES = (NATIVE, NATIVE_COMPILE)
# keras_seg architecture name -> segmentation_models.pytorch class, for the SMP references (the ResNet encoders that
# keras_seg.convert.smp imports; a keras_seg name is SMP's, lower-cased).
SMP_CLASSES = {name.lower(): name for name in _smp.ARCHITECTURES if name not in _smp.MIT_ONLY}
SMP_ENCODERS = _smp.RESNETS
# Named models; besides these, any "<architecture>-<encoder>" of keras_seg.models.ARCHITECTURES and
# keras_seg.encoders.list_encoders() (e.g. "fpn-resnet34", "pspnet-resnet34", "unetplusplus-resnet34").
MODELS = ("unet", "unet-resnet50", "deeplabv3plus-resnet50", "fcn8s", "segformer-b0", "lraspp-mobilenetv3large",
          "unet-resnet34", "unetplusplus-resnet34", "fpn-resnet34", "pspnet-resnet34", "linknet-resnet34",
          "manet-resnet34", "pan-resnet34", "upernet-resnet34", "deeplabv3-resnet34", "deeplabv3plus-resnet34")  # fmt: skip


def is_model(name):
    """A named benchmark model, or ``<architecture>-<encoder>`` (the encoder is checked when the model is built).

    Keras is not imported here: the parent process of ``keras-seg bench`` only plans the runs.
    """
    if name in MODELS:
        return True
    from keras_seg.cli import ARCHITECTURES  # keras_seg.models.ARCHITECTURES' names, without importing Keras

    arch, _, encoder = str(name).partition("-")
    return arch in ARCHITECTURES and bool(encoder)
# The named models with a native PyTorch reference of their own: the classic U-Net
# (keras_seg.bench.torch_unet) and SegFormer-B0 (transformers', keras_seg.bench.torch_segformer).
NATIVE_MODELS = ("unet", "segformer-b0")


def smp_reference(name):
    """``(SMP class name, encoder)`` when ``name`` is an SMP-parity model (``"fpn-resnet34"``), else None."""
    arch, _, encoder = str(name).partition("-")
    if arch in SMP_CLASSES and encoder in SMP_ENCODERS:
        return SMP_CLASSES[arch], encoder
    return None


def has_native(name):
    """Whether ``name`` has a native PyTorch reference (its own, or segmentation_models.pytorch)."""
    return name in NATIVE_MODELS or smp_reference(name) is not None


def backend_of(impl):
    """The KERAS_BACKEND a measurement's child process needs."""
    if impl in NATIVES:
        return "torch"
    if impl in EXPORTED:
        return "tensorflow"
    if impl not in KERAS_IMPLS:
        raise ValueError(
            f"Unknown implementation {impl!r}; expected one of {sorted(KERAS_IMPLS) + sorted(EXPORTED) + list(NATIVES)}."
        )
    return KERAS_IMPLS[impl]


# ---------------------------------------------------------------------------------------- data


def shapes_batches(batch_size, image_size, count=BATCHES_IN_MEMORY):
    """``count`` batches of the synthetic shapes data as NHWC float32 images and int32 masks."""
    images, masks = _shapes_module().shapes_arrays("train", num_images=batch_size * count, image_size=image_size)
    return images.astype("float32"), masks.astype("int32")


def _shapes_module():
    """``keras_seg.data.shapes`` without importing ``keras_seg.data`` (which needs TensorFlow for tf.data).

    The drawing code is numpy only; a GPU machine with JAX or PyTorch and no TensorFlow can
    still time the in-memory variant on the same images.
    """
    try:
        from keras_seg.data import shapes as module  # noqa: F401

        return sys.modules["keras_seg.data.shapes"]
    except ImportError:
        import importlib.util

        path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "shapes.py")
        spec = importlib.util.spec_from_file_location("keras_seg_bench_shapes", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


# ---------------------------------------------------------------------------------------- memory


def host_peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def device_peak_mb(backend):
    """Peak accelerator memory of this process in MB, or None on a CPU."""
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            stats = device.memory_stats() or {}
            if "peak_bytes_in_use" in stats:
                return stats["peak_bytes_in_use"] / 2**20
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.config.experimental.get_memory_info(gpus[0].name)["peak"] / 2**20
    return None


def device_name(backend):
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return device.device_kind
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return cpu_name()


def threads(backend):
    """The intra-op threads the backend computes with (its own default unless the environment sets one)."""
    if backend == "torch":
        import torch

        return torch.get_num_threads()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    return os.cpu_count()  # XLA's CPU client: one thread per core


VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_info():
    """``{"model", "cores", "flags"}``: the CPU model name, the cores this process sees, its vector flags."""
    flags, fields = set(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "flags" and not flags:
                    flags = set(value.split())
                elif key in ("model name", "cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
    except OSError:
        pass
    model = fields.get("model name")
    if model is None:
        import platform

        model = platform.processor() or platform.machine()
    elif "cpu family" in fields:  # "AMD EPYC" alone does not say which generation
        model += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return {"model": model, "cores": os.cpu_count(), "flags": [f for f in VECTOR_FLAGS if f in flags]}


def cpu_name():
    info = cpu_info()
    return f"{info['model']} ({info['cores']} cores)"


# ---------------------------------------------------------------------------------------- keras


def smp_network(name, num_classes=NUM_CLASSES):
    """segmentation_models.pytorch's network for an SMP-parity model, seed-0 weights (no download)."""
    import segmentation_models_pytorch as smp
    import torch

    cls, encoder = smp_reference(name)
    torch.manual_seed(0)
    return getattr(smp, cls)(encoder, encoder_weights=None, classes=num_classes)


def build_keras_model(name, image_size, num_classes=NUM_CLASSES):
    from keras_seg import models

    shape = (image_size, image_size, 3)
    if smp_reference(name) is not None and _has_smp():  # the SMP network itself, imported with its weights
        from keras_seg.convert.smp import from_smp_tensors

        cls, encoder = smp_reference(name)
        net = smp_network(name, num_classes)
        return from_smp_tensors(net.state_dict(), cls, encoder=encoder, input_shape=shape)
    if name == "unet":
        return models.UNet(num_classes, input_shape=shape)
    if name == "unet-resnet50":
        return models.UNet(num_classes, encoder="resnet50", input_shape=shape)
    if name == "deeplabv3plus-resnet50":
        return models.DeepLabV3Plus(num_classes, encoder="resnet50", input_shape=shape)
    if name == "fcn8s":
        return models.FCN(num_classes, encoder="vgg16", variant="8s", input_shape=shape)
    if name == "segformer-b0":
        return models.SegFormer(num_classes, variant="b0", input_shape=shape)
    arch, _, encoder = name.partition("-")
    if is_model(name):
        return models.get(arch)(num_classes, encoder=encoder, input_shape=shape)
    raise ValueError(f"Unknown benchmark model {name!r}; expected one of {MODELS}, or <architecture>-<encoder>.")


def _has_smp():
    import importlib.util

    return importlib.util.find_spec("segmentation_models_pytorch") is not None


def _keras_setup(cfg):
    import keras

    if cfg["precision"] == "mixed":
        keras.mixed_precision.set_dtype_policy(mixed_policy(keras.backend.backend()))
    keras.utils.set_random_seed(0)
    return keras


def mixed_policy(backend):
    """bfloat16 where the hardware has it (no loss scaling needed); float16 on older GPUs."""
    if backend == "torch":
        import torch

        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            return "mixed_float16"
    return "mixed_bfloat16"


class _StepTimer:
    """Host time at the end of every training batch (reading the logs waits for the device)."""

    def __init__(self):
        self.ends = []
        self.start = None

    def callback(self):
        import keras

        timer = self

        class Timer(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                timer.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                float(logs["loss"])  # make sure the step has finished on the device
                timer.ends.append(time.perf_counter())

        return Timer()


def keras_model(cfg):
    _keras_setup(cfg)
    return build_keras_model(cfg["model"], cfg["image_size"])


def keras_train(cfg, model):
    import keras

    from keras_seg import losses, metrics

    jit = {"tensorflow": False, "tensorflow-xla": True, "torch-compile": True}.get(cfg["impl"], "auto")
    model.compile(
        optimizer=keras.optimizers.AdamW(LEARNING_RATE, weight_decay=WEIGHT_DECAY),
        loss=losses.CrossEntropyLoss(),
        metrics=[metrics.MeanIoU(NUM_CLASSES)],
        jit_compile=jit,
    )
    steps = cfg["warmup"] + cfg["steps"]
    timer = _StepTimer()
    if cfg["data"] == "pipeline":
        from keras_seg import data

        ds = data.shapes("train", num_images=cfg["batch_size"] * BATCHES_IN_MEMORY * 4, image_size=cfg["image_size"])
        ds = data.prepare(ds.repeat(), cfg["batch_size"], augment=data.Augment(), shuffle=256, seed=0)
        model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer.callback()])
    else:
        images, masks = shapes_batches(cfg["batch_size"], cfg["image_size"])
        repeat = -(-steps // BATCHES_IN_MEMORY)
        x, y = np.concatenate([images] * repeat), np.concatenate([masks] * repeat)
        model.fit(x, y, batch_size=cfg["batch_size"], epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0,
                  callbacks=[timer.callback()])  # fmt: skip
    ends = [timer.start] + timer.ends
    return _step_stats(cfg, np.diff(ends))


def keras_predict(cfg, model):
    """``predict_on_batch`` with the jit setting of the training run (compile's, or the backend's default)."""
    if not model.compiled:
        model.jit_compile = {"tensorflow": False, "tensorflow-xla": True, "torch-compile": True}.get(cfg["impl"], "auto")
    images, _ = shapes_batches(cfg["batch_size"], cfg["image_size"], count=1)
    return _predict_times(cfg, lambda x: np.asarray(model.predict_on_batch(x)), images)


def exported_predict(cfg, model):
    """Export the model (keras_seg.export, float32 or int8 calibrated on shapes images) and time it in its runtime.

    TFLite has a fixed batch of 1 (as on a phone): its throughput is one image after another.
    """
    import tempfile

    from keras_seg.export import export
    from keras_seg.export.verify import runner

    fmt, quantize = EXPORTED[cfg["impl"]]
    images, _ = shapes_batches(cfg["batch_size"], cfg["image_size"])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"model.{fmt}")
        export(model, path, format=fmt, input_size=(cfg["image_size"],) * 2, quantize=quantize, output="logits",
               representative_data=images if quantize else None, verify=False, quiet=True)  # fmt: skip
        size_mb = os.path.getsize(path) / 2**20
        run = runner(path, fmt, "logits")
        result = _predict_times(cfg, run.run_all, images[: cfg["batch_size"]])
    result.update(runtime=run.name, file_mb=size_mb)
    return result


def keras_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# ---------------------------------------------------------------------------------------- pytorch


def native_network(name, num_classes=NUM_CLASSES):
    """The native PyTorch network of a benchmark model (:data:`NATIVE_MODELS`)."""
    if name == "unet":
        from keras_seg.bench.torch_unet import TorchUNet

        return TorchUNet(3, num_classes)
    if name == "segformer-b0":
        from keras_seg.bench.torch_segformer import TorchSegFormer

        return TorchSegFormer(num_classes)
    if smp_reference(name) is not None:
        return smp_network(name, num_classes)
    raise ValueError(f"The native PyTorch reference exists for {', '.join(NATIVE_MODELS)} and the SMP architectures "
                     f"on {', '.join(SMP_ENCODERS)} ({', '.join(SMP_CLASSES)}) only, not {name!r}.")  # fmt: skip


def _torch_setup(cfg):
    import torch

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = native_network(cfg["model"]).to(device)
    # channels_last is PyTorch's fast layout for convolutions on GPUs (tensor cores); on a CPU
    # the default NCHW is what a PyTorch user runs.
    layout = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    model = model.to(memory_format=layout)
    if cfg["impl"] == NATIVE_COMPILE:
        model = torch.compile(model)
    amp_dtype = None
    if cfg["precision"] == "mixed":
        amp_dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    return torch, model, device, layout, amp_dtype


def _torch_input(cfg, images):
    """What the native network takes: SMP's networks ImageNet-normalised pixels (the Keras import does it in its
    graph), the others 0..255 (they scale inside)."""
    if smp_reference(cfg["model"]) is None:
        return images
    return ((images / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype("float32")


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], "float32")
IMAGENET_STD = np.array([0.229, 0.224, 0.225], "float32")


def _torch_batches(torch, cfg, device, layout, count):
    images, masks = shapes_batches(cfg["batch_size"], cfg["image_size"], count=count)
    images = _torch_input(cfg, images)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device, memory_format=layout)
    y = torch.from_numpy(masks).long().to(device)
    b = cfg["batch_size"]
    return [(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]) for i in range(count)]


def native_model(cfg):
    return _torch_setup(cfg)


def native_train(cfg, setup):
    torch, model, device, layout, amp_dtype = setup
    batches = _torch_batches(torch, cfg, device, layout, BATCHES_IN_MEMORY)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    criterion = torch.nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler(enabled=amp_dtype == torch.float16)
    confusion = torch.zeros(NUM_CLASSES * NUM_CLASSES, device=device)
    model.train()
    ends = [time.perf_counter()]
    for step in range(cfg["warmup"] + cfg["steps"]):
        x, y = batches[step % len(batches)]
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(x)
        loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        with torch.no_grad():  # the same mean-IoU bookkeeping Keras does: a confusion matrix
            pred = logits.argmax(1)
            confusion += torch.bincount((y * NUM_CLASSES + pred).flatten(), minlength=NUM_CLASSES**2)
        loss.item()
        ends.append(time.perf_counter())
    return _step_stats(cfg, np.diff(ends))


def native_predict(cfg, setup):
    torch, model, device, layout, amp_dtype = setup
    model.eval()
    images, _ = shapes_batches(cfg["batch_size"], cfg["image_size"], count=1)
    images = _torch_input(cfg, images)

    def run(batch):
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(device, memory_format=layout)
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                                    enabled=amp_dtype is not None):  # fmt: skip
            return model(x).float().cpu().numpy()

    return _predict_times(cfg, run, images)


def native_params(setup):
    from keras_seg.bench.torch_unet import count_parameters

    return count_parameters(setup[1])


# ---------------------------------------------------------------------------------------- stats


def _step_stats(cfg, durations):
    durations = [float(d) for d in durations]
    timed = durations[1 + max(cfg["warmup"] - 1, 0):] or durations[-1:]
    median = float(np.median(timed))
    return {
        "first_step_s": durations[0],
        "median_step_s": median,
        "step_spread": float((np.max(timed) - np.min(timed)) / median) if len(timed) > 1 else 0.0,
        "images_per_s": cfg["batch_size"] / median,
    }


def _predict_times(cfg, run, images):
    """Median latency of one image (batch 1) and throughput at ``batch_size`` (input and output on the host)."""
    result = {}
    for name, batch in (("latency", images[:1]), ("throughput", images)):
        start = time.perf_counter()
        run(batch)
        first = time.perf_counter() - start
        times = []
        for _ in range(cfg["warmup"] + cfg["steps"]):
            start = time.perf_counter()
            run(batch)
            times.append(time.perf_counter() - start)
        median = float(np.median(times[cfg["warmup"]:] or times))
        if name == "latency":
            result.update(first_step_s=first, latency_ms=median * 1000)
        else:
            result.update(median_step_s=median, images_per_s=len(batch) / median)
    return result


def measure(cfg):
    """Run the measurements described by ``cfg`` in this process and return the result dict."""
    backend = backend_of(cfg["impl"])
    native = cfg["impl"] in NATIVES
    if not native:
        os.environ.setdefault("KERAS_BACKEND", backend)
        import keras

        if keras.backend.backend() != backend:
            raise RuntimeError(f"{cfg['impl']} needs KERAS_BACKEND={backend}, but Keras runs {keras.backend.backend()}.")
    start = time.perf_counter()
    model = native_model(cfg) if native else keras_model(cfg)
    result = dict(cfg, params=native_params(model) if native else keras_params(model), device=device_name(backend),
                  threads=threads(backend))  # fmt: skip
    if smp_reference(cfg["model"]) is not None:
        result["weights"] = "smp seed 0" if native or _has_smp() else "random (segmentation_models_pytorch missing)"
    if "train" in cfg["tasks"]:
        result["train"] = (native_train if native else keras_train)(cfg, model)
        result.update(host_peak_mb=host_peak_mb(), device_peak_mb=device_peak_mb(backend))
    if "predict" in cfg["tasks"]:
        predict = native_predict if native else exported_predict if cfg["impl"] in EXPORTED else keras_predict
        result["predict"] = predict(cfg, model)
    result.setdefault("host_peak_mb", host_peak_mb())
    result.setdefault("device_peak_mb", device_peak_mb(backend))
    result["wall_s"] = time.perf_counter() - start
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    cfg = json.loads(argv[0])
    try:
        result = measure(cfg)
    except Exception as error:  # reported as a row, the other measurements go on
        result = dict(cfg, error=f"{type(error).__name__}: {error}")
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
