"""Helpers for the tests that compare with PyTorch references (SMP, torchvision): one place for each."""

import numpy as np

# ImageNet statistics on the 0..1 scale, as torchvision and segmentation_models.pytorch normalise.
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def randomised(module, seed=0):
    """``module`` in eval mode with every normalisation's affine weights and BatchNorm's running statistics
    moved away from their initial 1 / 0, so a swapped mean / variance or a missed scale would show."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm)) and m.weight is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=generator) * 0.6 - 0.3)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=generator) * 0.6 - 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
    return module.eval()


def normalised(images):
    """NHWC 0..255 pixels -> the NCHW ImageNet-normalised float32 tensor a PyTorch model takes."""
    import torch

    return torch.from_numpy(((images / 255.0 - MEAN) / STD).astype("float32")).permute(0, 3, 1, 2)


def reference_logits(module, images):
    """The PyTorch model's output on ``images`` (NHWC, 0..255), back in NHWC."""
    import torch

    with torch.no_grad():
        out = module(normalised(images))
    out = out["out"] if isinstance(out, dict) else out
    return out.permute(0, 2, 3, 1).numpy()


def keras_logits(model, images):
    """The keras_seg model's output on ``images`` in inference mode, as numpy (a dict of arrays for an encoder's
    pyramid). On JAX the whole graph is compiled once (``predict_on_batch``: about 3 s for a ResNet-34 U-Net on
    2 cores, half of what running it op by op compiles, where JAX compiles each op for each shape);
    TensorFlow and PyTorch run it eagerly, which is quicker for them."""
    import keras

    if keras.backend.backend() == "jax":
        return keras.tree.map_structure(np.asarray, model.predict_on_batch(images))
    return keras.tree.map_structure(keras.ops.convert_to_numpy, model(images, training=False))
