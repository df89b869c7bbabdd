"""Segmentation losses as pure ``keras.ops`` functions: one formula, one function.

Shared conventions (the classes in ``keras_seg.losses`` only forward to these):

* ``y_pred`` is ``(B, H, W, C)`` logits (``from_logits=True``) or probabilities,
  always cast to float32. Label formats, modes, void pixels and sample-weight
  broadcasting are decided by :mod:`keras_seg.utils.labels`.
* ``sample_weight`` may be ``None``, a scalar, ``(B,)``, ``(B, H, W)`` or
  ``(B, H, W, 1)``; it is broadcast to a pixel weight ``s`` (0 on void pixels).
* Pixel-sum losses (cross-entropy, focal) compute
  ``sum(s * w_y * l) / sum_valid(w_y)``: class weights ``w`` normalise like
  ``torch.nn.functional.cross_entropy(weight=...)``, sample weights only scale
  (like Keras ``SparseCategoricalCrossentropy(ignore_class=...)``).
* Region losses (Dice, Jaccard, Tversky, ...) multiply ``s`` into the soft
  ``TP = sum(s p g)``, ``FP = sum(s p (1-g))`` and ``FN = sum(s (1-p) g)``.
  A class whose TP+FP+FN is exactly 0 (absent from target and prediction, or
  all its pixels void) scores a perfect 1, i.e. contributes loss 0, whatever
  ``smooth`` is.
* ``reduction``: ``"sum_over_batch_size"``/``"mean"`` give a scalar over the
  whole batch, ``"none"`` gives per-image values ``(B,)`` and ``"sum"`` the sum
  of those. Losses computed over the whole batch at once (``per_image=False``)
  repeat the batch value for every image under ``"none"``.
* Everything is jit-safe (no Python branching on tensor values) and returns 0,
  not NaN, when every pixel is void.
"""

import numpy as np
from keras import ops

from keras_seg.utils import labels as label_utils

REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "none")
_EPS = 1e-7
_PROB_EPS = 1e-7


# ----------------------------------------------------------------------------- helpers


def check_reduction(reduction):
    """Return the canonical reduction name or raise a ValueError naming the value."""
    if reduction is None:
        return "none"
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction={reduction!r} is not supported by keras_seg losses; expected one of "
            f"{REDUCTIONS} (or None, meaning 'none')."
        )
    return reduction


def _class_vector(values, num_classes, what):
    """A per-class float32 vector from a list/tuple/array, or None."""
    if values is None:
        return None
    arr = np.asarray(values, dtype="float32").reshape(-1)
    if arr.shape[0] != num_classes:
        raise ValueError(
            f"{what} has {arr.shape[0]} entries but y_pred has {num_classes} channels; "
            f"pass one value per channel."
        )
    return ops.convert_to_tensor(arr, dtype="float32")


def _prepare(y_true, y_pred, mode, ignore_index):
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    num_channels = y_pred.shape[-1]
    mode = label_utils.resolve_mode(mode, num_channels)
    targets, valid = label_utils.prepare_targets(y_true, num_channels, mode, ignore_index)
    label_utils.check_same_grid(ops.convert_to_tensor(y_true), y_pred, truth_shape=valid.shape)
    return y_pred, targets, valid, mode


def _probabilities(y_pred, mode, from_logits):
    if not from_logits:
        return y_pred
    if mode == "multiclass":
        return ops.softmax(y_pred, axis=-1)
    return ops.sigmoid(y_pred)


def _safe_ratio(num, den, empty_value=0.0):
    """``num / den`` where ``den > 0``, else ``empty_value`` (gradient-safe)."""
    positive = den > 0
    return ops.where(positive, num / ops.where(positive, den, 1.0), empty_value)


def _safe_power(x, gamma):
    """``max(x, 0) ** gamma`` with finite gradients at 0 (``gamma`` a Python number)."""
    positive = x > 0
    return ops.where(positive, ops.power(ops.where(positive, x, 1.0), gamma), 0.0)


def _reduce_ratio(num_b, den_b, reduction):
    """Pixel-sum normalisation: per-image ``(B,)`` sums -> reduced loss."""
    reduction = check_reduction(reduction)
    if reduction in ("mean", "sum_over_batch_size"):
        return _safe_ratio(ops.sum(num_b), ops.sum(den_b))
    per_image = _safe_ratio(num_b, den_b)
    return ops.sum(per_image) if reduction == "sum" else per_image


def _reduce_values(values, batch_size, reduction):
    """Reduce per-image values ``(B,)``, or broadcast a batch-level scalar."""
    reduction = check_reduction(reduction)
    if len(values.shape) == 0:
        if reduction == "none":
            return ops.ones((batch_size,), dtype="float32") * values
        if reduction == "sum":
            return values * ops.cast(batch_size, "float32")
        return values
    if reduction == "none":
        return values
    return ops.sum(values) if reduction == "sum" else ops.mean(values)


def _class_mean(per_class, class_weights=None, present=None):
    """Weighted mean over the last (class) axis; classes with weight 0 drop out."""
    weights = ops.ones_like(per_class)
    if class_weights is not None:
        weights = weights * class_weights
    if present is not None:
        weights = weights * present
    return _safe_ratio(ops.sum(per_class * weights, axis=-1), ops.sum(weights, axis=-1))


def _confusion_sums(probs, targets, weights, per_image):
    """Soft TP, FP, FN per class: ``(B, C)`` if ``per_image`` else ``(C,)``."""
    w = ops.expand_dims(weights, -1)
    axes = (1, 2) if per_image else (0, 1, 2)
    tp = ops.sum(w * probs * targets, axis=axes)
    fp = ops.sum(w * probs * (1.0 - targets), axis=axes)
    fn = ops.sum(w * (1.0 - probs) * targets, axis=axes)
    return tp, fp, fn


def _region_setup(y_true, y_pred, sample_weight, from_logits, ignore_index, mode, per_image):
    y_pred, targets, valid, mode = _prepare(y_true, y_pred, mode, ignore_index)
    probs = _probabilities(y_pred, mode, from_logits)
    weights = label_utils.pixel_weights(sample_weight, valid)
    tp, fp, fn = _confusion_sums(probs, targets, weights, per_image)
    return tp, fp, fn, ops.shape(y_pred)[0], y_pred.shape[-1]


def tversky_index(tp, fp, fn, alpha, beta, smooth):
    """``(TP + s) / (TP + a FP + b FN + s)`` (Salehi et al. 2017; MONAI's, SMP's and the seed's form); 1 where
    TP+FP+FN == 0.

    With ``alpha = beta = 0.5`` it is the Dice score ``(2TP + 2s) / (2TP + FP + FN + 2s)``: Dice's
    with twice the smoothing (:func:`dice` passes ``smooth / 2``); with ``smooth = 0`` the two are equal.
    """
    num = tp + smooth
    den = tp + alpha * fp + beta * fn + smooth
    score = num / ops.maximum(den, _EPS)
    return ops.where(tp + fp + fn > 0, score, 1.0)


# ----------------------------------------------------------------------------- pixel-sum losses


def cross_entropy(
    y_true,
    y_pred,
    sample_weight=None,
    from_logits=True,
    ignore_index=None,
    class_weights=None,
    label_smoothing=0.0,
    mode=None,
    reduction="sum_over_batch_size",
):
    """Cross-entropy, normalised as ``sum(s * w_y * l) / sum_valid(w_y)``.

    * multiclass: ``l = -sum_k t'_k log p_k`` with torch's label smoothing
      ``t' = (1 - eps) t + eps / K``; with ``class_weights`` each term is weighted
      by ``w_k`` and the denominator is ``sum_valid w_y`` (identical to
      ``F.cross_entropy(weight=, ignore_index=, label_smoothing=)``).
    * binary / multilabel: numerically stable BCE with logits per channel,
      ``t' = (1 - eps) t + eps / 2``, averaged over channels (weighted mean with
      ``class_weights`` of length C).
    """
    y_pred, targets, valid, mode = _prepare(y_true, y_pred, mode, ignore_index)
    num_classes = y_pred.shape[-1]
    cw = _class_vector(class_weights, num_classes, "class_weights")
    pixel_w = label_utils.pixel_weights(sample_weight, valid)
    eps = float(label_smoothing)
    if mode == "multiclass":
        if from_logits:
            log_p = ops.log_softmax(y_pred, axis=-1)
        else:
            log_p = ops.log(ops.clip(y_pred, _PROB_EPS, 1.0))
        row = ops.sum(targets, axis=-1, keepdims=True)  # 1 on valid pixels, 0 on void ones
        smoothed = (1.0 - eps) * targets + (eps / num_classes) * row
        terms = -smoothed * log_p
        if cw is not None:
            terms = terms * cw
            denom = ops.sum(targets * cw, axis=-1) * valid
        else:
            denom = ops.sum(targets, axis=-1) * valid
        per_pixel = ops.sum(terms, axis=-1)
    else:
        smoothed = (1.0 - eps) * targets + eps / 2.0
        if from_logits:
            bce = ops.relu(y_pred) - y_pred * smoothed - ops.log_sigmoid(ops.abs(y_pred))
        else:
            p = ops.clip(y_pred, _PROB_EPS, 1.0 - _PROB_EPS)
            bce = -(smoothed * ops.log(p) + (1.0 - smoothed) * ops.log(1.0 - p))
        per_pixel = _class_mean(bce, cw)
        denom = valid
    num_b = ops.sum(per_pixel * pixel_w, axis=(1, 2))
    den_b = ops.sum(denom, axis=(1, 2))
    return _reduce_ratio(num_b, den_b, reduction)


def focal(
    y_true,
    y_pred,
    sample_weight=None,
    from_logits=True,
    ignore_index=None,
    gamma=2.0,
    alpha=None,
    mode=None,
    reduction="sum_over_batch_size",
):
    """Focal loss (Lin et al. 2017), mean over valid pixels: ``sum(s * l) / n_valid``.

    * multiclass: ``l = -sum_k a_k t_k (1 - p_k)^gamma log p_k``; ``alpha`` is a
      per-class list, or a scalar meaning ``[1 - alpha, alpha, ..., alpha]``
      (class 0 is background, MONAI's convention); ``alpha=None`` means 1.
    * binary / multilabel: torchvision ``sigmoid_focal_loss`` per channel,
      ``l = a_t (1 - p_t)^gamma BCE`` with ``a_t = alpha t + (1 - alpha)(1 - t)``
      (``alpha`` a scalar, or one value per channel), averaged over channels.

    ``gamma=0, alpha=None`` equals :func:`cross_entropy` exactly.
    """
    y_pred, targets, valid, mode = _prepare(y_true, y_pred, mode, ignore_index)
    num_classes = y_pred.shape[-1]
    pixel_w = label_utils.pixel_weights(sample_weight, valid)
    gamma = float(gamma)
    if mode == "multiclass":
        if from_logits:
            log_p = ops.log_softmax(y_pred, axis=-1)
        else:
            log_p = ops.log(ops.clip(y_pred, _PROB_EPS, 1.0))
        terms = -targets * log_p
        if gamma != 0.0:
            terms = terms * _safe_power(-ops.expm1(log_p), gamma)  # (1 - p)^gamma
        if alpha is not None:
            if np.ndim(alpha) == 0:
                a = float(alpha)
                alpha = [1.0 - a] + [a] * (num_classes - 1)
            terms = terms * _class_vector(alpha, num_classes, "alpha")
        per_pixel = ops.sum(terms, axis=-1)
    else:
        if from_logits:
            bce = ops.relu(y_pred) - y_pred * targets - ops.log_sigmoid(ops.abs(y_pred))
            p = ops.sigmoid(y_pred)
        else:
            p = ops.clip(y_pred, _PROB_EPS, 1.0 - _PROB_EPS)
            bce = -(targets * ops.log(p) + (1.0 - targets) * ops.log(1.0 - p))
        terms = bce
        if gamma != 0.0:
            one_minus_pt = p * (1.0 - targets) + (1.0 - p) * targets
            terms = terms * _safe_power(one_minus_pt, gamma)
        if alpha is not None:
            a = float(alpha) if np.ndim(alpha) == 0 else _class_vector(alpha, num_classes, "alpha")
            terms = terms * (a * targets + (1.0 - a) * (1.0 - targets))
        per_pixel = ops.mean(terms, axis=-1)
    num_b = ops.sum(per_pixel * pixel_w, axis=(1, 2))
    den_b = ops.sum(valid, axis=(1, 2))
    return _reduce_ratio(num_b, den_b, reduction)


# ----------------------------------------------------------------------------- region losses


def tversky(
    y_true,
    y_pred,
    sample_weight=None,
    from_logits=True,
    ignore_index=None,
    alpha=0.5,
    beta=0.5,
    gamma=1.0,
    smooth=1.0,
    class_weights=None,
    per_image=False,
    ignore_empty_classes=False,
    mode=None,
    reduction="sum_over_batch_size",
):
    """``mean_k w_k (1 - TI_k)^gamma`` with TI the Tversky index of :func:`tversky_index`.

    ``alpha`` weighs false positives, ``beta`` false negatives; ``gamma`` is the
    focal-Tversky exponent applied per class before the class mean (Abraham &
    Khan 2019). ``alpha = beta = 0.5, gamma = 1`` is :func:`dice`. Sums run over
    each image (``per_image=True``) or the whole batch (``False``).
    ``ignore_empty_classes`` drops classes with no target pixel from the mean.
    In binary mode only the foreground channel is scored.
    """
    tp, fp, fn, batch_size, num_classes = _region_setup(
        y_true, y_pred, sample_weight, from_logits, ignore_index, mode, per_image
    )
    ti = tversky_index(tp, fp, fn, alpha, beta, smooth)
    per_class = 1.0 - ti
    if float(gamma) != 1.0:
        per_class = _safe_power(per_class, float(gamma))
    present = ops.cast(tp + fn > 0, "float32") if ignore_empty_classes else None
    cw = _class_vector(class_weights, num_classes, "class_weights")
    return _reduce_values(_class_mean(per_class, cw, present), batch_size, reduction)


def dice(
    y_true,
    y_pred,
    sample_weight=None,
    from_logits=True,
    ignore_index=None,
    smooth=1.0,
    class_weights=None,
    per_image=False,
    ignore_empty_classes=False,
    mode=None,
    reduction="sum_over_batch_size",
):
    """Soft Dice loss ``mean_k w_k (1 - (2TP + s) / (2TP + FP + FN + s))``.

    :func:`tversky` with ``alpha = beta = 0.5`` and ``smooth / 2`` (same code path): the Tversky
    index then is ``(TP + s/2) / (TP + FP/2 + FN/2 + s/2)``, the Dice score with smoothing ``s``.
    """
    return tversky(
        y_true,
        y_pred,
        sample_weight,
        from_logits=from_logits,
        ignore_index=ignore_index,
        alpha=0.5,
        beta=0.5,
        gamma=1.0,
        smooth=smooth / 2.0,
        class_weights=class_weights,
        per_image=per_image,
        ignore_empty_classes=ignore_empty_classes,
        mode=mode,
        reduction=reduction,
    )


def jaccard(
    y_true,
    y_pred,
    sample_weight=None,
    from_logits=True,
    ignore_index=None,
    smooth=1.0,
    class_weights=None,
    per_image=False,
    ignore_empty_classes=False,
    mode=None,
    reduction="sum_over_batch_size",
):
    """Soft IoU loss ``mean_k w_k (1 - (TP + s) / (TP + FP + FN + s))``; 1 - IoU = 0 for empty classes."""
    tp, fp, fn, batch_size, num_classes = _region_setup(
        y_true, y_pred, sample_weight, from_logits, ignore_index, mode, per_image
    )
    iou = (tp + smooth) / ops.maximum(tp + fp + fn + smooth, _EPS)
    iou = ops.where(tp + fp + fn > 0, iou, 1.0)
    present = ops.cast(tp + fn > 0, "float32") if ignore_empty_classes else None
    cw = _class_vector(class_weights, num_classes, "class_weights")
    return _reduce_values(_class_mean(1.0 - iou, cw, present), batch_size, reduction)


def generalized_dice(
    y_true,
    y_pred,
    sample_weight=None,
    from_logits=True,
    ignore_index=None,
    smooth=1e-5,
    per_image=False,
    mode=None,
    reduction="sum_over_batch_size",
):
    """Generalized Dice (Sudre et al. 2017): ``1 - (2 sum_k w_k TP_k + s) / (sum_k w_k (2TP_k + FP_k + FN_k) + s)``.

    ``w_k = 1 / G_k^2`` with ``G_k = TP_k + FN_k`` the (weighted) target volume;
    for a class absent from the target the infinite weight is replaced by the
    largest finite weight of the same image (batch if ``per_image=False``), as
    ``monai.losses.GeneralizedDiceLoss(w_type="square")`` does. An image with no
    target pixel at all has every weight 0 and loss 0.
    """
    tp, fp, fn, batch_size, _ = _region_setup(
        y_true, y_pred, sample_weight, from_logits, ignore_index, mode, per_image
    )
    ground = tp + fn
    has = ground > 0
    finite_w = ops.where(has, 1.0 / ops.square(ops.where(has, ground, 1.0)), 0.0)
    max_w = ops.max(finite_w, axis=-1, keepdims=True)
    w = ops.where(has, finite_w, max_w)
    num = 2.0 * ops.sum(w * tp, axis=-1) + smooth
    den = ops.sum(w * (2.0 * tp + fp + fn), axis=-1) + smooth
    loss = 1.0 - _safe_ratio(num, den, empty_value=1.0)
    return _reduce_values(loss, batch_size, reduction)


# ----------------------------------------------------------------------------- Lovasz


def _lovasz_flat(errors, fg):
    """Berman et al.'s Lovasz extension along the last axis, batched over leading axes.

    Void pixels must come with ``errors == 0`` and ``fg == 0``: they sort after
    every positive error and add exactly nothing.
    """
    order = ops.argsort(-errors, axis=-1)
    errors_sorted = ops.take_along_axis(errors, order, axis=-1)
    fg_sorted = ops.take_along_axis(fg, order, axis=-1)
    gts = ops.sum(fg_sorted, axis=-1, keepdims=True)
    intersection = gts - ops.cumsum(fg_sorted, axis=-1)
    union = gts + ops.cumsum(1.0 - fg_sorted, axis=-1)  # >= 1 everywhere
    jaccard_ = 1.0 - intersection / union
    grad = ops.concatenate([jaccard_[..., :1], jaccard_[..., 1:] - jaccard_[..., :-1]], axis=-1)
    return ops.sum(errors_sorted * grad, axis=-1)


def _to_class_major(x, per_image):
    """``(B, H, W, C)`` -> ``(B, C, H*W)`` if per_image else ``(C, B*H*W)``."""
    c = x.shape[-1]
    if per_image:
        b = ops.shape(x)[0]
        return ops.transpose(ops.reshape(x, (b, -1, c)), (0, 2, 1))
    return ops.transpose(ops.reshape(x, (-1, c)), (1, 0))


def lovasz_softmax(
    y_true,
    y_pred,
    sample_weight=None,
    from_logits=True,
    ignore_index=None,
    classes="present",
    per_image=False,
    mode=None,
    reduction="sum_over_batch_size",
):
    """Lovasz-Softmax (Berman et al. 2018): convex surrogate of per-class ``1 - IoU``.

    Errors ``|fg_k - p_k|`` (softmax; sigmoid per channel in binary/multilabel
    mode) are sorted per class and dotted with the Lovasz gradient of the
    Jaccard loss. ``classes``: ``"present"`` (mean over classes present in the
    target), ``"all"``, or a list of class ids. Sample weights scale each
    pixel's error before sorting (weight 0 = void). If no class counts, 0.
    """
    y_pred, targets, valid, mode = _prepare(y_true, y_pred, mode, ignore_index)
    num_classes = y_pred.shape[-1]
    probs = _probabilities(y_pred, mode, from_logits)
    pixel_w = ops.expand_dims(label_utils.pixel_weights(sample_weight, valid), -1)
    fg = targets * ops.cast(pixel_w > 0, "float32")
    errors = ops.abs(fg - probs) * pixel_w
    errors = _to_class_major(errors, per_image)
    fg = _to_class_major(fg, per_image)
    per_class = _lovasz_flat(errors, fg)  # (B, C) or (C,)
    if classes == "present":
        select = ops.cast(ops.sum(fg, axis=-1) > 0, "float32")
    elif classes == "all":
        select = None
    else:
        ids = np.asarray(classes, dtype="int64").reshape(-1)
        if ids.size == 0 or ids.min() < 0 or ids.max() >= num_classes:
            raise ValueError(
                f"classes={classes!r} must be 'present', 'all' or a non-empty list of ids in [0, {num_classes})."
            )
        mask = np.zeros((num_classes,), "float32")
        mask[ids] = 1.0
        select = ops.convert_to_tensor(mask)
    loss = _class_mean(per_class, None, select)
    return _reduce_values(loss, ops.shape(y_pred)[0], reduction)


def lovasz_hinge(
    y_true,
    y_pred,
    sample_weight=None,
    from_logits=True,
    ignore_index=None,
    per_image=True,
    mode=None,
    reduction="sum_over_batch_size",
):
    """Binary Lovasz hinge (Berman et al. 2018) on logits, per channel then channel mean.

    ``errors = relu(1 - x * (2t - 1))``, sorted and dotted with the Lovasz gradient.
    Only ``"binary"`` and ``"multilabel"`` modes; with ``from_logits=False`` the
    probabilities are turned back into logits. Sample weights scale the errors.
    """
    y_pred, targets, valid, mode = _prepare(y_true, y_pred, mode, ignore_index)
    if mode == "multiclass":
        raise ValueError(
            "LovaszHingeLoss is a binary loss: it needs mode='binary' (1 channel) or "
            f"mode='multilabel', got y_pred with {y_pred.shape[-1]} channels in multiclass mode. "
            "Use LovaszSoftmaxLoss for multiclass segmentation."
        )
    logits = y_pred
    if not from_logits:
        p = ops.clip(y_pred, _PROB_EPS, 1.0 - _PROB_EPS)
        logits = ops.log(p) - ops.log(1.0 - p)
    pixel_w = ops.expand_dims(label_utils.pixel_weights(sample_weight, valid), -1)
    fg = targets * ops.cast(pixel_w > 0, "float32")
    errors = ops.relu(1.0 - logits * (2.0 * targets - 1.0)) * pixel_w
    per_channel = _lovasz_flat(_to_class_major(errors, per_image), _to_class_major(fg, per_image))
    loss = ops.mean(per_channel, axis=-1)
    return _reduce_values(loss, ops.shape(y_pred)[0], reduction)
