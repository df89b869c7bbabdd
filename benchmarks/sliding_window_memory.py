"""Peak memory of predicting one large image with sliding windows (and, for scale, without).

    python benchmarks/sliding_window_memory.py                 # 4096 x 4096, windows of 512, batch 4
    python benchmarks/sliding_window_memory.py --size 2048 --whole

Each measurement runs in a fresh child process and reports its peak resident memory
(``ru_maxrss``) and the part added by prediction (peak minus the memory after loading the
model and making the image), with the shipped shapes U-Net (1.9 M parameters, 4 classes).
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "saved_models", "shapes_unet.keras")


def child(size, window, batch_size):
    import keras
    import numpy as np

    from keras_seg.bench.worker import host_peak_mb as peak_mb  # ru_maxrss in MB

    import keras_seg

    model = keras.saving.load_model(MODEL)
    image = np.random.default_rng(0).uniform(0, 255, (size, size, 3)).astype("float32")
    model.predict_on_batch(image[None, :64, :64])  # build the predict step before measuring
    before = peak_mb()
    start = time.time()
    config = keras_seg.inference.sliding_window(window, overlap=0.5, batch_size=batch_size) if window else None
    mask = keras_seg.inference.predict_mask(model, image, sliding_window=config)
    seconds = time.time() - start
    print(json.dumps({"size": size, "window": window, "batch_size": batch_size, "backend": keras.backend.backend(),
                      "seconds": round(seconds, 1), "peak_mb": round(peak_mb()), "before_mb": round(before),
                      "added_mb": round(peak_mb() - before), "mask": list(mask.shape)}))  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--whole", action="store_true", help="also predict the whole image at once")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.size, args.window, args.batch_size)
    runs = [args.window] + ([0] if args.whole else [])
    for window in runs:
        cmd = [sys.executable, __file__, "--child", "--size", str(args.size), "--window", str(window),
               "--batch-size", str(args.batch_size)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        print(lines[-1] if lines else out.stderr[-2000:])


if __name__ == "__main__":
    main()
