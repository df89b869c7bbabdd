#!/usr/bin/env bash
# A short GPU re-run of the classic U-Net rows only (native PyTorch and JAX, float32 and mixed), after a change.
#   bash benchmarks/gpu_rerun.sh OUT_DIR
set -u
out=${1:-gpu_out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
python3 -m keras_seg.cli bench --preset gpu --models unet --impls pytorch-native,jax --out "$out/gpu_unet.json" \
  --timeout 120 2>&1 | tee "$out/log.txt"
