"""Datasets by name, with what a trainer needs to know about them (classes, void label)."""

import os
import zlib
from typing import NamedTuple


class DatasetInfo(NamedTuple):
    name: str
    num_classes: int
    class_names: tuple
    ignore_index: int | None


DATASETS = ("shapes", "folder", "voc", "pets")


def load(name, split="train", *, root=None, images=None, masks=None, class_names=None, ignore_index=None,
         num_images=None, image_size=64, seed=0, data_dir=None, val_fraction=0.0, skip_corrupt=False):
    """``(dataset, DatasetInfo)`` for a dataset named on the command line.

    - ``"shapes"``: the synthetic set (``num_images``, default 1024 for train and 128
      otherwise, at ``image_size``).
    - ``"folder"``: ``images`` and ``masks`` folders; ``class_names`` is required (it
      fixes the number of classes); ``ignore_index`` optional. With ``val_fraction > 0``
      the pairs are split by a hash of the file stem (stable as files are added):
      ``split="train"`` gets the rest, any other split that share.
    - ``"voc"``: the VOC2012 folder ``root``.
    - ``"pets"``: Oxford-IIIT Pet through tensorflow-datasets (``data_dir``).

    Folder and VOC files are all read once first (:func:`keras_seg.data.folders.check_pairs`):
    mask values outside the classes are an error naming the file; ``skip_corrupt``
    leaves unreadable pairs out with a warning that counts them.
    """
    from keras_seg.data import folders
    from keras_seg.data.pets import CLASS_NAMES as PETS_CLASSES
    from keras_seg.data.pets import pets
    from keras_seg.data.shapes import CLASS_NAMES as SHAPES_CLASSES
    from keras_seg.data.shapes import shapes

    if name == "shapes":
        count = num_images or (1024 if split == "train" else 128)
        ds = shapes(split, count, image_size, seed)
        return ds, DatasetInfo("shapes", len(SHAPES_CLASSES), SHAPES_CLASSES, None)
    if name == "folder":
        if images is None or masks is None:
            raise ValueError("The folder dataset needs both an images folder and a masks folder.")
        if not class_names:
            raise ValueError("The folder dataset needs its class names (they fix num_classes), e.g. background,road,car.")
        pairs = folders.pair_files(images, masks)
        if val_fraction:
            pairs = split_pairs(pairs, split, val_fraction)
        ds = folders.from_pairs(pairs, ignore_index=ignore_index, num_classes=len(class_names),
                                skip_corrupt=skip_corrupt)  # fmt: skip
        return ds, DatasetInfo("folder", len(class_names), tuple(class_names), ignore_index)
    if name == "voc":
        if root is None:
            raise ValueError("The voc dataset needs its root: the VOC2012 folder holding JPEGImages.")
        ds = folders.voc(root, split, skip_corrupt=skip_corrupt)
        return ds, DatasetInfo("voc", len(folders.VOC_CLASSES), folders.VOC_CLASSES, folders.VOC_IGNORE_INDEX)
    if name == "pets":
        ds = pets(split, data_dir=data_dir)
        return ds, DatasetInfo("pets", len(PETS_CLASSES), PETS_CLASSES, None)
    raise ValueError(f"Unknown dataset {name!r}; expected one of {DATASETS}.")


def split_pairs(pairs, split, fraction):
    """Hold out about ``fraction`` of ``(image, mask)`` pairs, chosen by a CRC32 of the image's file stem."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction={fraction!r} must be between 0 and 1 (exclusive).")

    def held_out(pair):
        stem = os.path.splitext(os.path.basename(pair[0]))[0]
        return zlib.crc32(stem.encode()) % 10_000 < fraction * 10_000

    chosen = [p for p in pairs if held_out(p) != (split == "train")]
    if not chosen:
        raise ValueError(
            f"Splitting {len(pairs)} image(s) with val_fraction={fraction} leaves the {split} split empty; "
            "add images, change the fraction, or give separate validation folders."
        )
    return chosen
