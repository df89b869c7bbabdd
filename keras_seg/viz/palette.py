"""Colours for class masks: the PASCAL VOC palette, colourised masks, overlays and PNG writers.

Host-side NumPy only; Pillow is imported inside the functions that draw or write images.
"""

import math

import numpy as np

from keras_seg.utils.io import atomic_path

IGNORE_COLOR = (224, 224, 192)  # VOC colour of index 255, the usual void label

_SWATCH, _GAP, _SPACING, _ROW, _PAD = 12, 4, 12, 16, 4  # legend layout in pixels


def voc_palette(num_colors=256):
    """The standard PASCAL VOC colormap: the bits of each index interleaved into R, G, B.

    Class 1 is (128, 0, 0), 2 is (0, 128, 0), 3 is (128, 128, 0), 4 is (0, 0, 128)
    and 255 (void) is (224, 224, 192).

    Args:
        num_colors: how many colours to return, 1 to 256.

    Returns:
        uint8 array of shape ``(num_colors, 3)``.
    """
    if not isinstance(num_colors, (int, np.integer)) or not 1 <= num_colors <= 256:
        raise ValueError(f"num_colors must be an int in [1, 256]; got {num_colors!r}.")
    ids = np.arange(num_colors)
    palette = np.zeros((num_colors, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((ids >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)


def colorize(mask, palette=None, ignore_index=None):
    """Map an integer class mask to RGB colours.

    Args:
        mask: class ids, shape ``(H, W)`` or ``(H, W, 1)`` (int, bool, or whole-valued float).
        palette: ``(K, 3)`` colours in [0, 255]; defaults to ``voc_palette()``.
        ignore_index: class id of void pixels; they get (224, 224, 192) whatever the palette.

    Returns:
        uint8 array of shape ``(H, W, 3)``.
    """
    mask = as_mask(mask)
    palette = as_palette(palette)
    valid = _valid(mask, ignore_index)
    outside = valid & ((mask < 0) | (mask >= len(palette)))
    if outside.any():
        raise ValueError(
            f"Mask values {np.unique(mask[outside])[:10].tolist()} are outside the palette of "
            f"{len(palette)} colours (ids 0..{len(palette) - 1}). Pass a larger palette, or "
            "ignore_index=... if they mark void pixels."
        )
    colors = palette[np.where(valid, mask, 0)]
    colors[~valid] = IGNORE_COLOR
    return colors


def overlay(image, mask, alpha=0.5, palette=None, ignore_index=None, background=0, class_names=None):
    """Tint an image with the colours of its mask, optionally with a legend strip below it.

    Pixels whose class is ``background`` or ``ignore_index`` keep the image's colour;
    the others become ``(1 - alpha) * image + alpha * colour``.

    Args:
        image: ``(H, W, 3)`` RGB, or grayscale ``(H, W)`` / ``(H, W, 1)``, values in [0, 255].
        mask: class ids ``(H, W)`` or ``(H, W, 1)``, same H and W as ``image``.
        alpha: weight of the class colour, in [0, 1].
        palette: ``(K, 3)`` colours; defaults to ``voc_palette()``.
        ignore_index: class id of void pixels, left untinted.
        background: class id left untinted; ``None`` tints every class.
        class_names: list of names indexed by class id. When given, a legend (a swatch and
            the name of each tinted class present in the mask) is drawn in a white strip
            appended below the image, so the result is taller than ``H``; an image narrower
            than the longest legend entry is padded with white on the right.

    Returns:
        uint8 array of shape ``(H, W, 3)``, or ``(H + legend height, max(W, legend width), 3)``
        with ``class_names``.
    """
    image = as_image(image)
    mask = as_mask(mask)
    check_same_size(image, mask)
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha!r}.")
    tint = _valid(mask, ignore_index)
    if background is not None:
        tint &= mask != background
    blend = (1 - alpha) * image + alpha * colorize(mask, palette, ignore_index)
    out = np.round(np.where(tint[..., None], blend, image)).astype(np.uint8)
    if class_names is None:
        return out
    entries = [e for e in legend_entries([mask], class_names, ignore_index) if e[0] != background]
    strip = _legend_strip(out.shape[1], entries, as_palette(palette))
    if strip.shape[1] > out.shape[1]:  # a narrow image: widen it with white so no name is cut off
        out = np.pad(out, ((0, 0), (0, strip.shape[1] - out.shape[1]), (0, 0)), constant_values=255)
    return np.concatenate([out, strip], axis=0)


def save_label_png(path, mask, palette=None):
    """Write a mask as an 8-bit palette ("P" mode) PNG whose pixel values are the class ids.

    Reading it back with ``np.array(PIL.Image.open(path))`` gives the mask exactly; image
    viewers show it in colour. The file is written atomically; parent folders are created.

    Args:
        path: destination ``.png`` file.
        mask: class ids in [0, 255], shape ``(H, W)`` or ``(H, W, 1)``.
        palette: up to 256 colours ``(K, 3)``; defaults to ``voc_palette()``. Entries past
            ``K`` are filled from the VOC palette, so 255 still shows as the void colour.

    Returns:
        ``path``.
    """
    from PIL import Image

    mask = as_mask(mask)
    outside = (mask < 0) | (mask > 255)
    if outside.any():
        raise ValueError(
            f"Mask values {np.unique(mask[outside])[:10].tolist()} do not fit an 8-bit PNG "
            "(0..255). Remap the classes or save the mask as .npy instead."
        )
    palette = as_palette(palette)
    if len(palette) > 256:
        raise ValueError(f"A PNG palette holds at most 256 colours; got {len(palette)}.")
    full = voc_palette()
    full[: len(palette)] = palette
    label = Image.fromarray(mask.astype(np.uint8))  # mode "L"; putpalette makes it "P"
    label.putpalette(full.tobytes())
    return _save_png(path, label)


def save_rgb_png(path, image_uint8):
    """Write an RGB image (e.g. the output of ``overlay``) as a PNG, atomically.

    Args:
        path: destination ``.png`` file; parent folders are created.
        image_uint8: uint8 array ``(H, W, 3)``.

    Returns:
        ``path``.
    """
    from PIL import Image

    image = np.asarray(image_uint8)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"save_rgb_png expects a uint8 (H, W, 3) array; got {image.dtype} {image.shape}. "
            "Convert with np.clip(x, 0, 255).round().astype(np.uint8)."
        )
    return _save_png(path, Image.fromarray(image))


def as_mask(mask):
    """``(H, W)`` or ``(H, W, 1)`` class ids (int, bool or whole floats) -> int64 ``(H, W)``."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(
            f"A mask must have shape (H, W) or (H, W, 1); got {mask.shape}. "
            "Take the argmax of (H, W, K) scores first."
        )
    if mask.dtype.kind == "f":
        whole = np.isfinite(mask) & (mask == np.round(mask))
        if not whole.all():
            raise ValueError(
                f"A mask holds class ids, but has non-integer values such as "
                f"{mask[~whole][:5].tolist()}. Round it, or take the argmax of scores."
            )
    elif mask.dtype.kind not in "biu":
        raise ValueError(f"A mask must hold integer class ids; got dtype {mask.dtype}.")
    return mask.astype(np.int64)


def as_image(image):
    """RGB ``(H, W, 3)`` or grayscale ``(H, W)`` / ``(H, W, 1)`` in [0, 255] -> float64 ``(H, W, 3)``."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"An image must have shape (H, W, 3), (H, W, 1) or (H, W); got {image.shape}.")
    if image.size and not (np.isfinite(image).all() and 0 <= image.min() and image.max() <= 255):
        raise ValueError(
            f"Image values must be finite and in [0, 255]; got min {image.min()}, max {image.max()}. "
            "Multiply images in [0, 1] by 255."
        )
    return np.broadcast_to(image, image.shape[:2] + (3,))


def as_palette(palette):
    """``None`` -> the VOC palette; otherwise check a ``(K, 3)`` palette in [0, 255] -> uint8."""
    if palette is None:
        return voc_palette()
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) == 0:
        raise ValueError(f"A palette must have shape (K, 3) with K >= 1; got {palette.shape}.")
    if not (np.isfinite(palette).all() and palette.min() >= 0 and palette.max() <= 255):
        raise ValueError(
            f"Palette values must be in [0, 255]; got min {palette.min()}, max {palette.max()}. "
            "Multiply [0, 1] colours by 255."
        )
    return np.round(palette).astype(np.uint8)


def check_same_size(image, mask):
    """Raise unless ``image`` and ``mask`` share height and width."""
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(
            f"Image and mask sizes differ: image {tuple(image.shape)}, mask {tuple(mask.shape)}. "
            "Resize the mask with nearest-neighbour interpolation to the image size."
        )


def legend_entries(masks, class_names, ignore_index=None):
    """``(class_id, name)`` for each class present in any of ``masks``, void excluded, sorted by id."""
    present = np.unique(np.concatenate([np.ravel(m) for m in masks]))
    present = [int(c) for c in present if c != ignore_index]
    unnamed = [c for c in present if not 0 <= c < len(class_names)]
    if unnamed:
        raise ValueError(
            f"Class ids {unnamed[:10]} have no entry in class_names ({len(class_names)} names). "
            "Pass one name per class id, or ignore_index=... for void pixels."
        )
    return [(c, str(class_names[c])) for c in present]


def _valid(mask, ignore_index):
    return np.ones(mask.shape, dtype=bool) if ignore_index is None else mask != ignore_index


def _legend_strip(width, entries, palette):
    """A white ``(height, width', 3)`` uint8 strip with a swatch and name per entry, wrapped into rows.

    ``width' = width``, or wider when a single entry needs more room.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widest = max((_SWATCH + _GAP + math.ceil(measure.textlength(n, font=font)) for _, n in entries), default=0)
    width = max(width, widest + 2 * _PAD)
    x, y, placed = _PAD, _PAD, []
    for class_id, name in entries:
        entry_width = _SWATCH + _GAP + math.ceil(measure.textlength(name, font=font))
        if x > _PAD and x + entry_width > width - _PAD:
            x, y = _PAD, y + _ROW
        placed.append((x, y, class_id, name))
        x += entry_width + _SPACING
    strip = Image.new("RGB", (width, y + _ROW + _PAD), "white")
    draw = ImageDraw.Draw(strip)
    for x, y, class_id, name in placed:
        color = tuple(int(v) for v in palette[class_id])
        draw.rectangle([x, y, x + _SWATCH - 1, y + _SWATCH - 1], fill=color, outline="black")
        draw.text((x + _SWATCH + _GAP, y), name, fill="black", font=font)
    return np.asarray(strip)


def _save_png(path, pil_image):
    with atomic_path(path) as tmp:
        pil_image.save(tmp, format="PNG")
    return path
