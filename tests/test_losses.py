"""Tests for keras_seg.losses: hand-computed values, reference implementations, properties."""

import math

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keras import ops

import keras_seg
from keras_seg import losses as L
from keras_seg.losses import functional as F

ATOL = 1e-5
IGNORE = 255


def to_np(x):
    return np.asarray(ops.convert_to_numpy(x))


def softmax_np(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sigmoid_np(x):
    return 1.0 / (1.0 + np.exp(-x))


def random_case(seed, b=2, h=4, w=5, k=3, ignore_frac=0.0, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(b, h, w, k)) * scale).astype("float32")
    labels = rng.integers(0, k, size=(b, h, w)).astype("int32")
    if ignore_frac:
        labels = np.where(rng.random((b, h, w)) < ignore_frac, IGNORE, labels).astype("int32")
    return labels, logits


def binary_case(seed, b=2, h=4, w=5, c=1, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(b, h, w, c)) * scale).astype("float32")
    targets = rng.integers(0, 2, size=(b, h, w, c)).astype("float32")
    return targets, logits


def binary_losses(*classes):
    return [cls(ignore_index=IGNORE) for cls in classes]


# Every loss class with a multiclass configuration honouring ignore_index.
MULTICLASS_LOSSES = {
    "ce": lambda **kw: L.CrossEntropyLoss(**kw),
    "ce_smooth_weighted": lambda **kw: L.CrossEntropyLoss(class_weights=[1.0, 2.0, 0.5], label_smoothing=0.1, **kw),
    "focal": lambda **kw: L.FocalLoss(**kw),
    "focal_alpha": lambda **kw: L.FocalLoss(alpha=[0.2, 0.3, 0.5], **kw),
    "dice": lambda **kw: L.DiceLoss(**kw),
    "dice_per_image": lambda **kw: L.DiceLoss(per_image=True, ignore_empty_classes=True, **kw),
    "jaccard": lambda **kw: L.JaccardLoss(**kw),
    "tversky": lambda **kw: L.TverskyLoss(alpha=0.3, beta=0.7, **kw),
    "focal_tversky": lambda **kw: L.FocalTverskyLoss(**kw),
    "generalized_dice": lambda **kw: L.GeneralizedDiceLoss(**kw),
    "generalized_dice_per_image": lambda **kw: L.GeneralizedDiceLoss(per_image=True, **kw),
    "lovasz": lambda **kw: L.LovaszSoftmaxLoss(**kw),
    "lovasz_per_image_all": lambda **kw: L.LovaszSoftmaxLoss(per_image=True, classes="all", **kw),
    "composite": lambda reduction="sum_over_batch_size", **kw: L.CompositeLoss(
        [L.CrossEntropyLoss(**kw), L.DiceLoss(**kw)], [0.5, 1.0], reduction=reduction
    ),
}


# ----------------------------------------------------------------------------- hand-computed values

# One 1x1x2 image, K=2, probabilities p = [0.25, 0.75] at both pixels, labels [1, 0].
P2 = np.array([[[[0.25, 0.75], [0.25, 0.75]]]], "float32")
Y2 = np.array([[[1, 0]]], "int32")
LN075, LN025 = -math.log(0.75), -math.log(0.25)  # 0.287682, 1.386294


def test_cross_entropy_by_hand():
    # pixel 1: -ln 0.75 = 0.287682 ; pixel 2: -ln 0.25 = 1.386294 ; mean = 0.836988
    got = L.CrossEntropyLoss(from_logits=False)(Y2, P2)
    np.testing.assert_allclose(to_np(got), (LN075 + LN025) / 2, atol=ATOL)
    # class weights [1, 3]: (3 * 0.287682 + 1 * 1.386294) / (3 + 1) = 0.562338
    got = L.CrossEntropyLoss(from_logits=False, class_weights=[1, 3])(Y2, P2)
    np.testing.assert_allclose(to_np(got), (3 * LN075 + LN025) / 4, atol=ATOL)
    # second pixel ignored: only -ln 0.75
    got = L.CrossEntropyLoss(from_logits=False, ignore_index=IGNORE)(np.array([[[1, IGNORE]]]), P2)
    np.testing.assert_allclose(to_np(got), LN075, atol=ATOL)
    # label smoothing 0.2, K=2: targets (0.1, 0.9) and (0.9, 0.1)
    # pixel 1: 0.1 * 1.386294 + 0.9 * 0.287682 = 0.397543 ; pixel 2: 0.9 * 1.386294 + 0.1 * 0.287682 = 1.276433
    got = L.CrossEntropyLoss(from_logits=False, label_smoothing=0.2)(Y2, P2)
    np.testing.assert_allclose(to_np(got), (0.397543 + 1.276433) / 2, atol=ATOL)


def test_binary_cross_entropy_by_hand():
    # logits 0 -> p = 0.5 -> ln 2 per pixel whatever the target
    got = L.CrossEntropyLoss()(np.array([[[0, 1]]]), np.zeros((1, 1, 2, 1), "float32"))
    np.testing.assert_allclose(to_np(got), math.log(2), atol=ATOL)
    # logit 2, target 1: ln(1 + e^-2) = 0.126928 ; logit 2, target 0: ln(1 + e^2) = 2.126928
    got = L.CrossEntropyLoss()(np.array([[[1, 0]]]), np.full((1, 1, 2, 1), 2.0, "float32"))
    np.testing.assert_allclose(to_np(got), (0.126928 + 2.126928) / 2, atol=ATOL)


def test_region_losses_by_hand():
    # class 0: g = [0, 1], p = [.25, .25] -> TP = .25, FP = .25, FN = .75
    # class 1: g = [1, 0], p = [.75, .75] -> TP = .75, FP = .75, FN = .25
    # Dice, smooth 0: class 0 = .5 / 1.5 = 1/3 ; class 1 = 1.5 / 2.5 = .6 -> 1 - .466667 = .533333
    np.testing.assert_allclose(to_np(L.DiceLoss(smooth=0, from_logits=False)(Y2, P2)), 1 - (1 / 3 + 0.6) / 2, atol=ATOL)
    # Dice, smooth 1: class 0 = 1.5 / 2.5 = .6 ; class 1 = 2.5 / 3.5 = .714286 -> 1 - .657143 = .342857
    got = L.DiceLoss(smooth=1, from_logits=False)(Y2, P2)
    np.testing.assert_allclose(to_np(got), 1 - (0.6 + 2.5 / 3.5) / 2, atol=ATOL)
    # Dice class weights [1, 3]: 1 - (1 * 1/3 + 3 * .6) / 4 = .466667
    got = L.DiceLoss(smooth=0, from_logits=False, class_weights=[1, 3])(Y2, P2)
    np.testing.assert_allclose(to_np(got), 1 - (1 / 3 + 3 * 0.6) / 4, atol=ATOL)
    # Jaccard, smooth 0: class 0 = .25 / 1.25 = .2 ; class 1 = .75 / 1.75 = .428571 -> 1 - .314286 = .685714
    got = L.JaccardLoss(smooth=0, from_logits=False)(Y2, P2)
    np.testing.assert_allclose(to_np(got), 1 - (0.2 + 0.75 / 1.75) / 2, atol=ATOL)
    # Tversky a=.3 (FP), b=.7 (FN), smooth 0 (Dice-scaled 2TP / (2TP + 2a FP + 2b FN)):
    # class 0 = .5 / (.5 + .15 + 1.05) = .294118 ; class 1 = 1.5 / (1.5 + .45 + .35) = .652174
    ti0, ti1 = 0.5 / 1.7, 1.5 / 2.3
    got = L.TverskyLoss(alpha=0.3, beta=0.7, smooth=0, from_logits=False)(Y2, P2)
    np.testing.assert_allclose(to_np(got), 1 - (ti0 + ti1) / 2, atol=ATOL)
    # Focal Tversky gamma 2: ((1 - .294118)^2 + (1 - .652174)^2) / 2 = (.498270 + .120983) / 2 = .309626
    got = L.FocalTverskyLoss(alpha=0.3, beta=0.7, gamma=2, smooth=0, from_logits=False)(Y2, P2)
    np.testing.assert_allclose(to_np(got), ((1 - ti0) ** 2 + (1 - ti1) ** 2) / 2, atol=ATOL)
    # Generalized Dice, smooth 0: G0 = G1 = 1 -> w = [1, 1]
    # num = 2 (.25 + .75) = 2 ; den = (.5 + .25 + .75) + (1.5 + .75 + .25) = 4 -> 1 - .5 = .5
    np.testing.assert_allclose(to_np(L.GeneralizedDiceLoss(smooth=0, from_logits=False)(Y2, P2)), 0.5, atol=ATOL)


def test_focal_by_hand():
    # gamma 2: pixel 1 (label 1, p=.75): .25^2 * .287682 = .017980
    #          pixel 2 (label 0, p=.25): .75^2 * 1.386294 = .779791 ; mean = .398886
    got = L.FocalLoss(gamma=2, from_logits=False)(Y2, P2)
    np.testing.assert_allclose(to_np(got), (0.0625 * LN075 + 0.5625 * LN025) / 2, atol=ATOL)
    # scalar alpha .25 in multiclass = [1 - .25, .25]: (.25 * .017980 + .75 * .779791) / 2
    got = L.FocalLoss(gamma=2, alpha=0.25, from_logits=False)(Y2, P2)
    np.testing.assert_allclose(to_np(got), (0.25 * 0.0625 * LN075 + 0.75 * 0.5625 * LN025) / 2, atol=ATOL)
    # binary, logit 0 (p = .5), alpha .25, gamma 2: ce = ln 2, (1 - p_t)^2 = .25
    # target 1: .25 * .25 * .693147 = .043322 ; target 0: .75 * .25 * .693147 = .129965 ; mean = .086643
    got = L.FocalLoss(gamma=2, alpha=0.25)(np.array([[[1, 0]]]), np.zeros((1, 1, 2, 1), "float32"))
    np.testing.assert_allclose(to_np(got), (0.25 + 0.75) * 0.25 * math.log(2) / 2, atol=ATOL)


def test_lovasz_by_hand():
    # class 0: fg = [0, 1], errors |fg - p0| = [.25, .75]; sorted [.75 (fg 1), .25 (fg 0)]
    #   Jaccard along the order: 1 - 0/1 = 1, 1 - 0/2 = 1 -> grad [1, 0] -> loss .75
    # class 1: fg = [1, 0], errors [.25, .75]; sorted [.75 (fg 0), .25 (fg 1)]
    #   Jaccard: 1 - 1/2 = .5, 1 - 0/2 = 1 -> grad [.5, .5] -> loss .375 + .125 = .5
    # mean over the two present classes = .625
    np.testing.assert_allclose(to_np(L.LovaszSoftmaxLoss(from_logits=False)(Y2, P2)), 0.625, atol=ATOL)
    # only class 1 present in the target when pixel 2 is ignored:
    #   fg = [1], p1 = [.75] -> error .25, grad [1] -> .25
    got = L.LovaszSoftmaxLoss(from_logits=False, ignore_index=IGNORE)(np.array([[[1, IGNORE]]]), P2)
    np.testing.assert_allclose(to_np(got), 0.25, atol=ATOL)
    # hinge: logits [2, -.5], labels [1, 1] -> errors 1 - x = [-1, 1.5]; sorted [1.5, -1], gts = 2
    #   Jaccard: 1 - 1/2 = .5, 1 - 0/2 = 1 -> grad [.5, .5] -> relu(1.5) * .5 + relu(-1) * .5 = .75
    got = L.LovaszHingeLoss()(np.array([[[1, 1]]]), np.array([[[[2.0], [-0.5]]]], "float32"))
    np.testing.assert_allclose(to_np(got), 0.75, atol=ATOL)


def test_absent_class_convention():
    # K=3, class 2 absent from target and (exactly) from prediction: TP+FP+FN = 0 -> score 1 (loss 0).
    p = np.array([[[[0.25, 0.75, 0.0], [0.25, 0.75, 0.0]]]], "float32")
    # smooth 0: classes 0, 1 as in test_region_losses_by_hand, class 2 scores 1 -> 1 - (1/3 + .6 + 1) / 3
    got = L.DiceLoss(smooth=0, from_logits=False)(Y2, p)
    np.testing.assert_allclose(to_np(got), 1 - (1 / 3 + 0.6 + 1) / 3, atol=ATOL)
    # ignore_empty_classes drops class 2 from the mean -> same as the K=2 case
    got = L.DiceLoss(smooth=0, from_logits=False, ignore_empty_classes=True)(Y2, p)
    np.testing.assert_allclose(to_np(got), 1 - (1 / 3 + 0.6) / 2, atol=ATOL)
    # class absent from the target but predicted: FP > 0 -> score (0 + s) / (FP + s), here s=0 -> 0 -> loss 1
    p2 = np.array([[[[0.25, 0.25, 0.5], [0.25, 0.75, 0.0]]]], "float32")
    per_class = to_np(F.dice(Y2, p2, from_logits=False, smooth=0, class_weights=[0, 0, 1]))
    np.testing.assert_allclose(per_class, 1.0, atol=ATOL)


# ----------------------------------------------------------------------------- references


def test_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    labels, logits = random_case(1, ignore_frac=0.3)
    weight = [0.5, 2.0, 1.0]
    for kwargs in ({}, {"weight": weight}, {"label_smoothing": 0.1}, {"weight": weight, "label_smoothing": 0.2}):
        ref = torch.nn.functional.cross_entropy(
            torch.tensor(logits).permute(0, 3, 1, 2),
            torch.tensor(labels).long(),
            ignore_index=IGNORE,
            weight=torch.tensor(kwargs["weight"]) if "weight" in kwargs else None,
            label_smoothing=kwargs.get("label_smoothing", 0.0),
        )
        loss = L.CrossEntropyLoss(
            ignore_index=IGNORE, class_weights=kwargs.get("weight"), label_smoothing=kwargs.get("label_smoothing", 0.0)
        )
        np.testing.assert_allclose(to_np(loss(labels, logits)), ref.item(), atol=ATOL, err_msg=str(kwargs))


def test_cross_entropy_matches_keras_sparse_ignore_class():
    labels, logits = random_case(2, ignore_frac=0.3)
    sw = np.random.default_rng(3).random(labels.shape).astype("float32")
    ref_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE)
    ours = L.CrossEntropyLoss(ignore_index=IGNORE)
    np.testing.assert_allclose(to_np(ours(labels, logits)), to_np(ref_loss(labels, logits)), atol=ATOL)
    np.testing.assert_allclose(
        to_np(ours(labels, logits, sample_weight=sw)), to_np(ref_loss(labels, logits, sample_weight=sw)), atol=ATOL
    )


def test_cross_entropy_binary_and_multilabel_match_torch():
    torch = pytest.importorskip("torch")
    targets, logits = binary_case(4, c=3)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(logits), torch.tensor(targets))
    got = L.CrossEntropyLoss(mode="multilabel")(targets, logits)
    np.testing.assert_allclose(to_np(got), ref.item(), atol=ATOL)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(logits[..., :1]), torch.tensor(targets[..., :1])
    )
    got = L.CrossEntropyLoss()(targets[..., 0].astype("int32"), logits[..., :1])
    np.testing.assert_allclose(to_np(got), ref.item(), atol=ATOL)


def _monai_inputs(labels, logits):
    torch = pytest.importorskip("torch")
    k = logits.shape[-1]
    probs = softmax_np(logits.astype("float64")).astype("float32")
    onehot = np.eye(k, dtype="float32")[labels]
    return torch.tensor(probs).permute(0, 3, 1, 2), torch.tensor(onehot).permute(0, 3, 1, 2), probs


@pytest.mark.parametrize("per_image", [False, True])
def test_dice_tversky_match_monai(per_image):
    monai_losses = pytest.importorskip("monai.losses")
    labels, logits = random_case(5)
    labels[1] = np.where(labels[1] == 2, 0, labels[1])  # class 2 absent from image 1
    pt, gt, probs = _monai_inputs(labels, logits)
    # MONAI: include_background=True, probabilities given (softmax=False), batch = not per_image,
    # smooth_nr = smooth_dr = smooth, for Dice and for Tversky ((TP + s) / (TP + a FP + b FN + s), MONAI's form).
    for smooth in (1e-5, 1.0):
        ref = monai_losses.DiceLoss(smooth_nr=smooth, smooth_dr=smooth, batch=not per_image)(pt, gt)
        got = L.DiceLoss(smooth=smooth, per_image=per_image, from_logits=False)(labels, probs)
        np.testing.assert_allclose(to_np(got), ref.item(), atol=ATOL)
        got = L.DiceLoss(smooth=smooth, per_image=per_image)(labels, logits)
        np.testing.assert_allclose(to_np(got), ref.item(), atol=ATOL)
        ref = monai_losses.TverskyLoss(alpha=0.3, beta=0.7, smooth_nr=smooth, smooth_dr=smooth, batch=not per_image)(pt, gt)
        got = L.TverskyLoss(alpha=0.3, beta=0.7, smooth=smooth, per_image=per_image, from_logits=False)(labels, probs)
        np.testing.assert_allclose(to_np(got), ref.item(), atol=ATOL)


@pytest.mark.parametrize("per_image", [False, True])
def test_generalized_dice_matches_monai(per_image):
    monai_losses = pytest.importorskip("monai.losses")
    labels, logits = random_case(6)
    labels[0] = np.where(labels[0] == 2, 1, labels[0])  # class 2 absent from image 0 -> inf weight replaced
    pt, gt, probs = _monai_inputs(labels, logits)
    # MONAI: w_type="square", smooth_nr = smooth_dr = 1e-5 (defaults), include_background=True, batch = not per_image.
    ref = monai_losses.GeneralizedDiceLoss(w_type="square", batch=not per_image)(pt, gt)
    got = L.GeneralizedDiceLoss(per_image=per_image, from_logits=False)(labels, probs)
    np.testing.assert_allclose(to_np(got), ref.item(), atol=ATOL)


def test_focal_matches_monai_and_torchvision_formula():
    torch = pytest.importorskip("torch")
    monai_losses = pytest.importorskip("monai.losses")
    labels, logits = random_case(7)
    k = logits.shape[-1]
    x = torch.tensor(logits).permute(0, 3, 1, 2)
    gt = torch.tensor(np.eye(k, dtype="float32")[labels]).permute(0, 3, 1, 2)
    # MONAI softmax focal, reduction="mean" averages over B*C*H*W elements -> ours = MONAI * K.
    for alpha in (None, 0.25, [0.2, 0.3, 0.5]):
        ref = monai_losses.FocalLoss(gamma=2.0, alpha=alpha, use_softmax=True)(x, gt).item() * k
        got = L.FocalLoss(gamma=2.0, alpha=alpha)(labels, logits)
        np.testing.assert_allclose(to_np(got), ref, atol=ATOL, err_msg=str(alpha))
    # Binary: MONAI sigmoid focal (alpha on positives) and torchvision's formula in numpy.
    targets, blogits = binary_case(8)
    ref = monai_losses.FocalLoss(gamma=2.0, alpha=0.25)(
        torch.tensor(blogits).permute(0, 3, 1, 2), torch.tensor(targets).permute(0, 3, 1, 2)
    )
    got = L.FocalLoss(gamma=2.0, alpha=0.25)(targets.astype("int32"), blogits)
    np.testing.assert_allclose(to_np(got), ref.item(), atol=ATOL)
    # torchvision.ops.sigmoid_focal_loss, multilabel (mean over pixels and channels)
    targets, mlogits = binary_case(9, c=3)
    p = sigmoid_np(mlogits.astype("float64"))
    ce = np.maximum(mlogits, 0) - mlogits * targets + np.log1p(np.exp(-np.abs(mlogits)))
    p_t = p * targets + (1 - p) * (1 - targets)
    ref = ((0.25 * targets + 0.75 * (1 - targets)) * ce * (1 - p_t) ** 2).mean()
    got = L.FocalLoss(gamma=2.0, alpha=0.25, mode="multilabel")(targets, mlogits)
    np.testing.assert_allclose(to_np(got), ref, atol=ATOL)
    # per-channel alpha in multilabel mode: channel c uses alpha[c]
    alphas = np.array([0.25, 0.5, 0.9])
    ref = ((alphas * targets + (1 - alphas) * (1 - targets)) * ce * (1 - p_t) ** 2).mean()
    got = L.FocalLoss(gamma=2.0, alpha=list(alphas), mode="multilabel")(targets, mlogits)
    np.testing.assert_allclose(to_np(got), ref, atol=ATOL)


# Direct numpy port of Berman et al.'s reference (lovasz_losses.py), ignored pixels filtered out.
def _ref_lovasz_grad(gt_sorted):
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum()
    union = gts + (1 - gt_sorted).cumsum()
    jaccard = 1.0 - intersection / union
    if len(gt_sorted) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def _ref_lovasz_softmax_flat(probas, labels, classes="present"):
    if probas.size == 0:
        return 0.0
    losses = []
    class_to_sum = list(range(probas.shape[1])) if classes in ("all", "present") else classes
    for c in class_to_sum:
        fg = (labels == c).astype("float64")
        if classes == "present" and fg.sum() == 0:
            continue
        errors = np.abs(fg - probas[:, c])
        order = np.argsort(-errors, kind="stable")
        losses.append(np.dot(errors[order], _ref_lovasz_grad(fg[order])))
    return float(np.mean(losses)) if losses else 0.0


def _ref_lovasz_softmax(probas, labels, classes="present", per_image=False, ignore=None):
    def flat(p, l):
        p, l = p.reshape(-1, p.shape[-1]), l.reshape(-1)
        keep = l != ignore if ignore is not None else np.ones_like(l, bool)
        return p[keep], l[keep]

    if per_image:
        return float(np.mean([_ref_lovasz_softmax_flat(*flat(p, l), classes) for p, l in zip(probas, labels)]))
    return _ref_lovasz_softmax_flat(*flat(probas, labels), classes)


def _ref_lovasz_hinge(logits, labels, per_image=True, ignore=None):
    def flat(x, l):
        x, l = x.reshape(-1), l.reshape(-1)
        keep = l != ignore if ignore is not None else np.ones_like(l, bool)
        x, l = x[keep], l[keep].astype("float64")
        if x.size == 0:
            return 0.0
        errors = 1.0 - x * (2.0 * l - 1.0)
        order = np.argsort(-errors, kind="stable")
        return float(np.dot(np.maximum(errors[order], 0), _ref_lovasz_grad(l[order])))

    if per_image:
        return float(np.mean([flat(x, l) for x, l in zip(logits, labels)]))
    return flat(logits, labels)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("classes", ["present", "all", [0, 2]])
def test_lovasz_softmax_matches_reference(per_image, classes):
    labels, logits = random_case(10, ignore_frac=0.3)
    labels[1] = np.where(labels[1] == 1, 0, labels[1])  # class 1 absent from image 1
    probs = softmax_np(logits.astype("float64"))
    ref = _ref_lovasz_softmax(probs, labels, classes=classes, per_image=per_image, ignore=IGNORE)
    got = L.LovaszSoftmaxLoss(classes=classes, per_image=per_image, ignore_index=IGNORE)(labels, logits)
    np.testing.assert_allclose(to_np(got), ref, atol=ATOL)


@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_hinge_matches_reference(per_image):
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(2, 4, 5, 1)).astype("float32") * 2
    labels = rng.integers(0, 2, size=(2, 4, 5)).astype("int32")
    labels = np.where(rng.random(labels.shape) < 0.3, IGNORE, labels)
    ref = _ref_lovasz_hinge(logits[..., 0].astype("float64"), labels, per_image=per_image, ignore=IGNORE)
    got = L.LovaszHingeLoss(per_image=per_image, ignore_index=IGNORE)(labels, logits)
    np.testing.assert_allclose(to_np(got), ref, atol=ATOL)


# ----------------------------------------------------------------------------- properties

SEEDS = st.integers(0, 2**31 - 1)


@given(seed=SEEDS)
def test_perfect_prediction_gives_zero(seed):
    labels, _ = random_case(seed)
    logits = (20.0 * np.eye(3)[labels]).astype("float32")
    for key, make in MULTICLASS_LOSSES.items():
        if key == "ce_smooth_weighted":  # label smoothing: the minimum is not 0
            continue
        got = float(to_np(make()(labels, logits)))
        assert abs(got) < 1e-4, (key, got)
    targets = labels[..., None] % 2
    blogits = (20.0 * (2.0 * targets - 1.0)).astype("float32")
    binary = (L.CrossEntropyLoss(), L.FocalLoss(alpha=0.25), L.DiceLoss(), L.LovaszHingeLoss(), L.LovaszSoftmaxLoss())
    for loss in binary:
        got = float(to_np(loss(targets, blogits)))
        assert abs(got) < 1e-4, (loss.name, got)


@given(seed=SEEDS)
def test_ignored_pixels_change_nothing(seed):
    labels, logits = random_case(seed, ignore_frac=0.4)
    noise = np.random.default_rng(seed + 1).normal(size=logits.shape) * 50
    other = np.where((labels == IGNORE)[..., None], noise, logits)
    other = other.astype("float32")
    for key, make in MULTICLASS_LOSSES.items():
        loss = make(ignore_index=IGNORE)
        np.testing.assert_allclose(to_np(loss(labels, logits)), to_np(loss(labels, other)), atol=1e-6, err_msg=key)
    blabels = np.where(labels == IGNORE, IGNORE, labels % 2)
    for loss in binary_losses(L.CrossEntropyLoss, L.DiceLoss, L.LovaszHingeLoss):
        a, b = loss(blabels, logits[..., :1]), loss(blabels, other[..., :1])
        np.testing.assert_allclose(to_np(a), to_np(b), atol=1e-6, err_msg=loss.name)


@given(seed=SEEDS, smooth=st.sampled_from([0.0, 1e-5, 1.0]), per_image=st.booleans())
def test_tversky_half_equals_dice(seed, smooth, per_image):
    labels, logits = random_case(seed, ignore_frac=0.2)
    kw = dict(smooth=smooth, per_image=per_image, ignore_index=IGNORE)
    dice = to_np(L.DiceLoss(**dict(kw, smooth=2 * smooth))(labels, logits))  # Tversky's smoothing, doubled
    tversky = to_np(L.TverskyLoss(alpha=0.5, beta=0.5, **kw)(labels, logits))
    focal_tversky = to_np(L.FocalTverskyLoss(alpha=0.5, beta=0.5, gamma=1.0, **kw)(labels, logits))
    assert dice == tversky == focal_tversky
    if smooth == 0.0:
        assert tversky == to_np(L.DiceLoss(**kw)(labels, logits))


@given(seed=SEEDS)
def test_focal_gamma_zero_equals_cross_entropy(seed):
    labels, logits = random_case(seed, ignore_frac=0.2)
    ce = to_np(L.CrossEntropyLoss(ignore_index=IGNORE)(labels, logits))
    fl = to_np(L.FocalLoss(gamma=0.0, ignore_index=IGNORE)(labels, logits))
    np.testing.assert_allclose(fl, ce, rtol=1e-6, atol=1e-7)
    targets, blogits = binary_case(seed)
    ce = to_np(L.CrossEntropyLoss()(targets, blogits))
    fl = to_np(L.FocalLoss(gamma=0.0)(targets, blogits))
    np.testing.assert_allclose(fl, ce, rtol=1e-6, atol=1e-7)


@given(seed=SEEDS, sign=st.sampled_from([-1.0, 1.0]))
def test_finite_for_extreme_logits_and_empty_classes(seed, sign):
    labels, logits = random_case(seed, ignore_frac=0.2)
    extreme = (np.sign(logits) * 1e4 * sign).astype("float32")
    empty = np.where(labels == IGNORE, IGNORE, 0)  # classes 1 and 2 absent from the target
    for key, make in MULTICLASS_LOSSES.items():
        loss = make(ignore_index=IGNORE)
        for y, x in ((labels, extreme), (empty, logits), (empty, extreme)):
            assert np.isfinite(to_np(loss(y, x))).all(), key
    blabels = np.where(labels == IGNORE, IGNORE, labels % 2)
    for loss in binary_losses(L.CrossEntropyLoss, L.FocalLoss, L.LovaszHingeLoss):
        assert np.isfinite(to_np(loss(blabels, extreme[..., :1]))).all(), loss.name


@given(seed=SEEDS, bad=st.sampled_from([-1, 3, 7, 254]))
def test_labels_outside_the_classes_count_as_void(seed, bad):
    """Inside the graph nothing raises: a label no class owns weighs exactly like ignore_index."""
    labels, logits = random_case(seed, ignore_frac=0.3)
    stray = np.where(labels == IGNORE, bad, labels).astype("int32")
    for key, make in MULTICLASS_LOSSES.items():
        loss = make(ignore_index=IGNORE)
        np.testing.assert_allclose(to_np(loss(stray, logits)), to_np(loss(labels, logits)), atol=1e-6, err_msg=key)
    blabels = np.where(labels == IGNORE, IGNORE, labels % 2)
    bstray = np.where(labels == IGNORE, max(bad, 2) if bad >= 0 else bad, labels % 2).astype("int32")
    for loss in binary_losses(L.CrossEntropyLoss, L.DiceLoss, L.LovaszHingeLoss):
        a, b = loss(bstray, logits[..., :1]), loss(blabels, logits[..., :1])
        np.testing.assert_allclose(to_np(a), to_np(b), atol=1e-6, err_msg=loss.name)


def test_all_pixels_ignored_gives_zero():
    labels = np.full((2, 3, 3), IGNORE, "int32")
    logits = np.random.default_rng(0).normal(size=(2, 3, 3, 3)).astype("float32")
    for key, make in MULTICLASS_LOSSES.items():
        for smooth_free in (True, False):
            loss = make(ignore_index=IGNORE)
            if smooth_free and hasattr(loss, "smooth"):
                loss.smooth = 0.0
            got = to_np(loss(labels, logits))
            assert got == 0.0, (key, got)
    for loss in binary_losses(L.CrossEntropyLoss, L.FocalLoss, L.LovaszHingeLoss):
        assert to_np(loss(labels, logits[..., :1])) == 0.0, loss.name


def test_gradients_finite():
    labels, logits = random_case(12, ignore_frac=0.2)
    logits = np.concatenate([logits[:1], np.sign(logits[1:]) * 1e4]).astype("float32")
    backend = keras.backend.backend()
    for key, make in MULTICLASS_LOSSES.items():
        loss = make(ignore_index=IGNORE)
        if backend == "jax":
            import jax

            grad = jax.grad(lambda x: loss(labels, x))(logits)
        elif backend == "tensorflow":
            import tensorflow as tf

            x = tf.Variable(logits)
            with tf.GradientTape() as tape:
                value = loss(labels, x)
            grad = tape.gradient(value, x)
        else:
            import torch

            x = torch.tensor(logits, requires_grad=True)
            loss(labels, x).backward()
            grad = x.grad
        assert np.isfinite(to_np(grad)).all(), key


# ----------------------------------------------------------------------------- sample weights, reductions, modes


def test_sample_weight_shapes_agree():
    labels, logits = random_case(13, ignore_frac=0.2)
    per_image = np.array([0.5, 2.0], "float32")
    pixel = np.broadcast_to(per_image[:, None, None], labels.shape).copy()
    for key, make in MULTICLASS_LOSSES.items():
        loss = make(ignore_index=IGNORE)
        ref = to_np(loss(labels, logits, sample_weight=pixel))
        np.testing.assert_allclose(to_np(loss(labels, logits, sample_weight=per_image)), ref, atol=ATOL, err_msg=key)
        got = loss(labels, logits, sample_weight=pixel[..., None])
        np.testing.assert_allclose(to_np(got), ref, atol=ATOL, err_msg=key)
        np.testing.assert_allclose(
            to_np(loss(labels, logits, sample_weight=1.0)), to_np(loss(labels, logits)), atol=ATOL, err_msg=key
        )


def test_sample_weight_scales_pixel_losses():
    labels, logits = random_case(14)
    # sample weight 2 everywhere doubles CE (it is not in the denominator); Dice with smooth 0 is unchanged
    ce = L.CrossEntropyLoss()
    np.testing.assert_allclose(to_np(ce(labels, logits, sample_weight=2.0)), 2 * to_np(ce(labels, logits)), rtol=1e-5)
    dice = L.DiceLoss(smooth=0.0)
    np.testing.assert_allclose(to_np(dice(labels, logits, sample_weight=2.0)), to_np(dice(labels, logits)), rtol=1e-5)
    # zero weight on a pixel = ignoring it
    sw = np.ones(labels.shape, "float32")
    sw[0, 0, :] = 0
    ignored = labels.copy()
    ignored[0, 0, :] = IGNORE
    for loss in binary_losses(L.DiceLoss, L.LovaszSoftmaxLoss, L.GeneralizedDiceLoss):
        np.testing.assert_allclose(
            to_np(loss(labels, logits, sample_weight=sw)), to_np(loss(ignored, logits)), atol=ATOL, err_msg=loss.name
        )


def test_reductions():
    labels, logits = random_case(15, ignore_frac=0.2)
    for key, make in MULTICLASS_LOSSES.items():
        mean = to_np(make(ignore_index=IGNORE)(labels, logits))
        none = to_np(make(ignore_index=IGNORE, reduction="none")(labels, logits))
        total = to_np(make(ignore_index=IGNORE, reduction="sum")(labels, logits))
        assert mean.shape == () and none.shape == (2,), key
        np.testing.assert_allclose(total, none.sum(), atol=ATOL, err_msg=key)
    # per-image losses: mean is the mean of per-image values
    for loss_cls in (L.DiceLoss, L.LovaszSoftmaxLoss, L.GeneralizedDiceLoss):
        mean = to_np(loss_cls(per_image=True)(labels % 3, logits))
        none = to_np(loss_cls(per_image=True, reduction="none")(labels % 3, logits))
        np.testing.assert_allclose(mean, none.mean(), atol=ATOL)
    # pixel losses: "none" is the per-image normalised value
    none = to_np(L.CrossEntropyLoss(reduction="none")(labels % 3, logits))
    first = to_np(L.CrossEntropyLoss()(labels[:1] % 3, logits[:1]))
    np.testing.assert_allclose(none[0], first, atol=ATOL)
    with pytest.raises(ValueError, match="mean_with_sample_weight"):
        L.DiceLoss(reduction="mean_with_sample_weight")
    with pytest.raises(ValueError, match="bogus"):
        L.CrossEntropyLoss(reduction="bogus")


def test_label_formats_agree():
    labels, logits = random_case(16, ignore_frac=0.2)
    onehot = np.eye(3, dtype="float32")[np.where(labels == IGNORE, 0, labels)] * (labels != IGNORE)[..., None]
    for key, make in MULTICLASS_LOSSES.items():
        loss = make(ignore_index=IGNORE)
        ref = to_np(loss(labels, logits))
        np.testing.assert_allclose(to_np(loss(labels[..., None], logits)), ref, atol=ATOL, err_msg=key)
        np.testing.assert_allclose(to_np(loss(labels.astype("float32"), logits)), ref, atol=ATOL, err_msg=key)
        np.testing.assert_allclose(to_np(loss(onehot, logits)), ref, atol=ATOL, err_msg=key)


def test_multilabel_and_binary_modes():
    targets, logits = binary_case(17, c=3)
    region = (L.DiceLoss, L.JaccardLoss, L.TverskyLoss, L.GeneralizedDiceLoss, L.LovaszSoftmaxLoss, L.LovaszHingeLoss)
    for loss_cls in region:
        multi = to_np(loss_cls(mode="multilabel")(targets, logits))
        assert np.isfinite(multi), loss_cls.__name__
    # multilabel Dice = mean of per-channel binary Dice (per_image=True keeps channels independent)
    multi = to_np(L.DiceLoss(mode="multilabel")(targets, logits))
    per_channel = [to_np(L.DiceLoss()(targets[..., c : c + 1], logits[..., c : c + 1])) for c in range(3)]
    np.testing.assert_allclose(multi, np.mean(per_channel), atol=ATOL)
    with pytest.raises(ValueError, match="LovaszSoftmaxLoss"):
        L.LovaszHingeLoss()(np.zeros((1, 2, 2), "int32"), np.zeros((1, 2, 2, 3), "float32"))
    with pytest.raises(ValueError, match="4 entries"):
        L.CrossEntropyLoss(class_weights=[1, 2, 3, 4])(np.zeros((1, 2, 2), "int32"), np.zeros((1, 2, 2, 3), "float32"))
    with pytest.raises(ValueError, match="sotfmax"):
        L.DiceLoss(mode="sotfmax")(np.zeros((1, 2, 2), "int32"), np.zeros((1, 2, 2, 3), "float32"))


# ----------------------------------------------------------------------------- serialization, composition, dtypes, jit

CONFIGURED = [
    L.CrossEntropyLoss(
        from_logits=False, ignore_index=255, class_weights=[1, 2], label_smoothing=0.1, mode="multiclass"
    ),
    L.FocalLoss(gamma=1.5, alpha=[0.3, 0.7], ignore_index=0, name="fl", reduction="none"),
    L.FocalLoss(alpha=0.25),
    L.DiceLoss(
        smooth=0.5, ignore_index=255, class_weights=[1, 2], per_image=True, ignore_empty_classes=True, mode="multilabel"
    ),
    L.JaccardLoss(smooth=0.0, per_image=True, reduction="sum"),
    L.TverskyLoss(alpha=0.2, beta=0.8, smooth=2.0, ignore_index=3),
    L.FocalTverskyLoss(alpha=0.4, beta=0.6, gamma=1.5, class_weights=[1, 1, 2]),
    L.GeneralizedDiceLoss(smooth=1e-3, per_image=True, ignore_index=255),
    L.LovaszSoftmaxLoss(classes=[0, 2], per_image=True, ignore_index=255, dtype="float32"),
    L.LovaszHingeLoss(per_image=False, ignore_index=255, mode="binary"),
    L.CompositeLoss([L.DiceLoss(), L.CrossEntropyLoss(ignore_index=255)], [1.0, 0.5]),
]


@pytest.mark.parametrize("loss", CONFIGURED, ids=lambda loss: type(loss).__name__)
@pytest.mark.once
def test_config_round_trip(loss):
    config = loss.get_config()
    clone = type(loss).from_config(config)
    assert clone.get_config() == config
    # every constructor argument is stored under its own name
    import inspect

    params = set(inspect.signature(type(loss).__init__).parameters) - {"self"}
    assert params == set(config), (params ^ set(config))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss) and restored.get_config() == config


def test_composite_algebra_and_serialization():
    labels, logits = random_case(18, ignore_frac=0.2)
    ce, dice = L.CrossEntropyLoss(ignore_index=IGNORE), L.DiceLoss(ignore_index=IGNORE)
    combo = 0.5 * ce + dice
    assert isinstance(combo, L.CompositeLoss) and combo.weights == [0.5, 1.0]
    expected = 0.5 * to_np(ce(labels, logits)) + to_np(dice(labels, logits))
    np.testing.assert_allclose(to_np(combo(labels, logits)), expected, atol=ATOL)
    # nesting flattens, sum() works, right multiplication and division
    nested = 2 * (combo + L.FocalLoss(ignore_index=IGNORE)) / 4
    assert len(nested.losses) == 3 and nested.weights == [0.25, 0.5, 0.5]
    assert isinstance(sum([ce, dice]), L.CompositeLoss)
    assert sum([ce]) is ce
    np.testing.assert_allclose(to_np((dice * 3)(labels, logits)), 3 * to_np(dice(labels, logits)), atol=ATOL)
    # a plain Keras loss can join
    mixed = ce + keras.losses.MeanSquaredError()
    assert len(mixed.losses) == 2
    # serialization round trip gives the same value
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(nested))
    assert isinstance(restored, L.CompositeLoss) and restored.weights == nested.weights
    np.testing.assert_allclose(to_np(restored(labels, logits)), to_np(nested(labels, logits)), atol=ATOL)
    # reduction "none" propagates to the members
    per_image = to_np(L.CompositeLoss([ce, dice], reduction="none")(labels, logits))
    assert per_image.shape == (2,)
    # operators keep a reduction shared by all members
    assert (L.DiceLoss(reduction="none") + L.CrossEntropyLoss(reduction="none")).reduction == "none"
    assert keras_seg.losses.CompositeLoss is L.CompositeLoss


def test_mixed_precision_float32_result():
    keras.config.set_dtype_policy("mixed_bfloat16")
    labels, logits = random_case(19, ignore_frac=0.2)
    low = ops.cast(logits, "bfloat16")
    for key, make in MULTICLASS_LOSSES.items():
        loss = make(ignore_index=IGNORE)
        value = loss(labels, low)
        assert keras.backend.standardize_dtype(value.dtype) == "float32", key
        ref = to_np(loss(labels, to_np(ops.cast(low, "float32"))))
        np.testing.assert_allclose(to_np(value), ref, atol=1e-5, err_msg=key)


def test_jit_compatible():
    labels, logits = random_case(20, ignore_frac=0.2)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        wrap = jax.jit
    elif backend == "tensorflow":
        import tensorflow as tf

        def wrap(fn):
            return tf.function(fn, jit_compile=True)  # XLA, as model.fit uses by default

    else:
        pytest.skip("no jit wrapper exercised on the torch backend")
    for key, make in MULTICLASS_LOSSES.items():
        loss = make(ignore_index=IGNORE)
        fn = wrap(lambda y, x, loss=loss: loss(y, x))
        np.testing.assert_allclose(to_np(fn(labels, logits)), to_np(loss(labels, logits)), atol=ATOL, err_msg=key)
    hinge = L.LovaszHingeLoss(ignore_index=IGNORE)
    blabels = np.where(labels == IGNORE, IGNORE, labels % 2)
    fn = wrap(lambda y, x: hinge(y, x))
    np.testing.assert_allclose(to_np(fn(blabels, logits[..., :1])), to_np(hinge(blabels, logits[..., :1])), atol=ATOL)


def test_tf_function_unknown_batch():
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tensorflow backend only")
    labels, logits = random_case(21, ignore_frac=0.2)
    for key, make in MULTICLASS_LOSSES.items():
        loss = make(ignore_index=IGNORE, reduction="none")
        fn = tf.function(
            lambda y, x, loss=loss: loss(y, x),
            input_signature=[tf.TensorSpec((None, 4, 5), tf.int32), tf.TensorSpec((None, 4, 5, 3), tf.float32)],
        )
        np.testing.assert_allclose(to_np(fn(labels, logits)), to_np(loss(labels, logits)), atol=ATOL, err_msg=key)


def test_labels_and_predictions_of_different_sizes_name_both_shapes():
    labels = np.zeros((2, 4, 4), "int32")
    logits = np.zeros((2, 8, 8, 3), "float32")
    message = r"y_true has shape \(2, 4, 4\) and y_pred \(2, 8, 8, 3\).*\(2, 4, 4\) and \(2, 8, 8\) differ"
    for key, make in MULTICLASS_LOSSES.items():
        with pytest.raises(ValueError, match=message):
            make()(labels, logits)
    with pytest.raises(ValueError, match=r"y_true has shape \(2, 4, 4, 1\) and y_pred \(2, 8, 8, 1\)"):
        L.DiceLoss()(labels[..., None], logits[..., :1])
    with pytest.raises(ValueError, match=r"y_true has shape \(2, 4, 4, 3\) and y_pred \(2, 8, 8, 3\)"):
        L.CrossEntropyLoss()(np.eye(3, dtype="float32")[labels], logits)  # one-hot labels too


def test_float_labels_that_are_not_whole_numbers_are_void():
    """0.5 is no class: such a pixel is void (as if ignore_index), never rounded into class 0; 2.0004 is class 2."""
    labels, logits = random_case(5, ignore_frac=0.3)
    floats = np.where(labels == IGNORE, 0.5, labels).astype("float32")
    nearly = np.where(labels == 2, 2.0004, floats).astype("float32")
    for key, make in MULTICLASS_LOSSES.items():
        loss = make(ignore_index=IGNORE)
        expected = to_np(loss(labels, logits))
        np.testing.assert_allclose(to_np(loss(floats, logits)), expected, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(to_np(loss(nearly, logits)), expected, atol=1e-6, err_msg=key)
    rounded = np.where(labels == IGNORE, 0, labels)  # what rounding 0.5 down would have meant
    dice = L.DiceLoss(ignore_index=IGNORE)
    assert abs(to_np(dice(floats, logits)) - to_np(dice(rounded, logits))) > 1e-3  # so the test can fail
    metric = keras_seg.metrics.MeanIoU(3, ignore_index=IGNORE)
    metric.update_state(floats, logits)
    reference = keras_seg.metrics.MeanIoU(3, ignore_index=IGNORE)
    reference.update_state(labels, logits)
    assert float(to_np(metric.result())) == pytest.approx(float(to_np(reference.result())))


def test_tversky_matches_segmentation_models_pytorch():
    """SMP's TverskyLoss (multiclass, from logits) where SMP and keras_seg agree: every class in the batch's targets
    (SMP zeroes the loss of a class absent from the targets; keras_seg scores its false positives)."""
    smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")
    import torch

    labels, logits = random_case(7, b=2, h=6, w=7, k=4)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    for alpha, beta, smooth in ((0.3, 0.7, 1.0), (0.5, 0.5, 0.0), (0.7, 0.3, 0.5)):
        ref = smp_losses.TverskyLoss("multiclass", alpha=alpha, beta=beta, smooth=smooth, from_logits=True)(
            torch.from_numpy(logits).permute(0, 3, 1, 2), torch.from_numpy(labels).long()
        )
        got = L.TverskyLoss(alpha=alpha, beta=beta, smooth=smooth)(labels, logits)
        np.testing.assert_allclose(to_np(got), ref.item(), atol=2e-6, err_msg=str((alpha, beta, smooth)))
