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
  # --durations: the 30 slowest tests of each pass go into the log (where CI time goes, run by run)
  XLA_FLAGS=$xla KERAS_BACKEND=$backend "$PYTHON" -m pytest -q -p no:cacheprovider -n "$WORKERS" --durations=30 "$@"
  code=$?
  echo "=== $backend: exit $code in $(( $(date +%s) - start )) s ==="
  [ $code -eq 0 ] || failed+=("$backend")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED on: ${failed[*]}"
  exit 1
fi
echo "all backends passed: $BACKENDS"
