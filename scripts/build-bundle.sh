#!/usr/bin/env bash
# Builds the default model bundle the demo page and the end-to-end tests
# load: the real encoder (scripts/fetch-model.sh) with a generic head
# trained on the Home Assistant intents training split by the
# localtune-bundle tool. Skipped when bundles/default/ was built from the
# same inputs (data, model, tool source).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

log() { printf '\033[1;34m[build-bundle]\033[0m %s\n' "$*"; }

out=bundles/default
model=models/all-minilm-l6-v2-int8
data=bench/data/home-assistant-intents-en.csv
key=$( (sha256sum "$data" "$model/model.onnx" "$model/tokenizer.json" Cargo.lock; find src -type f | sort | xargs sha256sum) | sha256sum | cut -c1-16)
if [ "$(cat "$out/.inputs" 2>/dev/null)" = "$key" ]; then
  log "bundles/default is up to date ($key)"
  exit 0
fi
rm -rf "$out"
log "training the generic head (embeds ~5,700 texts with the real encoder)"
cargo run --quiet --bin localtune-bundle -- \
  --encoder "$model/model.onnx" --tokenizer "$model/tokenizer.json" \
  --data "$data" --text-column text --label-column intent --split-column split \
  --name localtune-demo --version "$(date -u +%Y.%m.%d)" --out "$out"
echo "$key" > "$out/.inputs"
