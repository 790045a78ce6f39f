#!/usr/bin/env bash
# Batch throughput in one command: builds what it needs, then runs
# bench/batch.mjs (Node and headless Chromium, each against
# onnxruntime-web). Pass --update-readme to write the table into
# docs/benchmarks.md.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
bash scripts/setup.sh
bash scripts/build-pkg.sh
mkdir -p bench/results
node scripts/compile-encoder.mjs "$MODEL_ONNX" bench/results/encoder.compiled.tar
node bench/batch.mjs "$@"
