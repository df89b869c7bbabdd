"""Segmentation loss classes: thin, serializable wrappers over :mod:`keras_seg.losses.functional`.

Every loss takes ``y_true`` as an index mask ``(B, H, W)`` / ``(B, H, W, 1)`` or a
one-hot / multi-hot ``(B, H, W, K)`` target, ``y_pred`` as ``(B, H, W, K)``
logits (``from_logits=True``) or probabilities, and an optional
``sample_weight`` that is a scalar, ``(B,)``, ``(B, H, W)`` or ``(B, H, W, 1)``.
Math runs in float32 whatever the input dtype. ``reduction`` is
``"sum_over_batch_size"`` (default, same as ``"mean"``: one scalar), ``"none"``
(per-image values ``(B,)``) or ``"sum"`` (sum of the per-image values).

Losses compose: ``0.5 * CrossEntropyLoss() + DiceLoss()`` is a
:class:`CompositeLoss`, serializable like any other loss.
"""

import numbers

import keras
from keras import ops

try:  # Keras' own helpers (private API), so keras_seg scales exactly as Keras' losses do
    from keras.src.losses.loss import scale_loss_for_distribution
    from keras.src.losses.loss import unscale_loss_for_distribution
except ImportError:  # pragma: no cover - older or newer Keras layouts

    def _replicas():
        if keras.backend.backend() != "tensorflow":
            return 1
        import tensorflow as tf

        return tf.distribute.get_strategy().num_replicas_in_sync

    def scale_loss_for_distribution(value):
        n = _replicas()
        return value if n == 1 else ops.multiply(value, ops.cast(1.0 / n, value.dtype))

    def unscale_loss_for_distribution(value):
        n = _replicas()
        return value if n == 1 else ops.multiply(value, ops.cast(n, value.dtype))

from keras_seg.losses import functional as F

_register = keras.saving.register_keras_serializable(package="keras_seg")


def _listify(values):
    """Config-friendly copy of a per-class sequence (or scalar / None)."""
    if values is None or isinstance(values, numbers.Number):
        return values
    return [float(v) for v in values]


def _is_number(x):
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _combine(losses, weights=None):
    """CompositeLoss built by an operator: keeps a reduction shared by every member."""
    reductions = {loss.reduction for loss in losses}
    reduction = reductions.pop() if len(reductions) == 1 else "sum_over_batch_size"
    reduction = "none" if reduction is None else reduction
    if reduction not in F.REDUCTIONS:
        reduction = "sum_over_batch_size"
    return CompositeLoss(losses, weights, reduction=reduction)


class SegmentationLoss(keras.losses.Loss):
    """Base class: ``__call__`` hands the whole computation, reduction included, to ``compute``.

    Keras' generic per-element reduction would count void pixels; here each
    functional normalises itself (see :mod:`keras_seg.losses.functional`).
    Subclasses implement ``compute(y_true, y_pred, sample_weight, reduction)``.
    Supported reductions: ``"sum_over_batch_size"`` / ``"mean"`` (scalar),
    ``"sum"`` and ``"none"`` (per-image values ``(B,)``).

    Like Keras' own losses, a mean is divided by the number of replicas under a
    ``tf.distribute`` strategy (Keras' ``scale_loss_for_distribution``; 1 elsewhere):
    each replica computes it on its share of the batch, the replicas' gradients are
    summed, and Keras multiplies the logged value back.
    """

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        F.check_reduction(reduction)
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            value = self.compute(y_true, y_pred, sample_weight, self.reduction)
            if self.reduction in ("sum_over_batch_size", "mean"):
                value = scale_loss_for_distribution(value)
            return ops.cast(value, self.dtype)

    def call(self, y_true, y_pred):
        return self.compute(y_true, y_pred, None, "none")

    def compute(self, y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size"):
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config["dtype"] = self._dtype_policy.name
        return config

    # -- composition -----------------------------------------------------------------

    def __add__(self, other):
        if _is_number(other) and other == 0:
            return self
        if not isinstance(other, keras.losses.Loss):
            return NotImplemented
        return _combine([self, other])

    def __radd__(self, other):
        if _is_number(other) and other == 0:  # sum([...]) starts from 0
            return self
        if not isinstance(other, keras.losses.Loss):
            return NotImplemented
        return _combine([other, self])

    def __mul__(self, factor):
        if not _is_number(factor):
            return NotImplemented
        return _combine([self], [float(factor)])

    __rmul__ = __mul__

    def __truediv__(self, factor):
        if not _is_number(factor):
            return NotImplemented
        return self * (1.0 / factor)


@_register
class CompositeLoss(SegmentationLoss):
    """Weighted sum ``sum_i weights[i] * losses[i](y_true, y_pred, sample_weight)``.

    Built by ``+`` and ``*`` on losses (nested composites flatten). Each
    :class:`SegmentationLoss` member is evaluated with this loss's
    ``reduction`` (its own is not used); a plain Keras loss is called as is
    (with ``reduction="none"`` its extra axes are averaged to ``(B,)``).

    Args:
        losses: list of ``keras.losses.Loss`` (or their serialized configs).
        weights: list of floats, one per loss; defaults to all ones.
    """

    def __init__(self, losses, weights=None, name="composite_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        losses = list(losses)
        weights = [1.0] * len(losses) if weights is None else [float(w) for w in weights]
        if len(weights) != len(losses):
            raise ValueError(
                f"CompositeLoss got {len(losses)} losses but {len(weights)} weights; pass one weight per loss."
            )
        if not losses:
            raise ValueError("CompositeLoss needs at least one loss, got losses=[].")
        flat_losses, flat_weights = [], []
        for loss, weight in zip(losses, weights):
            if isinstance(loss, dict):
                loss = keras.saving.deserialize_keras_object(loss)
            if not isinstance(loss, keras.losses.Loss):
                raise TypeError(f"CompositeLoss members must be keras.losses.Loss instances; got {loss!r}.")
            if isinstance(loss, CompositeLoss):
                flat_losses.extend(loss.losses)
                flat_weights.extend(weight * w for w in loss.weights)
            else:
                flat_losses.append(loss)
                flat_weights.append(weight)
        self.losses = flat_losses
        self.weights = flat_weights

    def compute(self, y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size"):
        total = None
        for loss, weight in zip(self.losses, self.weights):
            if isinstance(loss, SegmentationLoss):
                value = loss.compute(y_true, y_pred, sample_weight, reduction)
            else:
                value = ops.cast(loss(y_true, y_pred, sample_weight), "float32")
                if loss.reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
                    value = unscale_loss_for_distribution(value)  # scaled once, by this loss's __call__
                if F.check_reduction(reduction) == "none" and len(value.shape) > 1:
                    value = ops.mean(value, axis=tuple(range(1, len(value.shape))))
            value = weight * value
            total = value if total is None else total + value
        return total

    def __mul__(self, factor):
        if not _is_number(factor):
            return NotImplemented
        return CompositeLoss(self.losses, [float(factor) * w for w in self.weights], reduction=self.reduction)

    __rmul__ = __mul__

    def get_config(self):
        config = super().get_config()
        config.update(
            losses=[keras.saving.serialize_keras_object(loss) for loss in self.losses],
            weights=list(self.weights),
        )
        return config


class _PixelArgsMixin:
    """Shared ``from_logits``, ``ignore_index`` and ``mode`` handling."""

    def _base_config(self):
        return {"from_logits": self.from_logits, "ignore_index": self.ignore_index, "mode": self.mode}


@_register
class CrossEntropyLoss(_PixelArgsMixin, SegmentationLoss):
    """Pixel-wise cross-entropy: ``sum(s * w_y * l) / sum_valid(w_y)``.

    Multiclass matches ``torch.nn.functional.cross_entropy(weight=class_weights,
    ignore_index=..., label_smoothing=...)`` (torch smoothing ``(1 - eps) t + eps / K``,
    class weights normalise); ``sample_weight`` (scalar, ``(B,)``, ``(B,H,W)`` or
    ``(B,H,W,1)``) scales pixels without entering the denominator, as Keras'
    ``SparseCategoricalCrossentropy(ignore_class=...)`` does. Binary mode is
    stable BCE with logits, multilabel the mean of per-channel BCE (smoothing
    ``(1 - eps) t + eps / 2``). All pixels void -> 0.
    """

    def __init__(
        self,
        from_logits=True,
        ignore_index=None,
        class_weights=None,
        label_smoothing=0.0,
        mode=None,
        name="cross_entropy_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"label_smoothing={label_smoothing!r} must be in [0, 1].")
        self.from_logits = from_logits
        self.ignore_index = ignore_index
        self.class_weights = _listify(class_weights)
        self.label_smoothing = float(label_smoothing)
        self.mode = mode

    def compute(self, y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size"):
        return F.cross_entropy(
            y_true,
            y_pred,
            sample_weight,
            from_logits=self.from_logits,
            ignore_index=self.ignore_index,
            class_weights=self.class_weights,
            label_smoothing=self.label_smoothing,
            mode=self.mode,
            reduction=reduction,
        )

    def get_config(self):
        config = super().get_config()
        config.update(self._base_config(), class_weights=self.class_weights, label_smoothing=self.label_smoothing)
        return config


@_register
class FocalLoss(_PixelArgsMixin, SegmentationLoss):
    """Focal loss ``-a_t (1 - p_t)^gamma log p_t``, averaged over valid pixels (``sum(s l) / n_valid``).

    Multiclass: ``alpha`` is a per-class list, or a scalar meaning
    ``[1 - alpha, alpha, ..., alpha]`` (class 0 = background, MONAI's convention),
    or None (no weighting). Binary/multilabel: torchvision ``sigmoid_focal_loss``,
    positives weighted ``alpha`` and negatives ``1 - alpha``, averaged over
    channels. ``gamma=0, alpha=None`` is exactly :class:`CrossEntropyLoss`.
    Stable for large logits (log-softmax / log-sigmoid).
    """

    def __init__(
        self,
        gamma=2.0,
        alpha=None,
        from_logits=True,
        ignore_index=None,
        mode=None,
        name="focal_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if float(gamma) < 0:
            raise ValueError(f"gamma={gamma!r} must be >= 0.")
        self.gamma = float(gamma)
        self.alpha = _listify(alpha)
        self.from_logits = from_logits
        self.ignore_index = ignore_index
        self.mode = mode

    def compute(self, y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size"):
        return F.focal(
            y_true,
            y_pred,
            sample_weight,
            from_logits=self.from_logits,
            ignore_index=self.ignore_index,
            gamma=self.gamma,
            alpha=self.alpha,
            mode=self.mode,
            reduction=reduction,
        )

    def get_config(self):
        config = super().get_config()
        config.update(self._base_config(), gamma=self.gamma, alpha=self.alpha)
        return config


class _RegionLoss(_PixelArgsMixin, SegmentationLoss):
    """Common arguments of the soft-confusion (region) losses."""

    def __init__(
        self,
        smooth,
        from_logits,
        ignore_index,
        class_weights,
        per_image,
        ignore_empty_classes,
        mode,
        name,
        reduction,
        dtype,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if float(smooth) < 0:
            raise ValueError(f"smooth={smooth!r} must be >= 0.")
        self.smooth = float(smooth)
        self.from_logits = from_logits
        self.ignore_index = ignore_index
        self.class_weights = _listify(class_weights)
        self.per_image = bool(per_image)
        self.ignore_empty_classes = bool(ignore_empty_classes)
        self.mode = mode

    def _region_kwargs(self):
        return dict(
            from_logits=self.from_logits,
            ignore_index=self.ignore_index,
            smooth=self.smooth,
            class_weights=self.class_weights,
            per_image=self.per_image,
            ignore_empty_classes=self.ignore_empty_classes,
            mode=self.mode,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            self._base_config(),
            smooth=self.smooth,
            class_weights=self.class_weights,
            per_image=self.per_image,
            ignore_empty_classes=self.ignore_empty_classes,
        )
        return config


_REGION_DOC = """
    Soft counts ``TP = sum(s p g)``, ``FP = sum(s p (1-g))``, ``FN = sum(s (1-p) g)``
    with ``p`` the softmax (multiclass) or sigmoid (binary/multilabel)
    probabilities and ``s`` the pixel weight (``sample_weight`` broadcast to
    pixels, 0 on void pixels): sample weights multiply into the sums, so a
    per-image weight only acts through ``smooth``. Sums run over the whole batch
    (``per_image=False``, smp convention; ``"none"`` then repeats the batch value
    per image) or per image (``per_image=True``, then averaged). Per-class losses
    are averaged over classes, weighted by ``class_weights`` if given; in binary
    mode only the foreground channel counts. A class absent from both target and
    prediction (TP+FP+FN == 0) scores 1, i.e. loss 0, but still counts in the
    class mean unless ``ignore_empty_classes=True``, which averages over the
    classes present in the target only. All pixels void -> 0.
"""


@_register
class DiceLoss(_RegionLoss):
    """Soft Dice loss ``1 - (2TP + smooth) / (2TP + FP + FN + smooth)`` per class.

    ``smooth=1.0`` by default (keeps the gradient of nearly-empty classes tame;
    use a tiny value such as 1e-5 to match MONAI's default).
    """

    __doc__ += _REGION_DOC

    def __init__(
        self,
        smooth=1.0,
        from_logits=True,
        ignore_index=None,
        class_weights=None,
        per_image=False,
        ignore_empty_classes=False,
        mode=None,
        name="dice_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(
            smooth, from_logits, ignore_index, class_weights, per_image, ignore_empty_classes,
            mode, name, reduction, dtype,
        )

    def compute(self, y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size"):
        return F.dice(y_true, y_pred, sample_weight, reduction=reduction, **self._region_kwargs())


@_register
class JaccardLoss(_RegionLoss):
    """Soft Jaccard (IoU) loss ``1 - (TP + smooth) / (TP + FP + FN + smooth)`` per class, ``smooth=1.0`` by default."""

    __doc__ += _REGION_DOC

    def __init__(
        self,
        smooth=1.0,
        from_logits=True,
        ignore_index=None,
        class_weights=None,
        per_image=False,
        ignore_empty_classes=False,
        mode=None,
        name="jaccard_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(
            smooth, from_logits, ignore_index, class_weights, per_image, ignore_empty_classes,
            mode, name, reduction, dtype,
        )

    def compute(self, y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size"):
        return F.jaccard(y_true, y_pred, sample_weight, reduction=reduction, **self._region_kwargs())


@_register
class TverskyLoss(_RegionLoss):
    """Tversky loss ``1 - TI`` per class, ``TI = (TP + s) / (TP + alpha FP + beta FN + s)``.

    ``alpha`` weighs false positives, ``beta`` false negatives; the form of Salehi et al. 2017,
    MONAI's ``TverskyLoss`` and segmentation_models.pytorch's. ``alpha = beta = 0.5`` is the
    Dice loss with twice the smoothing: ``TverskyLoss(0.5, 0.5, smooth=s)`` equals
    ``DiceLoss(smooth=2 * s)``, and with ``smooth=0`` the two are equal. (keras_seg 0.1 wrote the
    index in a Dice-scaled form, ``(2TP + s) / (2TP + 2 alpha FP + 2 beta FN + s)``, which is this
    one with half the smoothing.)
    """

    __doc__ += _REGION_DOC

    def __init__(
        self,
        alpha=0.5,
        beta=0.5,
        smooth=1.0,
        from_logits=True,
        ignore_index=None,
        class_weights=None,
        per_image=False,
        ignore_empty_classes=False,
        mode=None,
        name="tversky_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(
            smooth, from_logits, ignore_index, class_weights, per_image, ignore_empty_classes,
            mode, name, reduction, dtype,
        )
        self.alpha = float(alpha)
        self.beta = float(beta)

    def _gamma(self):
        return 1.0

    def compute(self, y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size"):
        return F.tversky(
            y_true,
            y_pred,
            sample_weight,
            alpha=self.alpha,
            beta=self.beta,
            gamma=self._gamma(),
            reduction=reduction,
            **self._region_kwargs(),
        )

    def get_config(self):
        config = super().get_config()
        config.update(alpha=self.alpha, beta=self.beta)
        return config


@_register
class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss (Abraham & Khan 2019): ``mean_k (1 - TI_k)^gamma``.

    The exponent is applied per class, then the classes are averaged. Defaults
    ``alpha=0.3`` (FP), ``beta=0.7`` (FN), ``gamma=0.75``. See :class:`TverskyLoss`
    for the index.
    """

    __doc__ += _REGION_DOC

    def __init__(
        self,
        alpha=0.3,
        beta=0.7,
        gamma=0.75,
        smooth=1.0,
        from_logits=True,
        ignore_index=None,
        class_weights=None,
        per_image=False,
        ignore_empty_classes=False,
        mode=None,
        name="focal_tversky_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(
            alpha=alpha,
            beta=beta,
            smooth=smooth,
            from_logits=from_logits,
            ignore_index=ignore_index,
            class_weights=class_weights,
            per_image=per_image,
            ignore_empty_classes=ignore_empty_classes,
            mode=mode,
            name=name,
            reduction=reduction,
            dtype=dtype,
        )
        if float(gamma) <= 0:
            raise ValueError(f"gamma={gamma!r} must be > 0.")
        self.gamma = float(gamma)

    def _gamma(self):
        return self.gamma

    def get_config(self):
        config = super().get_config()
        config.update(gamma=self.gamma)
        return config


@_register
class GeneralizedDiceLoss(_PixelArgsMixin, SegmentationLoss):
    """Generalized Dice loss (Sudre et al. 2017) with ``w_k = 1 / (sum g_k)^2``.

    ``1 - (2 sum_k w_k TP_k + smooth) / (sum_k w_k (2TP_k + FP_k + FN_k) + smooth)``,
    soft counts as in :class:`DiceLoss` (sample weights multiply into them).
    A class absent from the target gets the largest finite weight instead of
    inf (MONAI's convention); ``smooth=1e-5`` by default like MONAI, since the
    weighted sums are O(1 / volume). ``per_image=False`` sums over the batch
    (MONAI ``batch=True``), ``True`` per image (MONAI ``batch=False``).
    No target pixel at all -> 0.
    """

    def __init__(
        self,
        smooth=1e-5,
        from_logits=True,
        ignore_index=None,
        per_image=False,
        mode=None,
        name="generalized_dice_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if float(smooth) < 0:
            raise ValueError(f"smooth={smooth!r} must be >= 0.")
        self.smooth = float(smooth)
        self.from_logits = from_logits
        self.ignore_index = ignore_index
        self.per_image = bool(per_image)
        self.mode = mode

    def compute(self, y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size"):
        return F.generalized_dice(
            y_true,
            y_pred,
            sample_weight,
            from_logits=self.from_logits,
            ignore_index=self.ignore_index,
            smooth=self.smooth,
            per_image=self.per_image,
            mode=self.mode,
            reduction=reduction,
        )

    def get_config(self):
        config = super().get_config()
        config.update(self._base_config(), smooth=self.smooth, per_image=self.per_image)
        return config


@_register
class LovaszSoftmaxLoss(_PixelArgsMixin, SegmentationLoss):
    """Lovasz-Softmax loss (Berman et al. 2018), a convex surrogate of per-class ``1 - IoU``.

    ``classes="present"`` (default, like the reference) averages over classes
    present in the target, ``"all"`` over every class, or pass a list of ids.
    ``per_image=False`` (reference default) treats the batch as one image;
    ``True`` averages per-image losses. Void pixels get error 0 and foreground 0,
    so they sort last and add exactly nothing (jit-safe ignore). Sample weights
    scale each pixel's error. Binary/multilabel modes use sigmoid channels.
    """

    def __init__(
        self,
        classes="present",
        per_image=False,
        from_logits=True,
        ignore_index=None,
        mode=None,
        name="lovasz_softmax_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(classes, str) and classes not in ("present", "all"):
            raise ValueError(f"classes={classes!r} must be 'present', 'all' or a list of class ids.")
        self.classes = classes if isinstance(classes, str) else [int(c) for c in classes]
        self.per_image = bool(per_image)
        self.from_logits = from_logits
        self.ignore_index = ignore_index
        self.mode = mode

    def compute(self, y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size"):
        return F.lovasz_softmax(
            y_true,
            y_pred,
            sample_weight,
            from_logits=self.from_logits,
            ignore_index=self.ignore_index,
            classes=self.classes,
            per_image=self.per_image,
            mode=self.mode,
            reduction=reduction,
        )

    def get_config(self):
        config = super().get_config()
        config.update(self._base_config(), classes=self.classes, per_image=self.per_image)
        return config


@_register
class LovaszHingeLoss(_PixelArgsMixin, SegmentationLoss):
    """Binary Lovasz hinge loss (Berman et al. 2018) on logits.

    For ``mode="binary"`` (1 channel) or ``"multilabel"`` (each channel a binary
    problem, channel mean). ``per_image=True`` by default, like the reference.
    Void pixels contribute exactly nothing; sample weights scale the errors.
    """

    def __init__(
        self,
        per_image=True,
        from_logits=True,
        ignore_index=None,
        mode=None,
        name="lovasz_hinge_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.per_image = bool(per_image)
        self.from_logits = from_logits
        self.ignore_index = ignore_index
        self.mode = mode

    def compute(self, y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size"):
        return F.lovasz_hinge(
            y_true,
            y_pred,
            sample_weight,
            from_logits=self.from_logits,
            ignore_index=self.ignore_index,
            per_image=self.per_image,
            mode=self.mode,
            reduction=reduction,
        )

    def get_config(self):
        config = super().get_config()
        config.update(self._base_config(), per_image=self.per_image)
        return config
