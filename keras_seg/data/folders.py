"""Datasets from files: an image folder paired with a mask folder, and the Pascal VOC 2012 layout.

Images are decoded by TensorFlow (JPEG, PNG, BMP, GIF) to 8-bit RGB: grayscale is
repeated over three channels, an alpha channel is dropped, 16-bit PNGs are scaled to
0..255 (``v >> 8``). Masks are read with Pillow so that palette PNGs give their class
*indices* (not their colours): a mask may be a palette PNG (VOC's
``SegmentationClass``), an 8/16-bit grayscale PNG of class indices, or an RGB PNG
together with a ``colors`` table (class ``k`` has colour ``colors[k]``). Float masks
(32-bit TIFF) are refused.

Before a dataset is built, :func:`check_pairs` reads every file once: unreadable or
corrupt files, image/mask size mismatches, masks that are not index images and
label values outside the classes are reported by file name, before training starts.
"""

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from keras_seg.utils.validate import label_range_message, out_of_range

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
MASK_EXTENSIONS = (".png", ".bmp", ".gif", ".tif", ".tiff")
INDEX_MODES = ("P", "L", "I", "I;16", "1")

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
VOC_IGNORE_INDEX = 255


def from_folders(images, masks, *, colors=None, ignore_index=None, num_classes=None, mask_suffix="", check=True,
                 skip_corrupt=False):
    """Pairs of ``images/<stem>.<jpg|png|...>`` and ``masks/<stem><mask_suffix>.png``, matched by file stem.

    Args:
        images: folder of images.
        masks: folder of masks (class-index or palette PNGs; RGB PNGs with ``colors``).
        colors: for RGB masks, the colour of each class, ``[(r, g, b), ...]``.
            A colour not in the table becomes ``ignore_index`` (an error without one).
        ignore_index: the label of void pixels, if the masks have one (e.g. 255).
        mask_suffix: text between the stem and the extension in mask names
            (``"_mask"`` for ``cat.jpg`` / ``cat_mask.png``).
        check: read every file's header now and report size mismatches and
            unsupported mask modes by file name, before training starts.

    Returns:
        An unbatched ``tf.data.Dataset`` of ``(image float32 (H, W, 3) in [0, 255],
        mask int32 (H, W))``, in sorted stem order. Batch it with :func:`keras_seg.data.prepare`.
    """
    return from_pairs(
        pair_files(images, masks, mask_suffix), colors=colors, ignore_index=ignore_index, num_classes=num_classes,
        check=check, skip_corrupt=skip_corrupt,
    )


def voc(root, split="train", check=True, skip_corrupt=False):
    """Pascal VOC 2012 segmentation: ``root/JPEGImages``, ``root/SegmentationClass``, ``root/ImageSets/Segmentation``.

    ``root`` is the ``VOC2012`` folder (``VOCdevkit/VOC2012``); ``split`` names a list
    file ``ImageSets/Segmentation/<split>.txt`` (``train``, ``val``, ``trainval``).
    21 classes (:data:`VOC_CLASSES`); object borders carry 255, the ignore label.
    """
    _require_dir(root, "the VOC root (the folder holding JPEGImages and SegmentationClass)")
    list_file = os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")
    if not os.path.isfile(list_file):
        found = sorted(f[:-4] for f in _listdir(os.path.dirname(list_file)) if f.endswith(".txt"))
        raise FileNotFoundError(f"VOC split file {list_file} not found; splits present: {found or 'none'}.")
    with open(list_file) as f:
        stems = [line.split()[0] for line in f if line.strip()]
    pairs = []
    for stem in stems:
        image = os.path.join(root, "JPEGImages", f"{stem}.jpg")
        mask = os.path.join(root, "SegmentationClass", f"{stem}.png")
        for path in (image, mask):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} is listed in {list_file} but does not exist.")
        pairs.append((image, mask))
    if not pairs:
        raise ValueError(f"{list_file} lists no images.")
    return from_pairs(pairs, ignore_index=VOC_IGNORE_INDEX, num_classes=len(VOC_CLASSES), check=check,
                      skip_corrupt=skip_corrupt)


def pair_files(images, masks, mask_suffix=""):
    """``[(image_path, mask_path), ...]`` matched by stem; every image needs a mask and every mask an image."""
    _require_dir(images, "the image folder")
    _require_dir(masks, "the mask folder")
    image_files = _by_stem(images, IMAGE_EXTENSIONS, "")
    mask_files = _by_stem(masks, MASK_EXTENSIONS, mask_suffix)
    if not image_files:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in {images}.")
    orphans = sorted(set(mask_files) - set(image_files))
    if orphans:
        raise ValueError(
            f"{len(orphans)} mask(s) have no image in {images}, e.g. {mask_files[orphans[0]]}. "
            "Masks are matched to images by file stem (plus mask_suffix); remove or rename them."
        )
    missing = sorted(set(image_files) - set(mask_files))
    if missing:
        expected = os.path.join(masks, f"{missing[0]}{mask_suffix}.png")
        raise ValueError(
            f"{len(missing)} image(s) have no mask, e.g. {image_files[missing[0]]} (expected {expected}). "
            "Add the masks, or pass mask_suffix if mask names differ from image names."
        )
    return [(image_files[s], mask_files[s]) for s in sorted(image_files)]


def from_pairs(pairs, *, colors=None, ignore_index=None, num_classes=None, check=True, skip_corrupt=False):
    """The dataset of :func:`from_folders` for an explicit list of ``(image_path, mask_path)``."""
    import tensorflow as tf

    if not pairs:
        raise ValueError("The dataset is empty: no (image, mask) pairs were given.")
    table = _color_table(colors)
    if check:
        report = check_pairs(pairs, colors=colors, num_classes=num_classes, ignore_index=ignore_index,
                             skip_corrupt=skip_corrupt)  # fmt: skip
        pairs = report.pairs
    elif skip_corrupt:
        raise ValueError("skip_corrupt=True needs check=True: files are found unreadable by reading them first.")
    image_paths, mask_paths = (list(p) for p in zip(*pairs))

    def read(path):
        mask = read_mask(path.decode(), colors=table, ignore_index=ignore_index)
        if num_classes is not None:  # unchecked data still fails on the first bad file, by name
            values = out_of_range(mask, num_classes, ignore_index)
            if values:
                raise ValueError(label_range_message(f"Mask {path.decode()}", values, num_classes, ignore_index))
        return mask

    def load(image_path, mask_path):
        image = decode_image(tf.io.read_file(image_path))
        mask = tf.numpy_function(read, [mask_path], tf.int32)
        return image, tf.ensure_shape(mask, [None, None])

    ds = tf.data.Dataset.from_tensor_slices((image_paths, mask_paths))
    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def decode_image(contents):
    """The one image decoder of keras_seg: encoded bytes (a string tensor) -> float32 ``(H, W, 3)`` in [0, 255].

    JPEG, PNG, BMP and GIF (its first frame); grayscale is repeated over three channels, an
    alpha channel is dropped, a 16-bit PNG becomes ``v >> 8``. Training, evaluation,
    prediction and export calibration all decode through it, so an image means the same
    pixels everywhere.
    """
    import tensorflow as tf

    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    return tf.cast(tf.ensure_shape(image, [None, None, 3]), tf.float32)


def read_image(path):
    """An image file as float32 ``(H, W, 3)`` in [0, 255], decoded by :func:`decode_image` (as for training)."""
    import tensorflow as tf

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is not an image file.")
    with open(path, "rb") as f:
        contents = f.read()
    try:
        return decode_image(tf.constant(contents)).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        first = (error.message or "").strip().splitlines()[0] if error.message else type(error).__name__
        raise ValueError(f"Cannot read the image {path} ({first}); keras_seg reads JPEG, PNG, BMP and GIF files. "
                         "Convert it, or leave it out.") from None  # fmt: skip


def read_mask(path, colors=None, ignore_index=None):
    """A mask file as int32 ``(H, W)`` class indices (palette PNGs give their indices, not colours)."""
    from PIL import Image

    with Image.open(path) as img:
        if img.mode in INDEX_MODES:
            return np.asarray(img, dtype=np.int32)
        if colors is None:
            raise ValueError(_mode_message(path, img.mode))
        rgb = np.asarray(img.convert("RGB"), dtype=np.int64)
    return _colors_to_labels(rgb, colors, ignore_index, path)


def _mode_message(path, mode):
    if mode.startswith("F"):
        return (
            f"Mask {path} is a floating-point image (mode {mode}); masks must hold integer class indices. "
            "Save it as an 8- or 16-bit PNG of class ids (e.g. np.rint(mask).astype('uint8'))."
        )
    return (
        f"Mask {path} is an {mode} image; masks must hold class indices (a palette or grayscale "
        "PNG), or pass colors=[(r, g, b), ...] to map an RGB mask's colours to classes."
    )


class CheckReport(NamedTuple):
    pairs: list  # the (image, mask) pairs that can be used
    skipped: list  # [(path, reason)] of pairs left out because a file could not be read


def check_pairs(pairs, colors=None, *, num_classes=None, ignore_index=None, skip_corrupt=False, workers=8):
    """Read every image and mask once and report what would break training, by file name.

    Errors (``ValueError``): an image and its mask of different sizes; a mask that is
    not an index image (RGB without ``colors``, float); with ``num_classes``, mask
    values outside ``[0, num_classes)`` that are not ``ignore_index`` (the message
    lists the files and values). A file that cannot be decoded (truncated, not an
    image) is an error too, unless ``skip_corrupt``: then the pair is left out and a
    warning names how many and which. Returns a :class:`CheckReport`.
    """
    table = _color_table(colors)
    with ThreadPoolExecutor(max(1, min(workers, len(pairs)))) as pool:  # decoders release the GIL
        found = list(pool.map(lambda pair: _check_pair(*pair, table, num_classes, ignore_index), pairs))
    corrupt = [(pair, problem[1]) for pair, problem in zip(pairs, found) if problem and problem[0] == "corrupt"]
    errors = [problem[1] for problem in found if problem and problem[0] == "error"]
    if errors:
        more = f" ({len(errors) - 1} more file(s) with problems)" if len(errors) > 1 else ""
        raise ValueError(errors[0] + more)
    if corrupt and not skip_corrupt:
        (path, reason), count = corrupt[0][1], len(corrupt)
        raise ValueError(
            f"Cannot read {path} ({reason}); {count} file pair(s) in all cannot be read. Replace or delete them, "
            "or pass skip_corrupt=True (--skip-corrupt) to train without them."
        )
    skipped = [info for _, info in corrupt]
    if skipped:
        shown = "; ".join(f"{path} ({reason})" for path, reason in skipped[:3])
        warnings.warn(f"Skipped {len(skipped)} of {len(pairs)} image/mask pairs that cannot be read: {shown}"
                      + (" ..." if len(skipped) > 3 else ""), stacklevel=2)  # fmt: skip
    kept = [pair for pair, problem in zip(pairs, found) if not problem]
    if not kept:
        raise ValueError(f"The dataset is empty: none of the {len(pairs)} image/mask pairs can be read.")
    return CheckReport(kept, skipped)


def _check_pair(image_path, mask_path, table, num_classes, ignore_index):
    """``None`` if the pair is usable, else ``("corrupt", (path, reason))`` or ``("error", message)``."""
    from PIL import Image

    try:
        with Image.open(image_path) as img:
            img.load()
            image_size = img.size
    except (OSError, SyntaxError, ValueError) as error:  # PIL's ways of saying "not a readable image"
        return "corrupt", (image_path, f"{type(error).__name__}: {error}")
    try:
        with Image.open(mask_path) as mask:
            mask.load()
            mask_size, mode = mask.size, mask.mode
            if mode not in INDEX_MODES and table is None:
                return "error", _mode_message(mask_path, mode)
    except (OSError, SyntaxError, ValueError) as error:
        return "corrupt", (mask_path, f"{type(error).__name__}: {error}")
    if image_size != mask_size:
        return "error", (
            f"Image {image_path} is {image_size[0]}x{image_size[1]} but its mask {mask_path} is "
            f"{mask_size[0]}x{mask_size[1]} (width x height); they must match pixel for pixel."
        )
    if num_classes is not None:
        try:
            values = out_of_range(read_mask(mask_path, colors=table, ignore_index=ignore_index), num_classes, ignore_index)
        except ValueError as error:  # a colour outside the colour table
            return "error", str(error)
        if values:
            return "error", label_range_message(f"Mask {mask_path}", values, num_classes, ignore_index)
    return None


def _color_table(colors):
    """``(sorted packed RGB keys, their class indices)`` or None."""
    if colors is None:
        return None
    colors = np.asarray(colors, dtype=np.int64)
    if colors.ndim != 2 or colors.shape[1] != 3 or colors.min() < 0 or colors.max() > 255:
        raise ValueError(f"colors must be a list of (r, g, b) triples in [0, 255], got shape {colors.shape}.")
    keys = (colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]
    if len(np.unique(keys)) != len(keys):
        raise ValueError("colors lists the same colour for two classes; each class needs its own colour.")
    order = np.argsort(keys)
    return keys[order], order.astype(np.int32)


def _colors_to_labels(rgb, table, ignore_index, path):
    keys, classes = table
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    known = keys[pos] == packed
    if not known.all() and ignore_index is None:
        unknown = np.unique(packed[~known])[:5]
        shown = [((k >> 16) & 255, (k >> 8) & 255, k & 255) for k in unknown.tolist()]
        raise ValueError(
            f"Mask {path} has colours {shown} that are not in colors; add them, or pass ignore_index "
            "to treat unknown colours as void."
        )
    return np.where(known, classes[pos], ignore_index if ignore_index is not None else 0).astype(np.int32)


def _by_stem(folder, extensions, suffix):
    found = {}
    for name in _listdir(folder):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in extensions or name.startswith("."):
            continue
        if suffix:
            if not stem.endswith(suffix):
                continue
            stem = stem[: -len(suffix)]
        if stem in found:
            raise ValueError(f"Two files in {folder} share the stem {stem!r}: {found[stem]} and {name}; keep one.")
        found[stem] = os.path.join(folder, name)
    return found


def _listdir(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _require_dir(path, what):
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path} is not a folder; expected {what}.")
