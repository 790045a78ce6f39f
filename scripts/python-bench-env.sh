#!/usr/bin/env bash
# Makes the packages of tools/bench-requirements.txt importable at their pinned
# versions and says which Python has them. Idempotent: checks first and
# installs nothing when they are already there.
#
#   source scripts/python-bench-env.sh   # exports PYTHON; then "$PYTHON" tools/…
#   bash scripts/python-bench-env.sh     # installs; prints the interpreter
#
# Installs into the interpreter's own site-packages where pip may (the pyenv
# Python on the project machines). An externally managed one (PEP 668, e.g.
# Debian's /usr/bin/python3) gets a venv under ~/.cache/localtune/venv
# instead: --break-system-packages would mix pip's files with apt's.
# PYTHON, if set, picks the interpreter to start from (default python3).

_bench_env_log() { printf '\033[1;34m[python-bench-env]\033[0m %s\n' "$*" >&2; }

# A subshell, so that set -e and cd do not leak into a shell that sources us.
# Logs go to stderr; the last stdout line is the interpreter to use.
_bench_env_main() (
  set -euo pipefail
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  local req=tools/bench-requirements.txt
  local venv="$HOME/.cache/localtune/venv"
  local base="${PYTHON:-python3}"

  # Prints what differs from the pins; fails if anything does.
  pins_ok() {
    "$1" - "$req" <<'PY'
import sys, importlib.metadata as m
wrong = []
for line in open(sys.argv[1]):
    spec = line.split("#")[0].strip()
    if not spec:
        continue
    name, want = spec.split("==")
    try:
        have = m.version(name)
    except m.PackageNotFoundError:
        have = "missing"
    if have != want:
        wrong.append(f"{name} {have} (want {want})")
if wrong:
    print("; ".join(wrong), file=sys.stderr)
sys.exit(1 if wrong else 0)
PY
  }

  # PEP 668: a marker file in the stdlib directory, ignored inside a venv.
  externally_managed() {
    "$1" -c 'import os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if sys.prefix == sys.base_prefix and os.path.exists(marker) else 1)'
  }

  install() {
    _bench_env_log "installing $req into $1 (a minute: scipy and scikit-learn wheels)"
    "$1" -m pip install --quiet --disable-pip-version-check -r "$req"
    pins_ok "$1"
  }

  local python # the real interpreter, not a pyenv shim
  python=$("$base" -c 'import sys; print(sys.executable)')
  if pins_ok "$python" 2>/dev/null; then
    _bench_env_log "packages present in $python"
  elif [ -x "$venv/bin/python" ] && pins_ok "$venv/bin/python" 2>/dev/null; then
    python="$venv/bin/python"
    _bench_env_log "packages present in $python"
  elif ! externally_managed "$python"; then
    pins_ok "$python" || true # says what is missing
    install "$python"
  else
    _bench_env_log "$python is externally managed (PEP 668): using a venv"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    python="$venv/bin/python"
    install "$python"
  fi
  echo "$python"
)

if _BENCH_PYTHON=$(_bench_env_main); then
  export PYTHON="$_BENCH_PYTHON"
  _bench_env_log "PYTHON=$PYTHON"
  unset _BENCH_PYTHON
  # Sourced: return to the caller; run: print the interpreter for scripts.
  if [ "${BASH_SOURCE[0]}" != "$0" ]; then return 0; fi
  echo "$PYTHON"
else
  unset _BENCH_PYTHON
  _bench_env_log "failed"
  if [ "${BASH_SOURCE[0]}" != "$0" ]; then return 1; fi
  exit 1
fi
