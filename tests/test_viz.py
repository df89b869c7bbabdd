"""keras_seg.viz: palette values, hand-computed colours and blends, PNG round trips, plot files, atomic writes."""

import csv
import os

import matplotlib.figure
import numpy as np
import pytest
from PIL import Image

from keras_seg import viz

pytestmark = pytest.mark.once  # plots and PNG files: backend-independent

VOID = (224, 224, 192)
# Shared 2x3 case:  [[0, 1, 2],
#                    [255, 1, 0]]   (255 = void)
MASK = np.array([[0, 1, 2], [255, 1, 0]])


def assert_png(path, min_size=(100, 100)):
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.width >= min_size[0] and im.height >= min_size[1]
    with Image.open(path) as im:
        im.verify()


def test_voc_palette_values():
    palette = viz.voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0]
    assert palette[3].tolist() == [128, 128, 0]
    assert palette[4].tolist() == [0, 0, 128]
    assert palette[255].tolist() == list(VOID)
    np.testing.assert_array_equal(viz.voc_palette(21), palette[:21])
    with pytest.raises(ValueError, match="257"):
        viz.voc_palette(257)


def test_colorize_hand_made_mask():
    expected = np.array([[[0, 0, 0], [128, 0, 0], [0, 128, 0]], [VOID, [128, 0, 0], [0, 0, 0]]], np.uint8)
    out = viz.colorize(MASK, ignore_index=255)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(viz.colorize(MASK[..., None].astype("float32"), ignore_index=255), expected)


def test_colorize_custom_palette_and_void():
    palette = [[10, 20, 30], [40, 50, 60], [70, 80, 90]]
    out = viz.colorize(MASK, palette=palette, ignore_index=255)
    assert out[0].tolist() == palette
    assert out[1].tolist() == [list(VOID), palette[1], palette[0]]  # void colour whatever the palette


def test_colorize_errors_name_the_value():
    with pytest.raises(ValueError, match=r"\[255\].*3 colours"):
        viz.colorize(MASK, palette=np.zeros((3, 3)))  # 255 is not ignored here
    with pytest.raises(ValueError, match=r"\[-1\]"):
        viz.colorize([[0, -1]])
    with pytest.raises(ValueError, match="0.5"):
        viz.colorize([[0.5, 1.0]])
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        viz.colorize(np.zeros((2, 3, 4), int))


def test_overlay_hand_computed_blend():
    image = np.full((2, 3, 3), 100, np.uint8)
    image[0, 0] = (10, 20, 30)
    out = viz.overlay(image, MASK, alpha=0.5, ignore_index=255)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    expected = np.array(
        [
            [[10, 20, 30], [114, 50, 50], [50, 114, 50]],  # background kept; 0.5*100 + 0.5*(128,0,0); class 2
            [[100, 100, 100], [114, 50, 50], [100, 100, 100]],  # void kept; class 1; background kept
        ]
    )
    np.testing.assert_array_equal(out, expected)


def test_overlay_background_none_and_grayscale():
    gray = np.full((2, 3), 100.0)
    out = viz.overlay(gray, MASK, alpha=0.5, background=None, ignore_index=255)
    assert out[0, 0].tolist() == [50, 50, 50]  # class 0 (black) is tinted too
    assert out[1, 0].tolist() == [100, 100, 100]  # void stays untinted
    np.testing.assert_array_equal(viz.overlay(gray[..., None], MASK, alpha=0.0), np.full((2, 3, 3), 100))


def test_overlay_legend_strip_below():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3)).astype(np.uint8)
    mask = np.zeros((40, 60), int)
    mask[10:30, 10:50] = 1
    mask[:5] = 255
    plain = viz.overlay(image, mask, ignore_index=255)
    with_legend = viz.overlay(image, mask, ignore_index=255, class_names=["background", "cat"])
    assert with_legend.shape[0] > 40 and with_legend.shape[1:] == (60, 3)
    np.testing.assert_array_equal(with_legend[:40], plain)
    strip = with_legend[40:].reshape(-1, 3)
    assert any((strip == [128, 0, 0]).all(axis=1))  # the swatch of "cat"
    with pytest.raises(ValueError, match=r"\[1\].*1 names"):
        viz.overlay(image, mask, ignore_index=255, class_names=["background"])


def test_overlay_errors_name_the_value():
    with pytest.raises(ValueError, match=r"image \(4, 5, 3\), mask \(2, 3\)"):
        viz.overlay(np.zeros((4, 5, 3)), MASK)
    with pytest.raises(ValueError, match="max 300"):
        viz.overlay(np.full((2, 3, 3), 300.0), MASK)
    with pytest.raises(ValueError, match="1.5"):
        viz.overlay(np.zeros((2, 3, 3)), MASK, alpha=1.5)


def test_save_label_png_round_trip(tmp_path):
    mask = np.array([[0, 1, 2, 20], [255, 7, 0, 1]], np.uint8)
    path = viz.save_label_png(tmp_path / "sub" / "label.png", mask)
    assert path == tmp_path / "sub" / "label.png"
    with Image.open(path) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.array(im), mask)
        np.testing.assert_array_equal(np.array(im.getpalette()).reshape(-1, 3), viz.voc_palette())


def test_save_label_png_custom_palette_and_errors(tmp_path):
    palette = [[0, 0, 0], [255, 255, 255]]  # two colours must not shrink the PNG to 1 bit
    mask = np.array([[0, 1], [255, 0]])
    viz.save_label_png(tmp_path / "bw.png", mask[..., None], palette=palette)
    with Image.open(tmp_path / "bw.png") as im:
        np.testing.assert_array_equal(np.array(im), mask)
        colors = np.array(im.getpalette()).reshape(-1, 3)
    assert colors[:2].tolist() == palette and colors[255].tolist() == list(VOID)
    with pytest.raises(ValueError, match=r"\[256\]"):
        viz.save_label_png(tmp_path / "bad.png", [[0, 256]])
    assert os.listdir(tmp_path) == ["bw.png"]


def test_save_rgb_png(tmp_path):
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    viz.save_rgb_png(tmp_path / "rgb.png", image)
    with Image.open(tmp_path / "rgb.png") as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.array(im), image)
    with pytest.raises(ValueError, match="float64"):
        viz.save_rgb_png(tmp_path / "x.png", image.astype(float))


HISTORY = {
    "loss": [1.0, 0.7, 0.5],
    "mean_iou": [0.2, 0.4, 0.5],
    "val_loss": [1.1, 0.8, 0.6],
    "val_mean_iou": [0.1, 0.3, 0.45],
    "learning_rate": [1e-3, 5e-4, 2.5e-4],
}


def test_plot_history_from_dict(tmp_path):
    path = tmp_path / "plots" / "history.png"
    assert viz.plot_history(HISTORY, path, title="run") == path
    assert_png(path, min_size=(600, 200))  # three panels side by side


def test_plot_history_from_csv_logger_file(tmp_path):
    csv_path = tmp_path / "log.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "learning_rate", "loss", "mean_iou", "val_loss", "val_mean_iou"])
        for epoch in range(3):
            keys = ("learning_rate", "loss", "mean_iou", "val_loss", "val_mean_iou")
            writer.writerow([epoch] + [HISTORY[k][epoch] for k in keys])
    path = viz.plot_history(str(csv_path), tmp_path / "history.png")
    assert_png(path, min_size=(600, 200))


def test_plot_history_errors(tmp_path):
    with pytest.raises(ValueError, match="list"):
        viz.plot_history([1, 2], tmp_path / "h.png")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("epoch,loss\n0,abc\n")
    with pytest.raises(ValueError, match="'loss'.*'abc'"):
        viz.plot_history(bad_csv, tmp_path / "h.png")


def test_plot_samples(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 16, 24, 3))
    truths = rng.integers(0, 3, (2, 16, 24))
    truths[:, 0] = 255
    predictions = rng.integers(0, 3, (2, 16, 24, 1))
    path = viz.plot_samples(
        images, truths, predictions, tmp_path / "samples.png", class_names=["bg", "a", "b"], ignore_index=255
    )
    assert_png(path, min_size=(250, 150))
    with pytest.raises(ValueError, match="2, 2 and 1"):
        viz.plot_samples(images, truths, predictions[:1], tmp_path / "s.png")
    with pytest.raises(ValueError, match=r"image \(16, 24, 3\), mask \(8, 24\)"):
        viz.plot_samples(images, truths[:, :8], predictions, tmp_path / "s.png", ignore_index=255)


def test_plot_confusion_matrix(tmp_path):
    counts = np.array([[1, 0, 0], [1, 2, 0], [0, 1, 0]])
    path = viz.plot_confusion_matrix(counts, tmp_path / "cm.png", class_names=["bg", "cat", "dog"])
    assert_png(path, min_size=(300, 300))
    assert_png(viz.plot_confusion_matrix(counts, tmp_path / "counts.png", normalize=False), min_size=(300, 300))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        viz.plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="nan"):
        viz.plot_confusion_matrix([[1, np.nan], [0, 1]], tmp_path / "x.png")
    with pytest.raises(ValueError, match="2 names.*3x3"):
        viz.plot_confusion_matrix(counts, tmp_path / "x.png", class_names=["a", "b"])


def test_confusion_counts_are_written_short():
    from keras_seg.viz.plots import _count_label

    assert [_count_label(v) for v in (0.0, 950.0, 1234.0, 5.6e6, 2.5e9)] == ["0", "950", "1.2k", "5.6M", "2.5G"]


def _failing_writer(target, *args, **kwargs):
    """Write half a file where the writer was told to, then fail."""
    with open(target, "wb") as f:
        f.write(b"\x89PNG half")
    raise OSError("disk full")


@pytest.mark.parametrize(
    "writer, patch",
    [
        (lambda p: viz.plot_history(HISTORY, p), (matplotlib.figure.Figure, "savefig")),
        (lambda p: viz.save_label_png(p, MASK), (Image.Image, "save")),
    ],
    ids=["plot_history", "save_label_png"],
)
def test_failed_write_leaves_previous_file_and_no_temp_files(tmp_path, monkeypatch, writer, patch):
    path = tmp_path / "out.png"
    writer(path)
    previous = path.read_bytes()
    monkeypatch.setattr(*patch, lambda self, target, *a, **k: _failing_writer(target))
    with pytest.raises(OSError, match="disk full"):
        writer(path)
    assert os.listdir(tmp_path) == ["out.png"]
    assert path.read_bytes() == previous


def test_overlay_legend_widens_a_narrow_image_and_skips_the_untinted_background():
    image = np.full((8, 8, 3), 50, np.uint8)
    mask = np.zeros((8, 8), np.int32)
    mask[2:5, 2:5] = 1
    plain = viz.overlay(image, mask)
    labelled = viz.overlay(image, mask, class_names=["background", "a rather long class name"])
    assert labelled.shape[1] > 8 and labelled.shape[0] > 8
    np.testing.assert_array_equal(labelled[:8, :8], plain)
    assert (labelled[:8, 8:] == 255).all()  # white padding beside the image
    one_entry = viz.overlay(image, mask, class_names=["background", "x"])
    both = viz.overlay(image, mask, class_names=["background", "x"], background=None)
    assert both.shape[0] > one_entry.shape[0]  # tinting the background adds its legend entry (another row)
