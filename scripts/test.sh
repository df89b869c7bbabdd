#!/usr/bin/env bash
# Run the whole test suite once per Keras backend; fail if any backend fails.
# Usage: scripts/test.sh [pytest args...]   (PYTHON defaults to .venv/bin/python)
set -u
PYTHON=${PYTHON:-.venv/bin/python}
BACKENDS=${BACKENDS:-"tensorflow jax torch"}
failed=()
for backend in $BACKENDS; do
  echo "=== KERAS_BACKEND=$backend ==="
  start=$(date +%s)
  KERAS_BACKEND=$backend "$PYTHON" -m pytest -q -p no:cacheprovider "$@"
  code=$?
  echo "=== $backend: exit $code in $(( $(date +%s) - start )) s ==="
  [ $code -eq 0 ] || failed+=("$backend")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED on: ${failed[*]}"
  exit 1
fi
echo "all backends passed: $BACKENDS"
