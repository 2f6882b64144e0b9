# Sourced by the other scripts: creates (once) and activates the project's virtual
# environment in .venv, with t2t_lite installed in editable mode with its test extra, and
# exports T2T_DATA_DIR when the data sits beside the checkout.
# A fresh machine needs only Python >= 3.10 and pip.
set -euo pipefail
T2T_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The data dir (relative data.* paths, Multi30k): $T2T_DATA_DIR if set, else shared/data beside
# the checkout if it exists (t2t_lite itself then falls back to ~/.cache/t2t_lite/data).
if [[ -z "${T2T_DATA_DIR:-}" && -d "$T2T_ROOT/../shared/data" ]]; then
  T2T_DATA_DIR="$(cd "$T2T_ROOT/../shared/data" && pwd)"
  export T2T_DATA_DIR
fi
T2T_VENV="${T2T_VENV:-$T2T_ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
if [[ ! -x "$T2T_VENV/bin/python" ]]; then
  echo "[t2t_lite] creating virtual environment $T2T_VENV" >&2
  "$PYTHON" -m venv "$T2T_VENV"
fi
# shellcheck disable=SC1091
source "$T2T_VENV/bin/activate"
stamp="$T2T_VENV/.t2t_installed"
if [[ ! -f "$stamp" || "$T2T_ROOT/pyproject.toml" -nt "$stamp" ]]; then
  echo "[t2t_lite] installing t2t_lite and its dependencies into $T2T_VENV" >&2
  python -m pip install -q --upgrade pip >&2
  python -m pip install -q -e "$T2T_ROOT[test]" >&2
  touch "$stamp"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
cd "$T2T_ROOT"
