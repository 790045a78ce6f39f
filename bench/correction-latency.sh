#!/usr/bin/env bash
# The correction-latency benchmark in one command: in headless Chromium,
# Firefox and WebKit through the Web Worker client, the time from a
# correction to a prediction that shows it, with 50 and 5,000 stored
# corrections, the working head's relearning and a predict meanwhile, and
# predict's latency with 5,000 stored against an empty store.
# --engines chromium,… picks engines; --update-readme writes the tables
# into README.md.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
bash scripts/setup.sh
bash scripts/build-pkg.sh
bash scripts/build-bundle.sh
node bench/correction-latency.mjs "$@"
