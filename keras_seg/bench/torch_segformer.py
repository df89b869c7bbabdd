"""SegFormer-B0 in native PyTorch for ``keras-seg bench``: Hugging Face ``transformers``' implementation.

``SegformerForSemanticSegmentation`` computes logits at stride 4; this wrapper does what the
Keras model does around the same network, so both time the same work: ImageNet normalisation
of [0, 255] input inside the model, and a bilinear resize (``align_corners=False``) of the
logits to the input size (where ``transformers`` computes its loss too). It needs
``transformers`` (``pip install transformers``); ``keras_seg.models.SegFormer.from_huggingface``
loads its weights into the Keras model unchanged.
"""

import torch
from torch import nn

# SegformerConfig for MiT-b0 with the all-MLP decoder of width 256 (the defaults of transformers).
B0 = dict(hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2], decoder_hidden_size=256)


class TorchSegFormer(nn.Module):
    """``TorchSegFormer(num_classes)``: NCHW images in [0, 255] -> logits at the input's H x W."""

    def __init__(self, num_classes, **config):
        super().__init__()
        try:
            from transformers import SegformerConfig, SegformerForSemanticSegmentation
        except ImportError:
            raise ImportError(
                "The native PyTorch SegFormer reference is Hugging Face transformers' model: pip install transformers."
            ) from None
        self.net = SegformerForSemanticSegmentation(SegformerConfig(num_labels=num_classes, **(config or B0)))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255.0)

    def forward(self, x):
        logits = self.net(pixel_values=(x - self.mean) / self.std).logits
        return nn.functional.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)
