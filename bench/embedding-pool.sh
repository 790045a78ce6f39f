#!/usr/bin/env bash
# The embedding pool's speedup in one command: a WorkerClassifier's import
# of 2,000 real queries embedded with its pool (a Web Worker beside its own
# thread on 2 cores) against its own thread alone, in headless Chromium and
# Firefox. --engines chromium,… picks engines; --query '?rounds=8' (or
# '?workers=2') goes to the page; --update-readme writes the table into
# README.md.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
bash scripts/setup.sh
bash scripts/build-pkg.sh
bash scripts/build-bundle.sh
node bench/embedding-pool.mjs "$@"
