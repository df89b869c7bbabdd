"""torchvision's pretrained segmentation models into keras_seg: :func:`from_torchvision`.

torchvision publishes six semantic segmentation models (COCO images, the 21 Pascal VOC
classes): ``fcn_resnet50`` (60.5 mIoU), ``fcn_resnet101`` (63.7), ``deeplabv3_resnet50`` (66.4),
``deeplabv3_resnet101`` (67.4), ``deeplabv3_mobilenet_v3_large`` (60.3) and
``lraspp_mobilenet_v3_large`` (57.9), as torchvision's documentation gives them. Each becomes the
same network in keras_seg:

- FCN: ``FCN(variant="32s")`` on a torchvision-layout ResNet at output stride 8 (layer3 and
  layer4 dilated as torchvision's ``replace_stride_with_dilation=[False, True, True]``), its head
  a 3x3 conv-BN-ReLU of ``in / 4`` channels, dropout 0.1 and a 1x1 class conv.
- DeepLabV3: ``DeepLabV3`` on the same encoder (on MobileNetV3-Large: output stride 16), ASPP
  with rates 12, 24, 36, the 3x3 conv-BN-ReLU and the 1x1 class conv.
- LR-ASPP: ``LRASPP`` on a torchvision-layout MobileNetV3-Large at output stride 16.

All upsample bilinearly with half-pixel centres (``align_corners=False``), normalise 0..255
pixels with ImageNet's mean and std inside the graph, and load every tensor by name. The
auxiliary classifier (``aux_classifier.*``, a second FCN head on a shallower feature used as an
extra loss in training) is left out and reported: keras_seg models have one output, which is what
``fit``, the metrics and every export take; at inference torchvision discards it too.
"""

import os
import warnings

from keras_seg.convert.tensors import assign_weights, read_weights, some

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
MODELS = {  # torchvision builder -> (keras_seg architecture, encoder, output stride)
    "fcn_resnet50": ("FCN", "resnet50", 8),
    "fcn_resnet101": ("FCN", "resnet101", 8),
    "deeplabv3_resnet50": ("DeepLabV3", "resnet50", 8),
    "deeplabv3_resnet101": ("DeepLabV3", "resnet101", 8),
    "deeplabv3_mobilenet_v3_large": ("DeepLabV3", "mobilenet_v3_large", 16),
    "lraspp_mobilenet_v3_large": ("LRASPP", "mobilenet_v3_large", 16),
}
ATROUS_RATES = (12, 24, 36)  # torchvision's DeepLabHead, whatever the output stride


def guess_arch(tensors):
    """The torchvision builder name a state dict belongs to, from its tensor names and shapes (None if none)."""
    if "classifier.low_classifier.weight" in tensors:
        return "lraspp_mobilenet_v3_large"
    kind = "deeplabv3" if "classifier.0.convs.0.0.weight" in tensors else "fcn" if "classifier.4.weight" in tensors else None
    if kind is None:
        return None
    if "backbone.0.0.weight" in tensors:
        return f"{kind}_mobilenet_v3_large" if kind == "deeplabv3" else None
    blocks = {k.split(".")[2] for k in tensors if k.startswith("backbone.layer3.")}
    return {6: f"{kind}_resnet50", 23: f"{kind}_resnet101"}.get(len(blocks))


def from_torchvision(arch, path, *, num_classes=None, class_names=None, **kwargs):
    """A keras_seg model with the weights of a torchvision segmentation model's file; no torchvision needed.

    Args:
        arch: one of :data:`MODELS` (``"deeplabv3_resnet50"``, ...); None: recognised from the tensors.
        path: the weights file torchvision downloads (``deeplabv3_resnet50_coco-cd0a2569.pth``; read
            with PyTorch), or a ``.safetensors`` copy of its state dict (read with numpy).
        num_classes: checked against the file (read from it when None).
        class_names: default: the 21 Pascal VOC names for a 21-class file.
        kwargs: more constructor arguments (``input_shape``, ``activation``).
    """
    import keras_seg

    path = os.fspath(path)
    if arch is not None and arch not in MODELS:
        raise ValueError(f"arch={arch!r} is not a torchvision segmentation model keras_seg imports; expected one of "
                         f"{', '.join(MODELS)}.")  # fmt: skip
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist; pass the .pth file torchvision downloads for {arch or 'the model'}.")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder; pass the .pth (or .safetensors) file of the torchvision model.")
    tensors = read_weights(path)  # once: a .pth of a ResNet-101 DeepLab is 200 MB
    if arch is None:
        arch = guess_arch(tensors)
        if arch is None:
            raise ValueError(f"{path} is not one of torchvision's segmentation models ({', '.join(MODELS)}); pass arch=.")
    name, encoder_name, output_stride = MODELS[arch]
    head = {"FCN": "classifier.4.weight", "DeepLabV3": "classifier.4.weight", "LRASPP": "classifier.low_classifier.weight"}
    if head[name] not in tensors:
        raise ValueError(f"{path} has no {head[name]}: it is not a torchvision {arch} state dict (its first tensors: "
                         f"{some(sorted(tensors), 5)}).")  # fmt: skip
    classes = int(tensors[head[name]].shape[0])
    if num_classes is not None and num_classes != classes:
        raise ValueError(f"{path}: its head predicts {classes} classes, not num_classes={num_classes}.")
    if encoder_name.startswith("resnet"):
        if "backbone.layer4.0.conv3.weight" not in tensors and encoder_name in ("resnet50", "resnet101"):
            raise ValueError(f"{path} has no Bottleneck ResNet backbone: it is not a torchvision {arch} state dict.")
        encoder = keras_seg.encoders.ResNetEncoder(encoder_name, output_stride=output_stride)
    else:
        encoder = keras_seg.encoders.MobileNetV3Encoder(encoder_name, output_stride=output_stride)
    if name == "FCN":
        model = keras_seg.models.FCN(classes, encoder=encoder, variant="32s", head_channels=512, dropout=0.1, **kwargs)
    elif name == "DeepLabV3":
        model = keras_seg.models.DeepLabV3(classes, encoder=encoder, atrous_rates=ATROUS_RATES, aspp_channels=256,
                                           **kwargs)  # fmt: skip
    else:
        model = keras_seg.models.LRASPP(classes, encoder=encoder, inter_channels=128, **kwargs)
    load_torchvision_weights(model, name, tensors, where=f"{path}: ")
    if class_names is None and classes == len(VOC_CLASSES):
        class_names = list(VOC_CLASSES)
    if class_names is not None:
        if len(class_names) != classes:
            raise ValueError(f"class_names has {len(class_names)} names but {path} predicts {classes} classes.")
        model.class_names = list(class_names)
    return model


_HEADS = {
    "FCN": {"fcn_head_conv": "classifier.0", "fcn_head_bn": "classifier.1", "score_P3": "classifier.4"},
    "DeepLabV3": {
        "aspp_b0_conv": "classifier.0.convs.0.0", "aspp_b0_bn": "classifier.0.convs.0.1",
        **{f"aspp_b{i}_conv": f"classifier.0.convs.{i}.0" for i in (1, 2, 3)},
        **{f"aspp_b{i}_bn": f"classifier.0.convs.{i}.1" for i in (1, 2, 3)},
        "aspp_pool_proj_conv": "classifier.0.convs.4.1", "aspp_pool_proj_bn": "classifier.0.convs.4.2",
        "aspp_project_conv": "classifier.0.project.0", "aspp_project_bn": "classifier.0.project.1",
        "head_refine_conv": "classifier.1", "head_refine_bn": "classifier.2", "head_conv": "classifier.4",
    },
    "LRASPP": {"lraspp_cbr_conv": "classifier.cbr.0", "lraspp_cbr_bn": "classifier.cbr.1",
               "lraspp_scale": "classifier.scale.1", "low_classifier": "classifier.low_classifier",
               "high_classifier": "classifier.high_classifier"},
}  # fmt: skip


def load_torchvision_weights(model, name, tensors, where=""):
    """Set a keras_seg FCN / DeepLabV3 / LRASPP (torchvision-layout encoder) from a torchvision state dict."""
    from keras_seg.encoders import mobilenetv3, resnet

    aux = sorted(k for k in tensors if k.startswith("aux_classifier."))
    if aux:
        warnings.warn(f"{where}left out the auxiliary classifier ({len(aux)} tensors: {some(aux, 3)}): a training-time "
                      "second head; keras_seg models have one output.", stacklevel=3)  # fmt: skip
    backbone = {k: v for k, v in tensors.items() if k.startswith("backbone.")}
    if isinstance(model.encoder, resnet.ResNetEncoder):
        resnet.load_torch_weights(model.encoder, backbone, prefix="backbone.", where=where)
    else:
        mobilenetv3.load_torch_weights(model.encoder, backbone, prefix="backbone.", where=where)
    pairs, unplaced = [], []
    for layer in model.layers:
        if layer.weights and layer is not model.encoder:
            prefix = _HEADS[name].get(layer.name)
            (pairs.append((layer, prefix)) if prefix else unplaced.append(layer.name))
    if unplaced:
        raise ValueError(f"{where}keras_seg layers without a torchvision counterpart: {some(unplaced)}.")
    head = {k: v for k, v in tensors.items() if k.startswith("classifier.")}
    others = sorted(k for k in tensors if not k.startswith(("backbone.", "classifier.", "aux_classifier.")))
    if others:
        raise ValueError(f"{where}tensors that belong to no part of a torchvision {name}: {some(others)}.")
    assign_weights(pairs, head, where=where)
