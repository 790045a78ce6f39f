#!/usr/bin/env bash
# The head-quality benchmark in one command: our update with default settings
# next to scikit-learn's LogisticRegression (C tuned by cross-validation on
# the training rows) on the same real-encoder features and the same rows.
# Pass --update-readme to write the table into docs/benchmarks.md.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
bash scripts/setup.sh
source scripts/python-bench-env.sh
# Embeds bench/data/*.csv with the real encoder (cached), trains, writes
# bench/results/head-quality/{features.f32,runs.json}.
cargo bench --quiet --bench head_quality
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$PYTHON" tools/head_quality_reference.py "$@"
