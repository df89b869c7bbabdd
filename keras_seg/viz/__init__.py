"""Pictures of masks and training runs for a person to look at: the PASCAL VOC palette,
colourised masks, image overlays (optionally with a legend), palette PNGs that store class ids
exactly, and matplotlib figures of training curves, sample predictions and confusion matrices.
Everything runs on the host with NumPy; Pillow and matplotlib are imported only when a function
needs them, and every file is written atomically (temporary file, then rename).
"""

from keras_seg.viz.palette import colorize
from keras_seg.viz.palette import overlay
from keras_seg.viz.palette import save_label_png
from keras_seg.viz.palette import save_rgb_png
from keras_seg.viz.palette import voc_palette
from keras_seg.viz.plots import plot_confusion_matrix
from keras_seg.viz.plots import plot_history
from keras_seg.viz.plots import plot_samples

__all__ = [
    "colorize",
    "overlay",
    "plot_confusion_matrix",
    "plot_history",
    "plot_samples",
    "save_label_png",
    "save_rgb_png",
    "voc_palette",
]
