"""Data-parallel training on every local device (several GPUs, or a CPU split for trying), through Keras' engines.

    import keras_seg

    with keras_seg.training.data_parallel() as replicas:      # JAX or TensorFlow backend
        print(replicas)                                       # 4 replicas on gpu:0, gpu:1, gpu:2, gpu:3 (...)
        replicas.check_batch_size(32)                         # the global batch: 8 images per device and step
        model = keras_seg.models.UNet(21)                     # build (or load) the model inside
        keras_seg.training.train(model, train_ds, val_ds, epochs=40, out_dir="runs/x")

The context runs no training engine of its own; it selects Keras' one:

* **JAX**: a ``keras.distribution.DataParallel`` over ``keras.distribution.list_devices()``,
  set with ``keras.distribution.set_distribution`` for the block and restored after it.
  The step stays one global program (GSPMD): the loss, the BatchNormalization
  statistics and every metric are computed over the whole global batch, so a run
  follows the one-device run up to float rounding.
* **TensorFlow**: a ``tf.distribute.MirroredStrategy`` over the same devices, its
  ``scope()`` held for the block (model creation or loading, ``compile`` and ``fit``
  happen inside). Each replica runs the step on its share of the batch and the gradients are
  summed (keras_seg losses divide their mean by the replica count, as Keras' own do).
  The metric state (``aggregation="sum"`` variables) is summed over the replicas, so
  epoch metrics are exact. BatchNormalization normalises each replica's share on its
  own, as TensorFlow and PyTorch DDP do by default, and a region loss such as Dice is
  computed per share: training follows the one-device run closely, not bit for bit.
  Keras' ``BatchNormalization(synchronized=True)`` would close that gap, but it is
  written into a generic model's saved config, which then refuses to load on JAX or
  PyTorch, and it costs three all-reduces per layer and step; it is not switched on.
* **PyTorch**: Keras 3 has no distribution support for the torch backend (there is no
  ``keras/src/backend/torch/distribution_lib.py``): ``model.fit`` runs on one device,
  and :func:`data_parallel` raises :class:`DistributeError` naming the alternatives.

The batch a dataset yields is the *global* batch, split into one equal share per
replica, so its size must be a multiple of the replica count
(:meth:`Replicas.check_batch_size`). For a short last batch (a dataset size that is
not a multiple of the batch), inside the block:

* JAX cannot split it unevenly, so every ``tf.data.Dataset`` of ``(images, masks[,
  weights])`` given to ``fit`` / ``evaluate`` has its short batches padded to a multiple
  of the device count with blank images whose mask pixels are void (-1; the largest
  value for unsigned masks; all-zero rows for one-hot targets).
* TensorFlow shares it unevenly; only a batch smaller than the replica count is padded
  (to it), since an empty share fails in TensorFlow's BatchNormalization kernels.

Every keras_seg loss and metric leaves void pixels out, so metrics (the confusion
matrix and all that is read from it) are exact, and so is each batch's loss on JAX.
Keras' running loss weighs each batch (TensorFlow: each share) by its image count,
padding included, so a padded last batch shifts ``val_loss`` a little: TensorFlow counts
the void share as loss 0 (``val_loss`` times ``N / (N + padded images)``), JAX gives the
padded batch the weight of its padded size. A loss that is not keras_seg's may not take
-1 as void. NumPy arrays under JAX and ``predict`` inputs are not padded: give them a
size that is a multiple of the batch, or use a dataset. Batch training data with
``drop_remainder=True`` (``keras-seg train --distribute`` does), so that no training
step puts blank images into BatchNormalization statistics.

With one device, the block warns and runs as usual without distribution
(``replicas.distributed`` is False), so one script serves a laptop and a GPU server.

Several hosts, JAX backend: run the same program on every host with
``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (``host0:port,host1:port,...``; the first is the
coordinator), ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID``
set; :func:`data_parallel` then calls ``keras.distribution.initialize()``
(``jax.distributed.initialize``) before it lists the devices of all hosts, so enter it
before anything runs a JAX computation. Keras shards each ``tf.data`` dataset per host
(batch training data with ``drop_remainder=True`` there: a short last batch splits into
unequal host shares). :attr:`Replicas.is_chief` is true on process 0 only, whose files
count (``keras-seg train`` writes the other hosts' copies into ``OUT/worker-N``).
TensorFlow's ``MultiWorkerMirroredStrategy`` does not run Keras 3's ``fit``
(keras-team/keras#20585), so with ``TF_CONFIG`` set :func:`data_parallel` raises
:class:`DistributeError` saying so.

To try this without several accelerators, split the CPU into N devices with
``KERAS_SEG_CPU_DEVICES=N`` (read by :func:`data_parallel` and ``keras-seg train
--distribute``) or :func:`simulate_cpu_devices`, before the backend runs its first
operation (JAX: ``jax_num_cpu_devices``, like ``XLA_FLAGS=--xla_force_host_platform_device_count=N``;
TensorFlow: N logical CPU devices). They share the same cores: good for checking
results, not for speed.
"""

import contextlib
import os
import warnings

import keras

CPU_DEVICES_ENV = "KERAS_SEG_CPU_DEVICES"
_JAX_MULTI_HOST_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES")


class DistributeError(ValueError):
    """Data-parallel training cannot run as asked (backend, device count, batch size); the message says what to change."""


class Replicas:
    """What :func:`data_parallel` set up: the replicas a step runs on.

    Attributes:
        backend: the Keras backend (``"jax"`` or ``"tensorflow"``).
        devices: the device names, one per replica, e.g. ``("gpu:0", "gpu:1")``
            (all hosts' devices in a multi-host run).
        num_replicas: ``len(devices)``: how many shares each global batch is split into.
        num_processes: hosts (JAX processes, TensorFlow workers) taking part; 1 on one machine.
        process_id: this process's index among them (0 on one machine).
        is_chief: whether this process is the one whose files count (process 0, or
            TensorFlow's ``chief`` task).
        engine: the Keras / TensorFlow object doing the work: a
            ``keras.distribution.DataParallel`` (JAX), a ``tf.distribute`` strategy
            (TensorFlow), or ``None`` on a single device.
    """

    def __init__(self, backend, devices, engine=None, num_processes=1, process_id=0, is_chief=True):
        self.backend = backend
        self.devices = tuple(devices)
        self.engine = engine
        self.num_processes = int(num_processes)
        self.process_id = int(process_id)
        self.is_chief = bool(is_chief)

    @property
    def num_replicas(self):
        return len(self.devices)

    @property
    def distributed(self):
        """False when the block runs on one device, as without :func:`data_parallel`."""
        return self.engine is not None

    def check_batch_size(self, batch_size, name="batch_size"):
        """Raise :class:`DistributeError` unless the global ``batch_size`` splits evenly over the replicas.

        Returns the per-replica batch size. ``name`` is how the message calls the value
        (the CLI passes ``"--batch-size"``).
        """
        n = self.num_replicas
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise DistributeError(f"{name}={batch_size!r} must be a positive integer (a multiple of the {n} replicas).")
        if batch_size % n:
            lower, upper = batch_size - batch_size % n, batch_size + n - batch_size % n
            hint = f"{lower} or {upper}" if lower else f"{upper}"
            raise DistributeError(
                f"{name} {batch_size} is not divisible by the {n} replicas ({', '.join(self.devices)}): each step splits "
                f"the global batch into {n} equal shares. Use a multiple of {n}, e.g. {name} {hint}."
            )
        return batch_size // n

    def __repr__(self):
        where = ", ".join(self.devices)
        engine = _engine_name(self.engine) if self.engine is not None else "no distribution"
        hosts = f", {self.num_processes} hosts" if self.num_processes > 1 else ""
        plural = "s" if self.num_replicas != 1 else ""
        return f"{self.num_replicas} replica{plural} on {where} ({self.backend} {engine}{hosts})"


def _engine_name(engine):
    """The Keras / TensorFlow class behind ``engine`` (``DataParallel``, ``MirroredStrategy``), not our padding subclass."""
    return next(c.__name__ for c in type(engine).__mro__ if not c.__module__.startswith("keras_seg"))


@contextlib.contextmanager
def data_parallel(devices=None, *, batch_size=None):
    """Run the block data-parallel over ``devices`` (default: every device Keras lists); yields :class:`Replicas`.

    Build or load the model, compile and fit inside the block (``keras_seg.training.train``
    does all three, and loads ``last.keras`` itself when resuming). See the module
    docstring for what each backend does and for several hosts.

    Args:
        devices: ``None`` (all of ``keras.distribution.list_devices()``, i.e. the GPUs /
            TPUs, else the CPU devices), a list of names such as ``["gpu:0", "gpu:1"]``,
            or an int ``n`` for the first ``n`` of them.
        batch_size: if given, checked with :meth:`Replicas.check_batch_size` on entry.

    Raises:
        DistributeError: on the PyTorch backend, for a bad ``devices`` or ``batch_size``,
            or when ``KERAS_SEG_CPU_DEVICES`` is set too late to take effect.

    With one device it warns and runs the block as usual (``replicas.distributed`` is False).
    """
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        raise DistributeError(
            f"Data-parallel training (--distribute, keras_seg.training.data_parallel) is not available on the {backend} "
            "backend: Keras 3 has no distribution support for it, so model.fit runs on one device. Use the JAX or "
            "TensorFlow backend (KERAS_BACKEND=jax or --backend jax), or write your own training loop around "
            "torch.nn.parallel.DistributedDataParallel launched with torchrun (the Keras guide 'Multi-GPU distributed "
            "training with PyTorch' shows one)."
        )
    cpu_devices_from_env()
    if backend == "jax":
        context = _jax(devices)
    else:
        context = _tensorflow(devices)
    with context as replicas:
        if batch_size is not None:
            replicas.check_batch_size(batch_size)
        yield replicas


def simulate_cpu_devices(count):
    """Split the host CPU into ``count`` devices so data-parallel code can be tried without accelerators.

    Must run before the backend executes its first operation (right after ``import
    keras_seg`` is fine): JAX sets ``jax_num_cpu_devices`` (the same as
    ``XLA_FLAGS=--xla_force_host_platform_device_count``), TensorFlow configures
    ``count`` logical CPU devices. Calling it again with the same count does nothing;
    on PyTorch it does nothing. The devices share the same cores: it tests
    correctness, not speed. Raises :class:`DistributeError` when it is too late.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DistributeError(f"The number of simulated CPU devices must be a positive integer; got {count!r}.")
    backend = keras.backend.backend()
    late = (
        f"Cannot split the CPU into {count} devices: the {backend} backend has already run operations (a model, or "
        f"on TensorFlow a tf.data pipeline, was built). Call keras_seg.training.simulate_cpu_devices({count}), or "
        f"enter data_parallel() with {CPU_DEVICES_ENV}={count} set, before anything else runs on the backend."
    )
    if backend == "jax":
        import jax

        if jax.config.jax_num_cpu_devices == count:
            return
        try:
            jax.config.update("jax_num_cpu_devices", count)
        except RuntimeError as error:  # the backend is initialised: fine if it already has that many
            if len(jax.devices("cpu")) != count:
                raise DistributeError(late) from error
    elif backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        current = tf.config.get_logical_device_configuration(cpu)
        if current is not None and len(current) == count:
            return
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError as error:
            if len(tf.config.list_logical_devices("CPU")) != count:
                raise DistributeError(late) from error


def cpu_devices_from_env():
    """Apply ``KERAS_SEG_CPU_DEVICES=N`` with :func:`simulate_cpu_devices`; returns N, or None when it is not set."""
    text = os.environ.get(CPU_DEVICES_ENV, "").strip()
    if not text:
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise DistributeError(
            f"{CPU_DEVICES_ENV}={text!r} must be a positive whole number of devices, e.g. {CPU_DEVICES_ENV}=2."
        )
    simulate_cpu_devices(count)
    return count


# ---------------------------------------------------------------------------------------------- backends


def _pick(devices, available):
    """The device names asked for: all, the first n, or a checked list."""
    if devices is None:
        return list(available)
    if isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise DistributeError(
                f"devices={devices} asks for {devices} devices but {len(available)} are available ({', '.join(available)})."
            )
        return list(available[:devices])
    names = [str(d).lower() for d in devices]
    unknown = [d for d in names if d not in available]
    if unknown or not names:
        raise DistributeError(
            f"devices={list(devices)!r}: {', '.join(unknown) or 'an empty list'} not among the available devices "
            f"({', '.join(available)}); pass names from keras.distribution.list_devices(), an int, or None for all."
        )
    return names


def _single_device_warning(names):
    kind = names[0].split(":")[0].upper() if names else "?"
    hint = f" On a CPU-only machine, {CPU_DEVICES_ENV}=2 splits the CPU to try it out." if kind == "CPU" else ""
    warnings.warn(
        f"data_parallel found {len(names)} device ({', '.join(names)}, {kind}); training runs on it as usual, without "
        f"distribution.{hint}",
        stacklevel=4,
    )


@contextlib.contextmanager
def _jax(devices):
    import jax

    if any(name in os.environ for name in _JAX_MULTI_HOST_ENV) and not jax.distributed.is_initialized():
        keras.distribution.initialize()
    names = _pick(devices, keras.distribution.list_devices())
    hosts = (jax.process_count(), jax.process_index(), jax.process_index() == 0)
    if len(names) < 2:
        _single_device_warning(names)
        yield Replicas("jax", names, None, *hosts)
        return
    distribution = _PaddingDataParallel(devices=names)
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(distribution)
    try:
        yield Replicas("jax", names, distribution, *hosts)
    finally:
        keras.distribution.set_distribution(previous)


@contextlib.contextmanager
def _tensorflow(devices):
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        raise DistributeError(
            f"TF_CONFIG is set, but Keras {keras.__version__} cannot fit under tf.distribute.MultiWorkerMirroredStrategy "
            "(its TensorFlow trainer fails in _maybe_symbolic_build with 'Attempt to convert a value (PerReplica...)', "
            "keras-team/keras#20585). Train on several hosts with the JAX backend (KERAS_DISTRIBUTION_JOB_ADDRESSES, "
            "KERAS_DISTRIBUTION_NUM_PROCESSES, KERAS_DISTRIBUTION_PROCESS_ID), or unset TF_CONFIG to use this "
            "machine's devices."
        )
    names = _pick(devices, keras.distribution.list_devices())
    if len(names) < 2:
        _single_device_warning(names)
        yield Replicas("tensorflow", names, None)
        return
    strategy = _padding(tf.distribute.MirroredStrategy)(devices=["/" + name for name in names])
    with strategy.scope():
        yield Replicas("tensorflow", names, strategy)


def _padding(strategy_class):
    """A subclass of the ``tf.distribute`` strategy that pads short batches before distributing a dataset.

    Keras' TensorFlow trainer hands every dataset (arrays included, as a ``tf.data``
    pipeline) to ``strategy.experimental_distribute_dataset``; without the padding a
    last batch smaller than the replica count leaves a replica an empty share, which
    TensorFlow's BatchNormalization kernels reject.
    """

    class Padding(strategy_class):
        def experimental_distribute_dataset(self, dataset, options=None):
            padded = pad_batches(dataset, self.num_replicas_in_sync, uneven=True)
            return super().experimental_distribute_dataset(padded, options)

    return Padding


class _PaddingDataParallel(keras.distribution.DataParallel):
    """``keras.distribution.DataParallel`` whose ``tf.data`` batches always split evenly over the local devices.

    Keras calls ``distribute_dataset`` on every ``tf.data.Dataset`` that ``fit`` /
    ``evaluate`` reads under the distribution; after Keras' own per-host sharding this
    pads each short batch of ``(images, masks[, weights])`` with void samples (see the
    module docstring). Full batches pass through unchanged.
    """

    def distribute_dataset(self, dataset):
        dataset = super().distribute_dataset(dataset)
        return pad_batches(dataset, max(1, self.num_model_replicas // max(1, self.num_processes)))


def pad_batches(dataset, multiple, uneven=False):
    """Pad every batch of a ``(x, masks[, weights])`` dataset to a multiple of ``multiple`` with void samples.

    With ``uneven=True`` only batches smaller than ``multiple`` are padded (to
    ``multiple``): TensorFlow splits the others unevenly by itself.

    Images (and weights) are padded with zeros, index masks with -1 (unsigned masks
    with their largest value), one-hot targets with all-zero rows: the void pixels
    keras_seg's losses and metrics leave out. Boolean masks have no void value: a batch
    of them that needs padding stops the pipeline with an error saying to cast them to
    int32. Datasets of another structure, or whose batch size is statically a multiple,
    are returned as they are.
    """
    import tensorflow as tf

    spec = dataset.element_spec
    if multiple <= 1 or not isinstance(spec, tuple) or len(spec) not in (2, 3):
        return dataset
    leading = tf.nest.flatten(spec[0])[0]
    if not hasattr(leading, "shape") or not leading.shape.rank:
        return dataset
    static = leading.shape[0]
    if static is not None and (static >= multiple if uneven else static % multiple == 0):
        return dataset

    def void(t):
        if t.dtype.is_unsigned:
            return t.dtype.max
        if t.dtype == tf.bool or (t.shape.rank == 4 and (t.shape[-1] or 1) > 1):
            return tf.zeros([], t.dtype)  # one-hot rows of zeros are void (booleans: checked below)
        return tf.constant(-1, t.dtype)

    booleans = any(t.dtype == tf.bool for t in tf.nest.flatten(spec[1]))

    def pad(*batch):
        count = tf.shape(tf.nest.flatten(batch[0])[0])[0]
        extra = tf.maximum(multiple - count, 0) if uneven else tf.math.floormod(-count, multiple)
        if booleans:
            message = (
                f"A batch of boolean masks must be padded to split over {multiple} devices, but a boolean mask has "
                "no void value; cast the masks to int32 (e.g. dataset.map(lambda x, y: (x, tf.cast(y, 'int32'))))."
            )
            with tf.control_dependencies([tf.debugging.assert_equal(extra, 0, message=message)]):
                extra = tf.identity(extra)

        def grow(t, value):
            paddings = [[0, extra]] + [[0, 0]] * (t.shape.rank - 1)
            return tf.pad(t, paddings, constant_values=value)

        images = tf.nest.map_structure(lambda t: grow(t, tf.zeros([], t.dtype)), batch[0])
        masks = tf.nest.map_structure(lambda t: grow(t, void(t)), batch[1])
        rest = tuple(tf.nest.map_structure(lambda t: grow(t, tf.zeros([], t.dtype)), b) for b in batch[2:])
        return (images, masks) + rest

    return dataset.map(pad, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
