"""Weights from other frameworks into keras_seg models: Hugging Face, torchvision, segmentation_models.pytorch.

This package imports the encoders and models; they import it only lazily, inside the functions
that load a file a user passes (``encoder_weights="model.safetensors"``, ``SegFormer.from_huggingface``).
"""

from keras_seg.convert.tensors import read_safetensors, read_torch, read_weights

__all__ = ["read_safetensors", "read_torch", "read_weights"]
