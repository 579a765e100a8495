#!/usr/bin/env bash
# Build the documentation site, strictly.
#   scripts/docs.sh            generate docs/model_zoo.md + docs/assets/accuracy_vs_flops.png,
#                              run `mkdocs build --strict` into site/, then check that the
#                              built model zoo lists every name of list_models().
#   SITE_DIR=/tmp/site scripts/docs.sh    build elsewhere.
#   scripts/docs.sh serve      the same generation, then `mkdocs serve` (live preview).
# Needs the `docs` extra (mkdocs, mkdocs-material, mkdocstrings[python]) and one Keras backend
# (mkdocstrings imports the package; JAX by default, the quickest to import).
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_BACKEND=${KERAS_BACKEND:-jax} TF_CPP_MIN_LOG_LEVEL=3 NO_MKDOCS_2_WARNING=1
export PYTHONWARNINGS=ignore
site=${SITE_DIR:-site}
python scripts/gen_docs.py
if [ "${1:-}" = "serve" ]; then
  exec python -m mkdocs serve
fi
python -m mkdocs build --strict --site-dir "$site"
python scripts/gen_docs.py --check-site "$site"
