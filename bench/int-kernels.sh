#!/usr/bin/env bash
# Issue 19, item 2, decided by measurement: integer weight products for the
# encoder. Two parts, one command:
# 1. numerics — the encoder's ONNX file with every weight product's
#    activations rounded per row to 7, 8, 10 and 12 bits
#    (tools/int8_activations_model.py), each compared with the shipped
#    encoder's vectors (cosine) and on the head-quality benchmark's runs;
# 2. speed — one layer's six weight products as the encoder's f32
#    micro-kernel computes them and with 12-bit activations × int8 weights
#    (`i32x4.dot_i16x8_s`), for the simd128 and the relaxed build, in Node
#    and in Chromium, Firefox and WebKit (bench/int-kernels/,
#    bench/int-kernels.mjs).
# Pass --kernels-only to skip the first part (~1.5 min a width); then
# --engines chromium,… picks the browsers of the second (default: all three).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
bash scripts/setup.sh

if [ "${1:-}" = "--kernels-only" ]; then
  shift
else
  source scripts/python-bench-env.sh
  mkdir -p bench/results/int-activations
  for bits in 7 8 10 12; do
    out="bench/results/int-activations/activations-$bits-bits.onnx"
    "$PYTHON" tools/int8_activations_model.py "$MODEL_ONNX" "$out" --bits "$bits"
    cargo bench --quiet --bench head_quality -- --encoder-variant "activations $bits bits" "$out"
  done
fi

mkdir -p bench/results/int-kernels
for variant in simd128 relaxed; do
  features=+simd128
  [ "$variant" = relaxed ] && features=+simd128,+relaxed-simd
  target="$CARGO_TARGET_DIR/int-kernels-$variant"
  (cd bench/int-kernels &&
    CARGO_TARGET_DIR="$target" RUSTFLAGS="-C target-feature=$features" \
      cargo build --quiet --release --target wasm32-unknown-unknown)
  cp "$target/wasm32-unknown-unknown/release/localtune_int_kernels_bench.wasm" \
    "bench/results/int-kernels/$variant.wasm"
done
# Node 20 validates relaxed SIMD only behind this flag. Arguments after the
# first (or all, without --kernels-only): --engines chromium,firefox,webkit.
node --experimental-wasm-relaxed-simd bench/int-kernels.mjs "${@}"
