#!/usr/bin/env bash
# Builds the default model bundle the demo page and the end-to-end tests
# load: the real encoder (scripts/fetch-model.sh) with a generic head
# trained on the Home Assistant intents training split by the
# localtune-bundle tool. Skipped when bundles/default/ was built from the
# same inputs (data, model, tool source).
set -euo pipefail
source "$(dirname "$0")/lib.sh"


out=$DEFAULT_BUNDLE
key=$(content_key "$INTENTS_CSV" "$MODEL_ONNX" "$MODEL_TOKENIZER" Cargo.lock src)
if [ "$(cat "$out/.inputs" 2>/dev/null)" = "$key" ]; then
  log "bundles/default is up to date ($key)"
  exit 0
fi
rm -rf "$out"
log "training the generic head (embeds ~5,700 texts with the real encoder)"
cargo run --quiet --bin localtune-bundle -- \
  --encoder "$MODEL_ONNX" --tokenizer "$MODEL_TOKENIZER" \
  --data "$INTENTS_CSV" --text-column text --label-column intent --split-column split \
  --name localtune-demo --version "$(date -u +%Y.%m.%d)" --out "$out"
echo "$key" > "$out/.inputs"
