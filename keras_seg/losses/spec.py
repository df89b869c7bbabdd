"""Losses from a short text such as ``"ce+dice"`` or ``"0.5*ce + 2*focal"`` (the command line's ``--loss``)."""

import re

from keras_seg.losses import losses as L

NAMES = {
    "ce": L.CrossEntropyLoss,
    "cross_entropy": L.CrossEntropyLoss,
    "dice": L.DiceLoss,
    "focal": L.FocalLoss,
    "jaccard": L.JaccardLoss,
    "iou": L.JaccardLoss,
    "tversky": L.TverskyLoss,
    "focal_tversky": L.FocalTverskyLoss,
    "gdl": L.GeneralizedDiceLoss,
    "generalized_dice": L.GeneralizedDiceLoss,
    "lovasz": L.LovaszSoftmaxLoss,
    "lovasz_hinge": L.LovaszHingeLoss,
}
_TERM = re.compile(r"^(?:(\d+(?:\.\d*)?|\.\d+)\s*\*\s*)?([a-z_]+)$")


def from_string(spec, ignore_index=None, class_weights=None):
    """A (composite) loss from ``"[w*]name + [w*]name ..."``.

    Names: ``ce`` (``cross_entropy``), ``dice``, ``focal``, ``jaccard`` (``iou``),
    ``tversky``, ``focal_tversky``, ``gdl`` (``generalized_dice``), ``lovasz``,
    ``lovasz_hinge``. Every term gets ``ignore_index``; ``class_weights`` go to
    the cross-entropy term(s) only.
    """
    terms = [t.strip() for t in str(spec).lower().split("+")]
    total = 0
    for term in terms:
        match = _TERM.match(term)
        if not match or match.group(2) not in NAMES:
            raise ValueError(
                f"Loss {spec!r}: cannot read {term!r}. Write terms like 'ce', '0.5*dice' joined by '+'; "
                f"names: {', '.join(sorted(NAMES))}."
            )
        weight, name = match.groups()
        cls = NAMES[name]
        kwargs = {"ignore_index": ignore_index}
        if cls is L.CrossEntropyLoss and class_weights is not None:
            kwargs["class_weights"] = class_weights
        loss = cls(**kwargs)
        total = total + (float(weight) * loss if weight else loss)
    return total
