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

pytestmark = pytest.mark.once  # tf.data pipelines and file readers: backend-independent


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


# ------------------------------------------------------------------------------------------ bad input


def test_mask_values_outside_the_classes_are_named_with_their_file(tmp_path):
    image_dir, mask_dir, _, masks = write_pairs(tmp_path)  # values 0..2 and 255
    bad = masks[1].astype(np.uint8).copy()
    bad[3, 4], bad[5, 6] = 7, 9
    Image.fromarray(bad, mode="L").save(os.path.join(mask_dir, "img1.png"))
    Image.fromarray(np.full((20, 12), 4, np.uint8), mode="L").save(os.path.join(mask_dir, "img2.png"))
    with pytest.raises(ValueError, match=r"Mask .*img1\.png: label values \[7, 9\] are outside \[0, 3\) and are not "
                                         r"ignore_index=255.*\(1 more file"):  # fmt: skip
        data.from_folders(image_dir, mask_dir, ignore_index=255, num_classes=3)
    # Without an ignore index, 255 is out of range too and the message suggests one.
    with pytest.raises(ValueError, match=r"img0\.png: label values \[255\] are outside \[0, 3\).*pass the void label as ignore_index.*\(2 more"):
        data.from_folders(image_dir, mask_dir, num_classes=3)
    os.remove(os.path.join(mask_dir, "img2.png"))
    os.remove(os.path.join(image_dir, "img2.png"))
    # Unchecked data fails on the first bad file when it is read, by name.
    ds = data.from_folders(image_dir, mask_dir, ignore_index=255, num_classes=3, check=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"img1\.png: label values \[7, 9\]"):
        as_numpy(ds)
    # With enough classes the same files are fine.
    assert len(as_numpy(data.from_folders(image_dir, mask_dir, ignore_index=255, num_classes=10))) == 2


def test_corrupt_files_stop_the_build_or_are_skipped_and_counted(tmp_path):
    image_dir, mask_dir, images, _ = write_pairs(tmp_path, count=4)
    png = open(os.path.join(image_dir, "img1.png"), "rb").read()
    with open(os.path.join(image_dir, "img1.png"), "wb") as f:
        f.write(png[: len(png) // 2])  # truncated
    with open(os.path.join(mask_dir, "img3.png"), "wb") as f:
        f.write(b"not an image at all")
    with pytest.raises(ValueError, match=r"Cannot read .*img1\.png \(.*\); 2 file pair\(s\) in all.*skip_corrupt=True"):
        data.from_folders(image_dir, mask_dir, ignore_index=255)
    with pytest.warns(UserWarning, match=r"Skipped 2 of 4 image/mask pairs.*img1\.png.*img3\.png"):
        ds = data.from_folders(image_dir, mask_dir, ignore_index=255, skip_corrupt=True)
    got = as_numpy(ds)
    assert len(got) == 2
    np.testing.assert_array_equal(got[1][0], images[2].astype(np.float32))  # img0 and img2 remain, in order
    with pytest.raises(ValueError, match="skip_corrupt=True needs check=True"):
        data.from_folders(image_dir, mask_dir, check=False, skip_corrupt=True)


def test_catalog_skips_corrupt_files_and_reports_them(tmp_path):
    image_dir, mask_dir, _, _ = write_pairs(tmp_path, count=3)
    with open(os.path.join(image_dir, "img0.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n garbage")
    kw = dict(images=image_dir, masks=mask_dir, class_names=["a", "b", "c"], ignore_index=255)
    with pytest.raises(ValueError, match="Cannot read"):
        catalog.load("folder", **kw)
    with pytest.warns(UserWarning, match="Skipped 1 of 3"):
        ds, _ = catalog.load("folder", skip_corrupt=True, **kw)
    assert len(as_numpy(ds)) == 2
    with pytest.raises(ValueError, match=r"label values \[2\] are outside \[0, 2\)"):  # two names: labels 0, 1 only
        catalog.load("folder", skip_corrupt=True, **dict(kw, class_names=["a", "b"]))


def test_grayscale_rgba_and_16_bit_images_become_8_bit_rgb(tmp_path):
    image_dir, mask_dir, _, _ = write_pairs(tmp_path, count=3)
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (20, 12), dtype=np.uint8)
    rgba = rng.integers(0, 256, (20, 12, 4), dtype=np.uint8)
    deep = rng.integers(0, 65536, (20, 12), dtype=np.uint16)
    Image.fromarray(gray, mode="L").save(os.path.join(image_dir, "img0.png"))
    Image.fromarray(rgba, mode="RGBA").save(os.path.join(image_dir, "img1.png"))
    Image.fromarray(deep).save(os.path.join(image_dir, "img2.png"))
    assert Image.open(os.path.join(image_dir, "img2.png")).mode == "I;16"
    got = [image for image, _ in as_numpy(data.from_folders(image_dir, mask_dir, ignore_index=255, num_classes=3))]
    np.testing.assert_array_equal(got[0], np.repeat(gray[..., None], 3, -1).astype(np.float32))
    np.testing.assert_array_equal(got[1], rgba[..., :3].astype(np.float32))  # alpha dropped
    np.testing.assert_array_equal(got[2], np.repeat((deep >> 8)[..., None], 3, -1).astype(np.float32))
    assert max(g.max() for g in got) <= 255


def test_float_masks_are_refused_from_files_and_checked_in_prepare(tmp_path):
    image_dir, mask_dir, _, _ = write_pairs(tmp_path, count=1)
    os.remove(os.path.join(mask_dir, "img0.png"))
    Image.fromarray(np.zeros((20, 12), np.float32), mode="F").save(os.path.join(mask_dir, "img0.tif"))
    with pytest.raises(ValueError, match=r"img0\.tif is a floating-point image \(mode F\).*integer class indices"):
        data.from_folders(image_dir, mask_dir)
    x = np.zeros((4, 8, 8, 3), np.float32)
    y = np.zeros((4, 8, 8), np.float32)
    y[2] = 3.0
    whole = as_numpy(data.prepare(tf.data.Dataset.from_tensor_slices((x, y)), 4))
    assert whole[0][1].dtype == np.int32 and whole[0][1][2].max() == 3  # whole numbers are class ids
    y[1, 0, 0] = 0.5
    with pytest.raises(tf.errors.InvalidArgumentError, match="float mask has non-integer values"):
        as_numpy(data.prepare(tf.data.Dataset.from_tensor_slices((x, y)), 4, (4, 4)))  # before any resize


@pytest.mark.parametrize(
    "images, masks, message",
    [
        (np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 8)), r"already batched \(images \(2, 8, 8, 3\)\)"),
        (np.zeros((8, 8)), np.zeros((8, 8)), r"Images have shape \(8, 8\); expected \(height, width, channels\)"),
        (np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), r"Masks have shape \(8, 8, 3\).*colour mask"),
    ],
)
def test_prepare_refuses_wrong_ranks_before_reading(images, masks, message):
    ds = tf.data.Dataset.from_tensors((images.astype(np.float32), masks.astype(np.int32)))
    with pytest.raises(ValueError, match=message):
        data.prepare(ds, 2)


def test_check_batch_names_what_a_model_cannot_train_on():
    from keras_seg.utils.validate import check_batch

    x, y = np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 8, 8), np.int32)
    check_batch(x, y, num_classes=3, channels=3)  # fine
    check_batch(x, np.eye(3, dtype=np.float32)[y], num_classes=3)  # one-hot is fine
    y_bad = y.copy()
    y_bad[1, 2, 3] = 5
    cases = [
        (dict(images=x[0], masks=y), r"shape \(8, 8, 3\); expected \(batch, height, width, channels\) \(a single image"),
        (dict(images=x, masks=y, channels=1), r"3 channels but the model takes 1"),
        (dict(images=x * np.nan, masks=y), r"NaN or infinite pixel"),
        (dict(images=x, masks=y[:, :4]), r"are \(2, 8, 8\).*masks are \(2, 4, 8\)"),
        (dict(images=x, masks=np.zeros((2, 8, 8, 3))), None),  # one-hot-shaped for 3 classes: fine
        (dict(images=x, masks=np.zeros((2, 8, 8, 5))), r"shape \(2, 8, 8, 5\).*RGB colour mask"),
        (dict(images=x, masks=y + 0.5), r"float with non-integer values \[0\.5\]"),
        (dict(images=x, masks=y_bad), r"label values \[5\] are outside \[0, 3\).*num_classes to match"),
    ]
    for kwargs, message in cases:
        if message is None:
            check_batch(num_classes=3, **kwargs)
            continue
        with pytest.raises(ValueError, match=message):
            check_batch(num_classes=3, where="the training data", **kwargs)
    check_batch(x, np.where(y_bad == 5, 255, y_bad), num_classes=3, ignore_index=255)  # the void label is fine
    check_batch(x, y + 1, num_classes=1)  # a binary model takes 0 and 1
    with pytest.raises(ValueError, match=r"\[2\] are outside \[0, 2\)"):
        check_batch(x, y + 2, num_classes=1)


def test_first_batch_reads_pairs_and_leaves_other_structures_alone():
    from keras_seg.utils.validate import first_batch

    x, y = np.zeros((3, 4, 4, 3), np.float32), np.ones((3, 4, 4), np.int32)
    images, masks = first_batch(tf.data.Dataset.from_tensor_slices((x, y)).batch(2))
    assert images.shape == (2, 4, 4, 3) and masks.shape == (2, 4, 4)
    assert first_batch(tf.data.Dataset.from_tensor_slices(({"image": x}, y)).batch(2)) is None
    assert first_batch((x, y))[0] is x and first_batch(({"image": x}, y)) is None
    with pytest.raises(ValueError, match="the data is empty"):
        first_batch(tf.data.Dataset.from_tensor_slices((x, y)).take(0).batch(2))


# ------------------------------------------------------------------------------------------ properties


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

mask_arrays = hnp.arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.integers(0, 255))


@given(mask=mask_arrays, mode=st.sampled_from(["L", "P", "I;16"]))
def test_read_mask_returns_the_stored_indices_in_every_mode(mask, mode, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("m") / "m.png")
    if mode == "I;16":
        Image.fromarray(mask.astype(np.uint16) * 251).save(path)  # values up to 64005
        want = mask.astype(np.int32) * 251
    else:
        img = Image.fromarray(mask, mode="L")
        if mode == "P":
            img = Image.frombytes("P", img.size, mask.tobytes())
            img.putpalette(voc_palette().ravel().tolist())
        img.save(path)
        want = mask.astype(np.int32)
    assert Image.open(path).mode == mode
    got = data.read_mask(path)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


@given(mask=mask_arrays, num_classes=st.integers(1, 256), ignore=st.sampled_from([None, 0, 255]))
def test_out_of_range_is_exactly_the_labels_no_class_owns(mask, num_classes, ignore):
    from keras_seg.utils.validate import out_of_range

    want = sorted({int(v) for v in mask.ravel() if v >= num_classes and v != ignore})[:5]
    assert out_of_range(mask, num_classes, ignore) == want


@given(images=hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.just(3)),
                         elements=st.floats(0, 255, width=32)),  # fmt: skip
       seed=st.integers(0, 2**31 - 1))
def test_prepare_keeps_every_pair_and_its_labels(images, seed):
    masks = np.random.default_rng(seed).integers(0, 4, images.shape[:3]).astype(np.int32)
    got = as_numpy(data.prepare(tf.data.Dataset.from_tensor_slices((images, masks)), 2))
    np.testing.assert_array_equal(np.concatenate([m for _, m in got]), masks)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in got]), images)
