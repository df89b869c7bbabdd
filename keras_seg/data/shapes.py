"""``shapes``: a synthetic segmentation dataset that needs no download.

Every image is a textured, noisy background (a colour gradient, a faint random
stripe pattern and pixel noise) with 1-4 overlapping shapes drawn on it: squares
(turned by any angle), discs and triangles. A shape's colour is drawn from the
whole RGB cube (at a visible distance from the background's), so colour does not
tell the classes apart: a model has to learn shape. Later shapes occlude earlier
ones, and each shape carries its own shading and noise.

Image ``i`` of a split depends only on ``(seed, split, i)``: the first 100 images
are the same whether you ask for 100 or 10,000, and on every machine.
"""

import numpy as np

from keras_seg.utils import checks

CLASS_NAMES = ("background", "square", "disc", "triangle")
SPLITS = {"train": 0, "val": 1, "test": 2}


def shapes_arrays(split="train", num_images=512, image_size=64, seed=0):
    """The ``shapes`` data as NumPy arrays.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint random streams).
        num_images: how many images.
        image_size: ``int`` or ``(height, width)``.
        seed: the dataset's seed; the same seed gives the same images.

    Returns:
        ``(images, masks)``: ``uint8 (N, H, W, 3)`` and ``int32 (N, H, W)`` with
        class indices into :data:`CLASS_NAMES`.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not a shapes split; expected one of {sorted(SPLITS)}.")
    height, width = checks.image_size(image_size, minimum=16)
    if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < 1:
        raise ValueError(f"num_images={num_images!r} must be a positive integer.")
    images = np.empty((num_images, height, width, 3), dtype=np.uint8)
    masks = np.empty((num_images, height, width), dtype=np.int32)
    for i in range(num_images):
        rng = np.random.default_rng([int(seed), SPLITS[split], i])
        images[i], masks[i] = _draw(rng, height, width)
    return images, masks


def shapes(split="train", num_images=512, image_size=64, seed=0):
    """The ``shapes`` data as an unbatched ``tf.data.Dataset`` of ``(image, mask)``.

    ``image`` is float32 ``(H, W, 3)`` in [0, 255], ``mask`` int32 ``(H, W)``; batch
    and augment it with :func:`keras_seg.data.prepare`. Arguments as :func:`shapes_arrays`.
    """
    import tensorflow as tf

    images, masks = shapes_arrays(split, num_images, image_size, seed)
    ds = tf.data.Dataset.from_tensor_slices((images, masks))
    return ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)


def _draw(rng, height, width):
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    image = _background(rng, yy, xx, height, width)
    mask = np.zeros((height, width), dtype=np.int32)
    scale = min(height, width)
    for _ in range(rng.integers(1, 5)):
        cls = int(rng.integers(1, len(CLASS_NAMES)))
        radius = rng.uniform(0.11, 0.24) * scale
        cy, cx = rng.uniform(0.1 * height, 0.9 * height), rng.uniform(0.1 * width, 0.9 * width)
        region = _REGIONS[CLASS_NAMES[cls]](yy - cy, xx - cx, radius, rng.uniform(0, 2 * np.pi))
        colour = _distinct_colour(rng, image[region].mean(axis=0) if region.any() else image.mean(axis=(0, 1)))
        shade = (yy[region] - cy)[:, None] * rng.uniform(-1.5, 1.5, size=3) / max(radius, 1.0) * 20
        image[region] = colour + shade + rng.normal(0, 8, size=(int(region.sum()), 3))
        mask[region] = cls
    image += rng.normal(0, 10, size=image.shape)
    return np.clip(image, 0, 255).round().astype(np.uint8), mask


def _background(rng, yy, xx, height, width):
    base = rng.uniform(30, 225, size=3)
    slope = rng.uniform(-60, 60, size=(2, 3))
    image = base + (yy / height)[..., None] * slope[0] + (xx / width)[..., None] * slope[1]
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 16)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    return image + stripes[..., None] * rng.uniform(0, 20, size=3)


def _distinct_colour(rng, behind, min_distance=90.0):
    """A colour from the whole RGB cube, at least ``min_distance`` from the colour it covers."""
    while True:
        colour = rng.uniform(0, 255, size=3)
        if np.linalg.norm(colour - behind) >= min_distance:
            return colour


def _square(dy, dx, radius, angle):
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    half = radius * 0.85  # a square of the same area order as the disc
    return (np.abs(u) <= half) & (np.abs(v) <= half)


def _disc(dy, dx, radius, angle):
    return dy * dy + dx * dx <= radius * radius


def _triangle(dy, dx, radius, angle):
    """An equilateral triangle of about the disc's area (inscribed in a circle of 1.5 x ``radius``)."""
    inside = np.ones(dy.shape, dtype=bool)
    for k in range(3):
        a = angle + k * 2 * np.pi / 3  # outward normal of one edge
        inside &= dx * np.cos(a) + dy * np.sin(a) <= 0.75 * radius
    return inside


_REGIONS = {"square": _square, "disc": _disc, "triangle": _triangle}
