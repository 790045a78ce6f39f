#!/usr/bin/env bash
# What a first visit downloads, localtune against Transformers.js on the same
# model, in one command. Transformers.js is installed here, on demand, into
# bench/results/transformers-js (not the project's dependencies: it brings
# ~470 MB of native onnxruntime and image libraries nothing else needs), and
# given the model in the folder layout it reads. Pass --update-readme to
# write the table into docs/benchmarks.md.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
bash scripts/setup.sh
bash scripts/build-pkg.sh
bash scripts/build-bundle.sh

TRANSFORMERS_JS_VERSION=4.3.1
dir=bench/results/transformers-js
installed=$(node -p "require('./$dir/node_modules/@huggingface/transformers/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$TRANSFORMERS_JS_VERSION" ]; then
  log "installing @huggingface/transformers@$TRANSFORMERS_JS_VERSION into $dir (install scripts off: only its browser files are used)"
  mkdir -p "$dir"
  echo '{ "private": true }' > "$dir/package.json"
  npm install --prefix "$dir" --ignore-scripts --no-audit --no-fund --silent \
    "@huggingface/transformers@$TRANSFORMERS_JS_VERSION"
fi

# The model Transformers.js asks for: config, tokenizer and the 8-bit ONNX
# file (`dtype: 'q8'`) under onnx/. The ONNX file and tokenizer are the ones
# our bundle is built from; the two small configs say what the model is.
model=$dir/models/all-MiniLM-L6-v2
mkdir -p "$model/onnx"
cp models/all-minilm-l6-v2-int8/model.onnx "$model/onnx/model_quantized.onnx"
cp models/all-minilm-l6-v2-int8/tokenizer.json "$model/tokenizer.json"
cat > "$model/config.json" <<'JSON'
{
  "architectures": ["BertModel"],
  "model_type": "bert",
  "hidden_size": 384,
  "intermediate_size": 1536,
  "num_attention_heads": 12,
  "num_hidden_layers": 6,
  "max_position_embeddings": 512,
  "vocab_size": 30522,
  "type_vocab_size": 2,
  "hidden_act": "gelu",
  "layer_norm_eps": 1e-12,
  "pad_token_id": 0
}
JSON
cat > "$model/tokenizer_config.json" <<'JSON'
{
  "tokenizer_class": "BertTokenizer",
  "do_lower_case": true,
  "model_max_length": 512,
  "cls_token": "[CLS]",
  "sep_token": "[SEP]",
  "pad_token": "[PAD]",
  "unk_token": "[UNK]",
  "mask_token": "[MASK]"
}
JSON
node bench/first-visit.mjs "$@"
