#!/usr/bin/env bash
# The full-size checks (marked slow): large resolutions and every variant at its own size.
set -u
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS=ignore
status=0
for backend in ${BACKENDS:-tensorflow jax torch}; do
  KERAS_BACKEND=$backend python -m pytest -m slow -q -p no:cacheprovider "$@" || status=1
done
exit $status
