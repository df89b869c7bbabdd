"""keras_seg.data: the shapes dataset, folder / VOC / pets readers, the batching pipeline."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_seg import data
from keras_seg.data import catalog
from keras_seg.losses import compute_class_weights
from keras_seg.viz import voc_palette


def as_numpy(ds):
    return [tuple(np.asarray(t) for t in item) for item in ds.as_numpy_iterator()]


# ------------------------------------------------------------------------------------------ shapes


def test_shapes_arrays_are_deterministic_prefix_stable_and_split_disjoint():
    x, y = data.shapes_arrays("train", 12, 32, seed=3)
    assert x.shape == (12, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (12, 32, 32) and y.dtype == np.int32
    x2, y2 = data.shapes_arrays("train", 5, 32, seed=3)
    np.testing.assert_array_equal(x[:5], x2)  # image i depends on (seed, split, i) only
    np.testing.assert_array_equal(y[:5], y2)
    xv, _ = data.shapes_arrays("val", 5, 32, seed=3)
    xs, _ = data.shapes_arrays("train", 5, 32, seed=4)
    assert not np.array_equal(x[:5], xv) and not np.array_equal(x[:5], xs)


def test_shapes_has_every_class_and_colour_does_not_tell_them_apart():
    x, y = data.shapes_arrays("train", 48, 48)
    counts = np.bincount(y.ravel(), minlength=4)
    assert (counts > 0).all() and counts.size == len(data.SHAPES_CLASSES) == 4
    assert 0.05 < 1 - counts[0] / counts.sum() < 0.5  # objects cover a real share of the pixels
    pixels = x.reshape(-1, 3).astype(np.float64)
    labels = y.ravel()
    means = np.stack([pixels[labels == k].mean(axis=0) for k in range(4)])
    nearest = np.argmin(((pixels[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    # Classifying pixels by the nearest class-mean colour is barely better than chance (0.25 per class).
    per_class = [np.mean(nearest[labels == k] == k) for k in range(4)]
    assert np.mean(per_class) < 0.45, per_class


def test_shapes_dataset_spec_and_values():
    ds = data.shapes("val", 4, (32, 40))
    assert ds.element_spec[0].shape == (32, 40, 3) and ds.element_spec[0].dtype == tf.float32
    assert ds.element_spec[1].shape == (32, 40) and ds.element_spec[1].dtype == tf.int32
    x, y = data.shapes_arrays("val", 4, (32, 40))
    got = as_numpy(ds)
    np.testing.assert_array_equal(np.stack([g[0] for g in got]), x.astype(np.float32))
    np.testing.assert_array_equal(np.stack([g[1] for g in got]), y)


@pytest.mark.parametrize("kwargs, match", [({"split": "dev"}, "split='dev'"), ({"image_size": 8}, "image_size=8"),
                                           ({"num_images": 0}, "num_images=0")])  # fmt: skip
def test_shapes_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.shapes_arrays(**kwargs)


# ------------------------------------------------------------------------------------------ folders


def write_pairs(tmp_path, count=3, size=(20, 12), mode="P", suffix="", image_ext=".png"):
    """Images and masks on disk; returns (image_dir, mask_dir, images, masks)."""
    rng = np.random.default_rng(0)
    image_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    image_dir.mkdir(exist_ok=True)
    mask_dir.mkdir(exist_ok=True)
    images, masks = [], []
    for i in range(count):
        image = rng.integers(0, 256, size=(size[0], size[1], 3), dtype=np.uint8)
        mask = rng.integers(0, 3, size=size).astype(np.uint8)
        mask[0, 0] = 255
        Image.fromarray(image).save(image_dir / f"img{i}{image_ext}")
        m = Image.fromarray(mask, mode="L")
        if mode == "P":
            m = m.convert("P")
            m.putpalette(voc_palette().ravel().tolist())
            m = Image.frombytes("P", m.size, mask.tobytes())
            m.putpalette(voc_palette().ravel().tolist())
        m.save(mask_dir / f"img{i}{suffix}.png")
        images.append(image)
        masks.append(mask.astype(np.int32))
    return str(image_dir), str(mask_dir), images, masks


@pytest.mark.parametrize("mode", ["P", "L"])
def test_folder_dataset_reads_palette_and_grayscale_masks_exactly(tmp_path, mode):
    image_dir, mask_dir, images, masks = write_pairs(tmp_path, mode=mode)
    if mode == "P":
        assert Image.open(os.path.join(mask_dir, "img0.png")).mode == "P"
    got = as_numpy(data.from_folders(image_dir, mask_dir, ignore_index=255))
    assert len(got) == 3
    for (image, mask), want_image, want_mask in zip(got, images, masks):
        assert image.dtype == np.float32 and mask.dtype == np.int32
        np.testing.assert_array_equal(image, want_image.astype(np.float32))
        np.testing.assert_array_equal(mask, want_mask)  # palette indices, not colours


def test_folder_dataset_mask_suffix_and_rgb_masks_with_colors(tmp_path):
    image_dir, mask_dir, _, masks = write_pairs(tmp_path, count=2, mode="L", suffix="_mask")
    colors = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]
    for i, mask in enumerate(masks):  # rewrite as RGB colour masks; 255 -> an unknown colour
        rgb = np.zeros(mask.shape + (3,), np.uint8)
        for k, c in enumerate(colors):
            rgb[mask == k] = c
        rgb[mask == 255] = (9, 9, 9)
        Image.fromarray(rgb).save(os.path.join(mask_dir, f"img{i}_mask.png"))
    with pytest.raises(ValueError, match="RGB image.*colors="):
        data.from_folders(image_dir, mask_dir, mask_suffix="_mask")
    got = as_numpy(data.from_folders(image_dir, mask_dir, mask_suffix="_mask", colors=colors, ignore_index=255))
    for (_, mask), want in zip(got, masks):
        np.testing.assert_array_equal(mask, want)


def test_folder_errors_name_the_file(tmp_path):
    image_dir, mask_dir, _, _ = write_pairs(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere is not a folder"):
        data.from_folders(str(tmp_path / "nowhere"), mask_dir)
    Image.fromarray(np.zeros((20, 12), np.uint8)).save(os.path.join(mask_dir, "stray.png"))
    with pytest.raises(ValueError, match=r"have no image .*stray\.png"):
        data.from_folders(image_dir, mask_dir)
    os.remove(os.path.join(mask_dir, "stray.png"))
    os.remove(os.path.join(mask_dir, "img1.png"))
    with pytest.raises(ValueError, match=r"have no mask, e\.g\. .*img1\.png"):
        data.from_folders(image_dir, mask_dir)
    Image.fromarray(np.zeros((21, 12), np.uint8)).save(os.path.join(mask_dir, "img1.png"))
    with pytest.raises(ValueError, match=r"img1\.png is 12x20 but its mask .*img1\.png is 12x21"):
        data.from_folders(image_dir, mask_dir)


def test_voc_layout(tmp_path):
    root = tmp_path / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    image_dir, mask_dir, _, masks = write_pairs(tmp_path, count=3)
    for i in range(3):
        Image.open(os.path.join(image_dir, f"img{i}.png")).save(root / "JPEGImages" / f"2007_{i:06d}.jpg")
        os.replace(os.path.join(mask_dir, f"img{i}.png"), root / "SegmentationClass" / f"2007_{i:06d}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("2007_000000\n2007_000002\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000001\n")
    train = as_numpy(data.voc(str(root), "train"))
    assert [m.shape for _, m in train] == [(20, 12), (20, 12)]
    np.testing.assert_array_equal(train[1][1], masks[2])
    assert train[0][1][0, 0] == 255 and train[0][0].shape == (20, 12, 3)  # JPEG decoded to RGB
    ds, info = catalog.load("voc", "val", root=str(root))
    assert info.num_classes == 21 and info.ignore_index == 255 and info.class_names[15] == "person"
    np.testing.assert_array_equal(as_numpy(ds)[0][1], masks[1])
    with pytest.raises(FileNotFoundError, match=r"test\.txt not found; splits present: \['train', 'val'\]"):
        data.voc(str(root), "test")


def test_pets_from_tfds_maps_the_trimap():
    trimap = np.array([[1, 2, 3], [3, 2, 1]], np.uint8)[..., None]  # tfds: 1 pet, 2 background, 3 border
    image = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    stand_in = tf.data.Dataset.from_tensors({"image": image, "segmentation_mask": trimap, "label": 3})
    (x, y), = as_numpy(data.pets_from_tfds(stand_in))
    np.testing.assert_array_equal(y, [[1, 0, 2], [2, 0, 1]])
    np.testing.assert_array_equal(x, image.astype(np.float32))
    (_, y), = as_numpy(data.pets_from_tfds(stand_in, border="ignore"))
    np.testing.assert_array_equal(y, [[1, 0, 255], [255, 0, 1]])
    assert data.PETS_CLASSES == ("background", "pet", "border")


def test_split_pairs_is_a_stable_partition():
    pairs = [(f"/x/img{i}.jpg", f"/y/img{i}.png") for i in range(200)]
    train, val = catalog.split_pairs(pairs, "train", 0.2), catalog.split_pairs(pairs, "val", 0.2)
    assert sorted(train + val) == sorted(pairs) and not set(train) & set(val)
    assert 20 <= len(val) <= 60
    assert catalog.split_pairs(pairs[:100], "val", 0.2) == [p for p in val if p in pairs[:100]]


# ------------------------------------------------------------------------------------------ pipeline


def test_prepare_batches_and_resizes():
    ds = data.shapes("train", 10, 32)
    batches = as_numpy(data.prepare(ds, 4, (16, 24)))
    assert [b[0].shape for b in batches] == [(4, 16, 24, 3), (4, 16, 24, 3), (2, 16, 24, 3)]
    assert batches[0][1].shape == (4, 16, 24) and batches[0][1].dtype == np.int32
    x, y = data.shapes_arrays("train", 4, 32)
    rows = np.floor((np.arange(16) + 0.5) * 32 / 16).astype(int)  # nearest neighbour, pixel centres
    cols = np.floor((np.arange(24) + 0.5) * 32 / 24).astype(int)
    np.testing.assert_array_equal(batches[0][1], y[:, rows][:, :, cols])
    same = as_numpy(data.prepare(ds, 4, 32))
    np.testing.assert_array_equal(same[0][1], y)  # stretch to the same size changes nothing
    np.testing.assert_allclose(same[0][0], x, atol=1e-4)


def test_prepare_pad_keeps_aspect_and_pads_with_ignore():
    image = np.full((10, 20, 3), 100, np.float32)
    mask = np.ones((10, 20), np.int32)
    ds = tf.data.Dataset.from_tensors((image, mask))
    (x, y), = as_numpy(data.prepare(ds, 1, 40, resize="pad", ignore_index=255, fill_value=7.0))
    assert x.shape == (1, 40, 40, 3)
    np.testing.assert_array_equal(y[0, :20], 1)  # 10x20 scaled by 2 -> 20x40 at the top
    np.testing.assert_array_equal(y[0, 20:], 255)
    np.testing.assert_allclose(x[0, :20], 100, atol=1e-4)
    np.testing.assert_allclose(x[0, 20:], 7)
    with pytest.raises(ValueError, match="resize='pad' needs an ignore_index"):
        data.prepare(ds, 1, 40, resize="pad")


def test_prepare_augmentation_is_reproducible_and_differs_per_epoch():
    ds = data.shapes("train", 4, 32)
    augment = data.Augment(crop_size=(24, 24), scale=(0.7, 1.4), rotation=20, ignore_index=255)

    def build():
        return data.prepare(ds, 4, 24, augment=augment, shuffle=4, seed=7)

    first = build()
    epoch1, epoch2 = as_numpy(first), as_numpy(first)
    again = as_numpy(build())
    np.testing.assert_array_equal(epoch1[0][1], again[0][1])  # same seed -> same run
    np.testing.assert_array_equal(epoch1[0][0], again[0][0])
    assert not np.array_equal(epoch1[0][1], epoch2[0][1])  # but every epoch draws new augmentations
    assert epoch1[0][0].shape == (4, 24, 24, 3)


def test_class_weights_from_a_dataset_equal_those_from_arrays():
    _, y = data.shapes_arrays("train", 16, 32)
    counts = np.bincount(y.ravel(), minlength=4)
    assert (counts > 0).all()
    from_ds = compute_class_weights(data.prepare(data.shapes("train", 16, 32), 3), 4)
    np.testing.assert_allclose(from_ds, compute_class_weights(y, 4), rtol=1e-6)
    np.testing.assert_allclose(from_ds, counts.sum() / (4 * counts), rtol=1e-5)


def test_catalog_load_errors():
    with pytest.raises(ValueError, match="Unknown dataset 'coco'"):
        catalog.load("coco")
    with pytest.raises(ValueError, match="needs its class names"):
        catalog.load("folder", images="a", masks="b")
    ds, info = catalog.load("shapes", "val", num_images=3, image_size=32)
    assert info == data.DatasetInfo("shapes", 4, data.SHAPES_CLASSES, None) and len(as_numpy(ds)) == 3
