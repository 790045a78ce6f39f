#!/usr/bin/env bash
# Fails unless the given wasm module really contains WebAssembly SIMD
# (simd128) instructions: disassembles it with wabt's wasm-objdump and counts
# v128 / lane-wise operations. A build that lost +simd128 (say, through an
# exported RUSTFLAGS) has none.
set -euo pipefail
wasm=${1:?usage: check-simd.sh module.wasm}
count=$(wasm-objdump -d "$wasm" | grep -cE '\b(v128|[if](8|16|32|64)x[0-9]+)\.' || true)
if [ "$count" -lt 1000 ]; then
  echo "check-simd: $wasm has only $count SIMD instructions; was it built without +simd128?" >&2
  exit 1
fi
echo "check-simd: $wasm contains $count SIMD instructions"
