# Sourced by the project's scripts: one place for the shared environment.
# Cargo's build output lives outside the clone so that a fresh clone on the
# same machine (CI's) reuses what was already compiled (tract and tokenizers
# take ~10 minutes per target and profile on 2 cores).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/localtune/target}"
export PATH="$HOME/.cargo/bin:$PATH"
