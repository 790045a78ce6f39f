#!/usr/bin/env bash
# The embedding pool's speedup in one command: a WorkerClassifier's import
# of 2,000 real queries embedded on its pool of 2 Web Workers against its
# own thread, in headless Chromium and Firefox. Pass --update-readme to
# write the table into README.md.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
bash scripts/setup.sh
bash scripts/build-pkg.sh
bash scripts/build-bundle.sh
node bench/embedding-pool.mjs "$@"
