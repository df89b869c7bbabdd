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
  KERAS_BACKEND=$backend "$PYTHON" -m pytest -q -p no:cacheprovider -n "$WORKERS" "$@"
  code=$?
  echo "=== $backend: exit $code in $(( $(date +%s) - start )) s ==="
  [ $code -eq 0 ] || failed+=("$backend")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED on: ${failed[*]}"
  exit 1
fi
echo "all backends passed: $BACKENDS"
