#!/usr/bin/env bash
# Fails unless the given wasm module really contains WebAssembly SIMD
# (simd128) instructions: disassembles it with wabt's wasm-objdump and counts
# v128 / lane-wise operations. A build that lost +simd128 (say, through an
# exported RUSTFLAGS) has none. With `relaxed`, also requires the matrix
# kernel's f32x4.relaxed_madd (the module built with LOCALTUNE_RELAXED_SIMD=1).
set -euo pipefail
wasm=${1:?usage: check-simd.sh module.wasm [relaxed]}
# Disassembled once into a file (over 500 MB of text: a shell variable and
# here-strings made each check take a minute).
disassembly=$(mktemp)
trap 'rm -f "$disassembly"' EXIT
wasm-objdump -d "$wasm" > "$disassembly"
count=$(grep -cE '\b(v128|[if](8|16|32|64)x[0-9]+)\.' "$disassembly" || true)
if [ "$count" -lt 1000 ]; then
  echo "check-simd: $wasm has only $count SIMD instructions; was it built without +simd128?" >&2
  exit 1
fi
echo "check-simd: $wasm contains $count SIMD instructions"
relaxed=$(grep -cE '\bf32x4\.relaxed_madd\b' "$disassembly" || true)
if [ "${2:-}" = relaxed ]; then
  if [ "$relaxed" -lt 1 ]; then
    echo "check-simd: $wasm has no f32x4.relaxed_madd; was it built without LOCALTUNE_RELAXED_SIMD=1?" >&2
    exit 1
  fi
  echo "check-simd: $wasm contains $relaxed f32x4.relaxed_madd"
else
  any_relaxed=$(grep -cE '\.relaxed_' "$disassembly" || true)
  if [ "$any_relaxed" -gt 0 ]; then
    echo "check-simd: $wasm must run without relaxed SIMD but contains $any_relaxed relaxed instructions" >&2
    exit 1
  fi
fi
