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
step "cargo clippy (wasm32)"
cargo clippy --target wasm32-unknown-unknown --lib --tests --quiet -- -D warnings

step "native tests"
cargo test --quiet

step "wasm tests: Node (encoder, parity, head) and headless Chromium (browser, head_in_browser, store_in_browser)"
# The browser test loads the real encoder compiled into the test module: it
# needs more than the default 20 s.
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-600}
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/webdriver.json"
cargo test --target wasm32-unknown-unknown --tests

step "npm package (release build, wasm-opt, SIMD check)"
bash scripts/build-pkg.sh

step "default bundle (localtune-bundle on the intents data)"
bash scripts/build-bundle.sh

step "package, store, classifier and demo page in Node and headless Chromium"
node --test tests/js/
