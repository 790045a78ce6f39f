#!/usr/bin/env bash
# Runs every check, in the order that fails fastest: formatting, clippy (host
# and wasm32), native tests, wasm tests in Node and in headless Chromium, the
# npm package build with its SIMD check, and the demo page in Chromium.
# This is the README's test command, and CI's (.ci/run calls it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

step() { printf '\n\033[1;32m==> %s\033[0m\n' "$*"; }

step "setup (idempotent installs, model fetch)"
bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (host)"
cargo clippy --all-targets --quiet -- -D warnings
step "cargo clippy (wasm32, both modules)"
cargo clippy --target wasm32-unknown-unknown --lib --tests --quiet -- -D warnings
LOCALTUNE_RELAXED_SIMD=1 cargo clippy --target wasm32-unknown-unknown --lib --tests --quiet -- -D warnings

step "native tests"
cargo test --quiet

step "wasm tests: Node (encoder, parity, head) and headless Chromium (browser, head_in_browser, store_in_browser)"
# The browser test loads the real encoder compiled into the test module: it
# needs more than the default 20 s.
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-600}
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/webdriver.json"
cargo test --target wasm32-unknown-unknown --tests

step "wasm tests of the relaxed-SIMD module: its kernel and parity in Node, parity in headless Chromium"
# Node 20 validates relaxed SIMD only behind a V8 flag; later versions
# without one. The probe is the package's own (src/js/wasm-variant.js).
probe="import { supportsRelaxedSimd } from './src/js/wasm-variant.js'; process.exit(supportsRelaxedSimd() ? 0 : 1)"
node_args=""
if ! node --input-type=module -e "$probe"; then
  node_args=--experimental-wasm-relaxed-simd
  if ! node $node_args --input-type=module -e "$probe"; then
    echo "test.sh: this Node ($(node --version)) runs no relaxed SIMD, not even with $node_args" >&2
    exit 1
  fi
fi
LOCALTUNE_RELAXED_SIMD=1 NODE_ARGS=$node_args \
  cargo test --target wasm32-unknown-unknown --lib --test parity --test browser

step "npm package (release build, wasm-opt, SIMD check)"
bash scripts/build-pkg.sh

step "default bundle (localtune-bundle on the intents data)"
bash scripts/build-bundle.sh

step "package, store, classifier and demo page in Node and headless Chromium"
node --test tests/js/
