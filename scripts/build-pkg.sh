#!/usr/bin/env bash
# Builds the npm package pkg/ for `--target web`: the release wasm modules
# (for pages: simd128, and simd128 + relaxed SIMD; and simd128 with the ONNX
# importer), wasm-bindgen's JS glue and TypeScript types, wasm-opt (binaryen
# from npm), and pkg/package.json. Then checks that the shipped modules
# really contain simd128 (and relaxed SIMD) instructions. What wasm-pack
# would do, without its downloads.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# The whole package is cached by its inputs: a run with nothing changed
# takes seconds instead of three release builds of our crate (~2 min each
# with LTO: the relaxed-SIMD variable and the features change between them)
# and wasm-opt.
key=$( (content_key src build.rs Cargo.toml Cargo.lock .cargo package-lock.json \
          scripts/build-pkg.sh scripts/patch-glue.mjs scripts/check-simd.sh
        rustc -V; wasm-bindgen --version; echo "wasm-opt=${LOCALTUNE_WASM_OPT:-1}") |
      sha256sum | cut -c1-16)
cache="$CARGO_TARGET_DIR/pkg-cache/$key"
if [ -f "$cache/package.json" ]; then
  rm -rf pkg
  cp -r "$cache" pkg
  cp src/js/README.md pkg/README.md
  log "pkg/ is up to date (inputs $key, built and SIMD-checked before)"
  exit 0
fi


# Three modules from the same code. Two for pages (src/js/wasm-variant.js
# picks one at load), without the ONNX importer (`--no-default-features`: a
# page loads compiled encoders; tract's ONNX importer and analysis are a
# fifth of the module): simd128 for every engine, and
# LOCALTUNE_RELAXED_SIMD=1's fused multiply-add kernel (build.rs) for engines
# that validate relaxed SIMD. And simd128 with the importer, for Node (the
# package's `node` export condition, the bundle tool) and for pages that
# build encoders from ONNX (`localtune/onnx`). Every dependency is reused
# between the builds with the same features.
# The release-wasm profile (Cargo.toml): release, with what a page never runs
# optimised for size.
raw="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release-wasm/localtune.wasm"
staging="$CARGO_TARGET_DIR/pkg-staging"
rm -rf pkg "$staging"
mkdir -p "$staging"
for variant in simd128 relaxed onnx; do
  relaxed=0 features=(--no-default-features) name=localtune
  [ "$variant" = relaxed ] && relaxed=1
  [ "$variant" = onnx ] && features=() name=localtune_onnx
  log "LOCALTUNE_RELAXED_SIMD=$relaxed cargo build --profile release-wasm --target wasm32-unknown-unknown --lib ${features[*]}"
  LOCALTUNE_RELAXED_SIMD=$relaxed cargo build --profile release-wasm --target wasm32-unknown-unknown --lib --quiet "${features[@]}"
  # tract's static constructors must run once (src/encoder/mod.rs,
  # run_static_constructors_once), not at the top of every export: the linker
  # names such wrappers `<export>.command_export` (in the name section, which
  # the raw module still has).
  if grep -qa 'command_export' "$raw"; then
    echo "build-pkg: the exports are wrapped in static-constructor calls (see run_static_constructors_once)" >&2
    exit 1
  fi
  # --remove-name-section: function names are for debugging only (2.4 MiB).
  wasm-bindgen --target web --out-dir "$staging/$variant" --out-name "$name" --remove-name-section "$raw"
done

# One JS glue serves both page modules: that holds only while wasm-bindgen
# writes the same glue for both (same exports, same imports). The ONNX
# module has its own glue (its imports differ), with the same API: the same
# TypeScript declarations.
for file in localtune.js localtune.d.ts localtune_bg.wasm.d.ts; do
  if ! cmp -s "$staging/simd128/$file" "$staging/relaxed/$file"; then
    echo "build-pkg: wasm-bindgen wrote a different $file for the relaxed-simd module" >&2
    exit 1
  fi
done
# (Up to the hashes in the names of wasm-bindgen's internal closure
# exports, which `InitOutput` lists.)
api() { sed -E 's/__invoke__h[0-9a-f]{16}/__invoke__h/g' "$1"; }
if ! cmp -s <(api "$staging/simd128/localtune.d.ts") <(api "$staging/onnx/localtune_onnx.d.ts"); then
  echo "build-pkg: the module with the ONNX importer has another API than the page modules" >&2
  diff <(api "$staging/simd128/localtune.d.ts") <(api "$staging/onnx/localtune_onnx.d.ts") >&2 || true
  exit 1
fi
mkdir -p pkg
cp "$staging/simd128/localtune.d.ts" "$staging/simd128/localtune_bg.wasm.d.ts" pkg/
cp "$staging/simd128/localtune_bg.wasm" pkg/localtune_bg.wasm
cp "$staging/relaxed/localtune_bg.wasm" pkg/localtune_relaxed_bg.wasm
cp "$staging/onnx/localtune_onnx_bg.wasm" pkg/localtune_onnx_bg.wasm
# The glue's default module becomes the one this engine can run best (the
# ONNX glue's: its own module).
node scripts/patch-glue.mjs "$staging/simd128/localtune.js" pkg/localtune.js
node scripts/patch-glue.mjs "$staging/onnx/localtune_onnx.js" pkg/localtune_onnx.js onnx
cp src/js/wasm-variant.js src/js/trap-guard.js pkg/
cat "$staging/onnx/localtune_onnx.d.ts" > pkg/localtune_onnx.d.ts
cat src/js/wasm-variant.d.ts src/js/trap-guard.d.ts | tee -a pkg/localtune.d.ts >> pkg/localtune_onnx.d.ts

# wasm-opt from npm's binaryen (Debian's version 108 breaks the externref
# table). The module's target_features section tells it which features,
# simd128 and relaxed-simd among them, it may use. It takes minutes on 2
# cores, so its output is cached by the sha256 of its input and options.
# -O3, without inlining functions for having one caller or being
# "flexibly" small: that inlining is what grows the module after brotli.
# Measured on the page module (2026-12-05): plain -O3 gives 2.25 MiB brotli
# (2.17 without wasm-opt; -O1 2.17, -O2 2.24, -Os 2.25), these flags 2.17 —
# onnxruntime-web's size or less — with sentences as fast (±1%) and a
# quicker start. (A WebKit hang the demo's test showed with some builds was
# the store's, fixed since: a worker ended with a transaction in flight,
# src/js/client.js and src/store/indexed_db.rs.)
WASM_OPT_FLAGS=(-O3 --flexible-inline-max-function-size 0 --one-caller-inline-max-function-size 0)
optimise() {
  local module=$1 before key cache
  before=$(stat -c %s "$module")
  key=$( (sha256sum < "$module"; echo "${WASM_OPT_FLAGS[*]}"; node_modules/binaryen/bin/wasm-opt --version) | sha256sum | cut -c1-16)
  cache="$CARGO_TARGET_DIR/wasm-opt-cache/$key.wasm"
  if [ ! -f "$cache" ]; then
    log "wasm-opt ${WASM_OPT_FLAGS[*]} $module (a few minutes)"
    mkdir -p "$(dirname "$cache")"
    node_modules/binaryen/bin/wasm-opt "${WASM_OPT_FLAGS[@]}" "$module" -o "$cache.part"
    mv "$cache.part" "$cache"
  else
    log "wasm-opt output cached for $module ($key)"
  fi
  cp "$cache" "$module"
  log "wasm-opt $module: $before → $(stat -c %s "$module") bytes"
}
if [ "${LOCALTUNE_WASM_OPT:-1}" = 0 ]; then
  # For quick local iterations on the JS side only; CI and the benchmarks
  # never set it.
  log "wasm-opt skipped (LOCALTUNE_WASM_OPT=0)"
else
  # Three modules on two cores: the first two side by side, then the third.
  optimise pkg/localtune_bg.wasm &
  simd128_opt=$!
  optimise pkg/localtune_relaxed_bg.wasm
  wait "$simd128_opt"
  optimise pkg/localtune_onnx_bg.wasm
fi

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
      "node": "./localtune_onnx.js",
      "default": "./localtune.js"
    },
    "./onnx": {
      "types": "./localtune_onnx.d.ts",
      "default": "./localtune_onnx.js"
    },
    "./client": {
      "types": "./client.d.ts",
      "default": "./client.js"
    },
    "./worker": "./worker.js",
    "./embedding-pool": {
      "types": "./embedding-pool.d.ts",
      "default": "./embedding-pool.js"
    },
    "./bundle": {
      "types": "./bundle.d.ts",
      "default": "./bundle.js"
    },
    "./localtune_bg.wasm": "./localtune_bg.wasm",
    "./localtune_relaxed_bg.wasm": "./localtune_relaxed_bg.wasm",
    "./localtune_onnx_bg.wasm": "./localtune_onnx_bg.wasm"
  },
  "files": ["localtune_bg.wasm", "localtune_relaxed_bg.wasm", "localtune_onnx_bg.wasm", "wasm-variant.js", "trap-guard.js", "localtune.js", "localtune.d.ts", "localtune_bg.wasm.d.ts", "localtune_onnx.js", "localtune_onnx.d.ts", "client.js", "client.d.ts", "worker.js", "embedding-pool.js", "embedding-pool.d.ts", "embedding-worker.js", "bundle.js", "bundle-worker.js", "bundle.d.ts", "cli.js"],
  "bin": { "localtune": "./cli.js" },
  "sideEffects": ["./worker.js", "./embedding-worker.js", "./localtune.js", "./localtune_onnx.js", "./trap-guard.js"]
}
JSON
# The Web Worker entry and its main-thread client (localtune/worker,
# localtune/client): plain ES modules next to the glue they import.
cp src/js/worker.js src/js/client.js src/js/client.d.ts pkg/
# The embedding pool (localtune/embedding-pool) and its workers.
cp src/js/embedding-pool.js src/js/embedding-pool.d.ts src/js/embedding-worker.js pkg/
# The bundle tool for Node (localtune/bundle, and `npx localtune bundle`).
cp src/js/bundle.js src/js/bundle-worker.js src/js/bundle.d.ts src/js/cli.js pkg/
chmod +x pkg/cli.js
# The package's README is for package users (src/js/README.md); the
# repository's is for contributors.
cp src/js/README.md pkg/README.md

bash scripts/check-simd.sh pkg/localtune_bg.wasm
bash scripts/check-simd.sh pkg/localtune_relaxed_bg.wasm relaxed
bash scripts/check-simd.sh pkg/localtune_onnx_bg.wasm
rm -rf "$cache" "$cache.part"
mkdir -p "$(dirname "$cache")"
cp -r pkg "$cache.part"
mv "$cache.part" "$cache"
# Keep the three newest packages (about 70 MB each).
ls -1dt "$CARGO_TARGET_DIR"/pkg-cache/*/ | tail -n +4 | xargs -r rm -rf
log "pkg/ ready: wasm $(du -h pkg/localtune_bg.wasm | cut -f1) + $(du -h pkg/localtune_relaxed_bg.wasm | cut -f1) for pages, $(du -h pkg/localtune_onnx_bg.wasm | cut -f1) with the ONNX importer (cached as $key)"
