#!/usr/bin/env bash
# The personalization benchmark in one command: the Classifier replays
# streams of real queries, correcting every mistake (cargo bench), then
# scikit-learn's logistic regression, refitted after every correction,
# replays the same streams (tools/personalization_reference.py) and the
# table compares them. Pass --update-readme to write it into README.md.
# Extra variants of the classifier (the measurements its defaults were
# chosen from): LOCALTUNE_VARIANTS="memory only,at once only" bash bench/personalization.sh
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
bash scripts/setup.sh
source scripts/python-bench-env.sh
cargo bench --quiet --bench personalization -- --variants "${LOCALTUNE_VARIANTS:-}"
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$PYTHON" tools/personalization_reference.py "$@"
