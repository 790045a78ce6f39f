# Sourced by every project script (scripts/ and bench/): the shared
# environment, paths and logging, in one place.
#
#   source "$(dirname "$0")/../scripts/lib.sh"   # from any script's folder
#
# Leaves the shell in the repository root.

# Cargo's build output lives outside the clone so that a fresh clone on the
# same machine (CI's) reuses what was already compiled (tract and tokenizers
# take ~10 minutes per target and profile on 2 cores).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/localtune/target}"
export PATH="$HOME/.cargo/bin:$PATH"

LOCALTUNE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$LOCALTUNE_ROOT"

# The default encoder (scripts/fetch-model.sh puts it here) and the labelled
# data the default bundle and the benchmarks use.
MODEL_DIR=models/all-minilm-l6-v2-int8
MODEL_ONNX=$MODEL_DIR/model.onnx
MODEL_TOKENIZER=$MODEL_DIR/tokenizer.json
INTENTS_CSV=bench/data/home-assistant-intents-en.csv
DEFAULT_BUNDLE=bundles/default

# `log message…`, prefixed with the calling script's name.
log() {
  local name
  name=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
  printf '\033[1;34m[%s]\033[0m %s\n' "$name" "$*"
}

# `die message…`: says what failed, on stderr, and exits.
die() {
  local name
  name=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
  echo "$name: $*" >&2
  exit 1
}

# `content_key path…`: a short sha256 of the contents of the given files and
# of every file under the given folders, for caches keyed by their inputs.
content_key() {
  find "$@" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}
