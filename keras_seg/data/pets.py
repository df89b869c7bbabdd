"""Oxford-IIIT Pet (Parkhi et al., 2012) through tensorflow-datasets.

:func:`pets` downloads the data (about 800 MB) the first time, into
``~/tensorflow_datasets`` or ``data_dir``, and needs ``pip install tensorflow-datasets``.
:func:`pets_from_tfds` converts any dataset in tfds' ``oxford_iiit_pet`` element
format (dicts with ``image`` and a ``segmentation_mask`` trimap) into keras_seg's
``(image, mask)`` pairs; the tests feed it a small local stand-in of that format.
"""

CLASS_NAMES = ("background", "pet", "border")
TFDS_NAME = "oxford_iiit_pet"
SPLITS = {"train": "train", "val": "test", "test": "test"}  # tfds has train (3,680) and test (3,669)


def pets(split="train", data_dir=None, download=True, border="class"):
    """Oxford-IIIT Pet as an unbatched ``tf.data.Dataset`` of ``(image, mask)``.

    Args:
        split: ``"train"``, ``"val"`` (tfds' ``test`` split) or any tfds split string
            such as ``"train[:90%]"``.
        data_dir: where tfds keeps (or finds) the prepared data.
        download: let tfds download and prepare the data if it is not in ``data_dir``.
        border: ``"class"`` keeps the trimap's border as class 2 (three classes,
            :data:`CLASS_NAMES`); ``"ignore"`` turns it into 255, a void label.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "The pets dataset is read with tensorflow-datasets: pip install tensorflow-datasets "
            "(it downloads about 800 MB on first use)."
        ) from error
    ds = tfds.load(TFDS_NAME, split=SPLITS.get(split, split), data_dir=data_dir, download=download)
    return pets_from_tfds(ds, border=border)


def pets_from_tfds(ds, border="class"):
    """Map tfds ``oxford_iiit_pet`` elements to ``(image float32 (H, W, 3), mask int32 (H, W))``.

    The trimap stores 1 = pet, 2 = background, 3 = border; keras_seg uses
    0 = background, 1 = pet, 2 = border (or 255 with ``border="ignore"``).
    """
    import tensorflow as tf

    if border not in ("class", "ignore"):
        raise ValueError(f"border={border!r} must be 'class' (a third class) or 'ignore' (label 255).")
    lookup = tf.constant([255, 1, 0, 2 if border == "class" else 255], dtype=tf.int32)

    def convert(example):
        image = tf.cast(example["image"], tf.float32)
        trimap = tf.cast(tf.squeeze(example["segmentation_mask"], axis=-1), tf.int32)
        return image, tf.gather(lookup, trimap)

    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
