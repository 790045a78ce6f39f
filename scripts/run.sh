#!/usr/bin/env bash
# The README's main command: installs what is missing, fetches the default
# model, builds the npm package and the default bundle, and serves the demo
# page on 127.0.0.1
# (PORT, default 8080).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bash scripts/setup.sh
bash scripts/build-pkg.sh
bash scripts/build-bundle.sh
exec node scripts/serve.mjs "${PORT:-8080}"
