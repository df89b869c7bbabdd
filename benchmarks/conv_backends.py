"""Where a training step's convolutions go on each backend: ResNet-34 U-Net layer shapes, forward and backward.

    python benchmarks/conv_backends.py                          # 3 rounds, batch 4 at 128 x 128
    python benchmarks/conv_backends.py --rounds 5 --out benchmarks/results/conv_backends_avx2.json

Issue 19 asks what the JAX training step spends its time on, on AVX2 CPUs (unet-resnet34: JAX 2.8x SMP native,
TensorFlow 1.2-1.4x). This times, for the convolution shapes of SMP's ``Unet("resnet34")`` at 128 x 128, batch 4,
one Keras ``Conv2D`` (channels-last, as keras_seg builds them) and a ``BatchNormalization`` + ReLU, each as
the forward pass alone and as forward + gradient of a sum (what a training step runs), compiled the way
each backend runs a training step:

- ``tensorflow``: ``tf.function`` (TensorFlow's own CPU kernels, oneDNN), Keras' default on the CPU;
- ``tensorflow-xla``: ``tf.function(jit_compile=True)`` (XLA's CPU backend, as ``jit_compile=True`` gives);
- ``jax``: ``jax.jit`` (XLA's CPU backend: what every JAX step runs);
- ``torch``: PyTorch eager on NCHW tensors (SMP's layout; the native reference).

Each backend runs in its own process (TensorFlow and JAX would share threads in one); a round runs every
backend once, in turn; the ratio to ``torch`` is taken within a round, and the median over rounds is
reported with its min-max. The CPU model, its vector flags and the thread counts go into the results.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, SIZE = 4, 128
# (name, input spatial size, input channels, output channels, kernel, stride): SMP Unet("resnet34") at 128 x 128
LAYERS = [
    ("stem 7x7/2 3->64", SIZE, 3, 64, 7, 2),
    ("layer1 3x3 64->64 @32", SIZE // 4, 64, 64, 3, 1),
    ("layer2 3x3 128->128 @16", SIZE // 8, 128, 128, 3, 1),
    ("layer3 3x3 256->256 @8", SIZE // 16, 256, 256, 3, 1),
    ("layer4 3x3 512->512 @4", SIZE // 32, 512, 512, 3, 1),
    ("decoder 3x3 768->256 @8", SIZE // 16, 768, 256, 3, 1),
    ("decoder 3x3 128->64 @32", SIZE // 4, 128, 64, 3, 1),
    ("decoder 3x3 96->32 @64", SIZE // 2, 96, 32, 3, 1),
    ("decoder 3x3 32->16 @128", SIZE, 32, 16, 3, 1),
    ("bn+relu 64 @64", SIZE // 2, 64, 64, 0, 1),
]
VARIANTS = ("torch", "tensorflow", "tensorflow-xla", "jax")


def _torch_layer(spec):
    import torch

    _, size, cin, cout, kernel, stride = spec
    x = torch.randn(BATCH, cin, size, size, requires_grad=True)
    if kernel:
        layer = torch.nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)
    else:
        layer = torch.nn.Sequential(torch.nn.BatchNorm2d(cin), torch.nn.ReLU())
    layer.train()

    def forward():
        with torch.no_grad():
            layer(x)

    def backward():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).sum().backward()

    return forward, backward


def _keras_layer(spec, variant):
    import keras
    import numpy as np

    _, size, cin, cout, kernel, stride = spec
    layer = (keras.layers.Conv2D(cout, kernel, stride, padding="same", use_bias=False) if kernel
             else keras.Sequential([keras.layers.BatchNormalization(), keras.layers.ReLU()]))  # fmt: skip
    x = np.random.default_rng(0).standard_normal((BATCH, size, size, cin)).astype("float32")
    layer.build(x.shape)
    if variant == "jax":
        import jax

        params = [v.value for v in layer.trainable_variables]
        others = [v.value for v in layer.non_trainable_variables]
        mode = {} if kernel else {"training": True}  # Conv2D.call takes no training argument

        def loss(params, x):
            out, _ = layer.stateless_call(params, others, x, **mode)
            return out.sum()

        fwd = jax.jit(lambda params, x: layer.stateless_call(params, others, x, **mode)[0])
        grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
        x = jax.numpy.asarray(x)
        return (lambda: jax.block_until_ready(fwd(params, x)), lambda: jax.block_until_ready(grad(params, x)))
    import tensorflow as tf

    jit = variant == "tensorflow-xla"
    x = tf.constant(x)

    @tf.function(jit_compile=jit)
    def fwd(x):
        return layer(x, training=True)

    @tf.function(jit_compile=jit)
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(layer(x, training=True))
        return tape.gradient(total, [x] + layer.trainable_variables)

    return (lambda: fwd(x).numpy(), lambda: [g.numpy() for g in grad(x)])


def child(variant, runs):
    """One backend, every layer: ``{layer: {"forward_ms", "train_ms"}}`` on stdout as JSON."""
    if variant == "torch":
        import torch  # noqa: F401  (before anything that may pull TensorFlow: triton after it segfaults)
    sys.path.insert(0, ROOT)
    from keras_seg.bench.worker import threads
    from keras_seg.export.verify import median_ms  # two warm-up calls, then the median of ``runs`` timed ones

    out = {}
    for spec in LAYERS:
        forward, backward = _torch_layer(spec) if variant == "torch" else _keras_layer(spec, variant)
        out[spec[0]] = {"forward_ms": median_ms(forward, runs), "train_ms": median_ms(backward, runs)}
    module = {"tensorflow-xla": "tensorflow"}.get(variant, variant)
    out["_versions"] = {module: sys.modules[module].__version__}
    out["_threads"] = threads(module)
    print("RESULT " + json.dumps(out))


def run_child(variant, runs):
    backend = {"torch": "torch", "jax": "jax"}.get(variant, "tensorflow")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))  # fmt: skip
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", variant, "--runs", str(runs)],
                          env=env, capture_output=True, text=True, timeout=1800)  # fmt: skip
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{variant} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")


def table(results):
    names = [spec[0] for spec in LAYERS]
    lines = ["| layer (batch 4) | " + " | ".join(f"{v} fwd / train ms" for v in VARIANTS) + " | "
             + " | ".join(f"{v} train × torch" for v in VARIANTS[1:]) + " |"]  # fmt: skip
    lines.append("|" + "---|" * (1 + 2 * len(VARIANTS) - 1))
    for name in names:
        cells = []
        for v in VARIANTS:
            fwd = statistics.median(r[v][name]["forward_ms"] for r in results["rounds"])
            train = statistics.median(r[v][name]["train_ms"] for r in results["rounds"])
            cells.append(f"{fwd:.2f} / {train:.2f}")
        ratios = []
        for v in VARIANTS[1:]:
            per_round = [r[v][name]["train_ms"] / r["torch"][name]["train_ms"] for r in results["rounds"]]
            ratios.append(f"{statistics.median(per_round):.2f} ({min(per_round):.2f}-{max(per_round):.2f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    sums = []
    for v in VARIANTS[1:]:
        per_round = [sum(r[v][n]["train_ms"] for n in names) / sum(r["torch"][n]["train_ms"] for n in names)
                     for r in results["rounds"]]  # fmt: skip
        sums.append(f"{statistics.median(per_round):.2f} ({min(per_round):.2f}-{max(per_round):.2f})")
    lines.append("| all layers above, train | " + " | ".join("" for _ in VARIANTS) + " | " + " | ".join(sums) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10, help="timed calls per layer and pass (median)")
    parser.add_argument("--out", help="write the JSON here and the Markdown table beside it (.md)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.runs)
    sys.path.insert(0, ROOT)
    from keras_seg.bench.worker import cpu_info

    results = {"cpu": cpu_info(), "batch": BATCH, "size": SIZE, "runs": args.runs, "rounds": [],
               "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}  # fmt: skip
    for number in range(args.rounds):
        this = {}
        for variant in VARIANTS:
            this[variant] = run_child(variant, args.runs)
            print(f"round {number}: {variant} done", flush=True)
        results["rounds"].append(this)
    cpu = results["cpu"]
    header = (f"CPU: {cpu['model']}, {cpu['cores']} cores, flags {', '.join(cpu['flags']) or 'none'}; threads "
              + ", ".join(f"{v} {results['rounds'][0][v]['_threads']}" for v in VARIANTS)
              + f"; {args.rounds} rounds, median of {args.runs} calls each; started {results['started']}")  # fmt: skip
    text = header + "\n\n" + table(results) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
        with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
