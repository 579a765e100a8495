#!/usr/bin/env bash
# The whole test suite, once per backend (Keras picks its backend per process).
# usage: scripts/test.sh [pytest args...]      e.g. scripts/test.sh -x tests/test_parity.py
# BACKENDS="jax" scripts/test.sh   runs one backend.
set -u
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS=ignore
status=0
for backend in ${BACKENDS:-tensorflow jax torch}; do
  echo "=== KERAS_BACKEND=$backend"
  start=$(date +%s)
  KERAS_BACKEND=$backend python -m pytest -m "not slow" -q -p no:cacheprovider -n 2 --dist loadfile "$@"
  rc=$?
  echo "=== KERAS_BACKEND=$backend exit $rc in $(( $(date +%s) - start ))s"
  [ $rc -ne 0 ] && status=1
done
exit $status
