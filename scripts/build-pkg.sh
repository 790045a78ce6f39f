#!/usr/bin/env bash
# Builds the npm package pkg/ for `--target web`: the release wasm module,
# wasm-bindgen's JS glue and TypeScript types, wasm-opt (binaryen from npm),
# and pkg/package.json. Then checks that the shipped module really contains
# simd128 instructions. What wasm-pack would do, without its downloads.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

log() { printf '\033[1;34m[build-pkg]\033[0m %s\n' "$*"; }

log "cargo build --release --target wasm32-unknown-unknown --lib"
cargo build --release --target wasm32-unknown-unknown --lib --quiet
raw="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/localtune.wasm"
# tract's static constructors must run once (src/encoder/mod.rs,
# run_static_constructors_once), not at the top of every export: the linker
# names such wrappers `<export>.command_export` (in the name section, which
# the raw module still has).
if grep -qa 'command_export' "$raw"; then
  echo "build-pkg: the exports are wrapped in static-constructor calls (see run_static_constructors_once)" >&2
  exit 1
fi

rm -rf pkg
# --remove-name-section: function names are for debugging only (2.4 MiB).
wasm-bindgen --target web --out-dir pkg --remove-name-section "$raw"

# wasm-opt from npm's binaryen (Debian's version 108 breaks the externref
# table). The module's target_features section tells it which features,
# simd128 among them, it may use. It takes minutes on 2 cores, so its output
# is cached by the sha256 of its input and options.
WASM_OPT_FLAGS=(-O3)
before=$(stat -c %s pkg/localtune_bg.wasm)
key=$( (sha256sum pkg/localtune_bg.wasm; echo "${WASM_OPT_FLAGS[*]}"; node_modules/binaryen/bin/wasm-opt --version) | sha256sum | cut -c1-16)
cache="$CARGO_TARGET_DIR/wasm-opt-cache/$key.wasm"
if [ "${LOCALTUNE_WASM_OPT:-1}" = 0 ]; then
  # For quick local iterations on the JS side only; CI and the benchmarks
  # never set it.
  log "wasm-opt skipped (LOCALTUNE_WASM_OPT=0)"
else
  if [ ! -f "$cache" ]; then
    log "wasm-opt ${WASM_OPT_FLAGS[*]} (a few minutes)"
    mkdir -p "$(dirname "$cache")"
    node_modules/binaryen/bin/wasm-opt "${WASM_OPT_FLAGS[@]}" pkg/localtune_bg.wasm -o "$cache.part"
    mv "$cache.part" "$cache"
  else
    log "wasm-opt output cached ($key)"
  fi
  cp "$cache" pkg/localtune_bg.wasm
fi
log "wasm-opt: $before → $(stat -c %s pkg/localtune_bg.wasm) bytes"

version=$(cargo metadata --no-deps --format-version 1 | node -e \
  'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).packages.find(p=>p.name==="localtune").version))')
cat > pkg/package.json <<JSON
{
  "name": "localtune",
  "version": "$version",
  "description": "Private, on-device personalization of language-model text classifiers in WebAssembly",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "localtune.js",
  "module": "localtune.js",
  "types": "localtune.d.ts",
  "exports": {
    ".": {
      "types": "./localtune.d.ts",
      "default": "./localtune.js"
    },
    "./client": {
      "types": "./client.d.ts",
      "default": "./client.js"
    },
    "./worker": "./worker.js",
    "./localtune_bg.wasm": "./localtune_bg.wasm"
  },
  "files": ["localtune_bg.wasm", "localtune.js", "localtune.d.ts", "localtune_bg.wasm.d.ts", "client.js", "client.d.ts", "worker.js"],
  "sideEffects": ["./worker.js"]
}
JSON
# The Web Worker entry and its main-thread client (localtune/worker,
# localtune/client): plain ES modules next to the glue they import.
cp src/js/worker.js src/js/client.js src/js/client.d.ts pkg/
cp README.md pkg/README.md 2>/dev/null || true

bash scripts/check-simd.sh pkg/localtune_bg.wasm
log "pkg/ ready: $(du -h pkg/localtune_bg.wasm | cut -f1) wasm"
