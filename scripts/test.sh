#!/usr/bin/env bash
# Run the whole test suite once per Keras backend; fail if any backend fails.
# Usage: scripts/test.sh [pytest args...]   (PYTHON defaults to .venv/bin/python)
# Tests run in WORKERS pytest-xdist processes (default 2: most of a test's time is tracing and
# compiling, single-threaded, so two processes use a 2-core machine's second core).
set -u
PYTHON=${PYTHON:-.venv/bin/python}
BACKENDS=${BACKENDS:-"tensorflow jax torch"}
WORKERS=${WORKERS:-2}
failed=()
for backend in $BACKENDS; do
  echo "=== KERAS_BACKEND=$backend ==="
  start=$(date +%s)
  # JAX: XLA's CPU compiler at optimisation level 0 compiles the suite's thousands of tiny programs
  # about a quarter faster (tests/test_training.py: 89 s -> 65 s); nothing here is timed. Set
  # XLA_FLAGS yourself to override.
  xla=${XLA_FLAGS-}
  [ "$backend" = jax ] && [ -z "$xla" ] && xla=--xla_backend_optimization_level=0
  # JAX: a compilation cache for this pass only (both workers share it). Many tests compile the same program
  # (a model, its clone and its reloaded copy; the same tiny U-Net in different files): XLA compiles it once.
  # The cache key leaves out layer names and source lines, so equal graphs hit. Set JAX_COMPILATION_CACHE_DIR
  # yourself to keep a cache between runs.
  jax_cache=()
  if [ "$backend" = jax ] && [ -z "${JAX_COMPILATION_CACHE_DIR-}" ]; then
    cache=$(mktemp -d "${TMPDIR:-/tmp}/keras_seg_jax_cache.XXXXXX")
    jax_cache=(JAX_COMPILATION_CACHE_DIR="$cache" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0)
  fi
  # --durations: the 30 slowest tests of each pass go into the log (where CI time goes, run by run)
  env "${jax_cache[@]}" XLA_FLAGS="$xla" KERAS_BACKEND="$backend" "$PYTHON" -m pytest -q -p no:cacheprovider \
    -n "$WORKERS" --durations=30 "$@"
  code=$?
  [ ${#jax_cache[@]} -eq 0 ] || rm -rf "$cache"
  echo "=== $backend: exit $code in $(( $(date +%s) - start )) s ==="
  [ $code -eq 0 ] || failed+=("$backend")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED on: ${failed[*]}"
  exit 1
fi
echo "all backends passed: $BACKENDS"
