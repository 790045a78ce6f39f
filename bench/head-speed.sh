#!/usr/bin/env bash
# The head-speed benchmark in one command: one default update of 50 cached
# vectors in wasm (Node and headless Chromium) next to TensorFlow.js doing the
# same training. Pass --update-readme to write the table into
# docs/benchmarks.md.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
bash scripts/setup.sh
bash scripts/build-pkg.sh
node bench/head-speed.mjs "$@"
