#!/usr/bin/env bash
# The GPU benchmark as run on a lent GPU machine that has PyTorch and JAX but no Keras or
# TensorFlow: Keras and its two missing needs travel as wheels in .whl/ (see RESULTS.md).
#   bash benchmarks/gpu_run.sh OUT_DIR
set -u
out=${1:-gpu_out}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import keras, jax, torch; print('keras', keras.__version__, 'jax', jax.__version__, 'torch', torch.__version__, jax.devices())" 2>&1 | tee -a "$out/gpu.txt"
python3 -m keras_seg.cli bench --preset gpu --out "$out/gpu.json" --timeout "${TIMEOUT:-240}" 2>&1 | tee "$out/log.txt"
