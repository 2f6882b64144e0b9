#!/usr/bin/env bash
# The main job: train on Multi30k English->German for 12 minutes on a CPU, translate test2016
# with beam search, and print sacreBLEU and chrF. About 15 minutes on 2 cores.
#
#   bash scripts/quickstart.sh [MODEL_DIR] [extra t2t-train flags]
#
# The preset follows the precision `train.mixed_precision: auto` resolves to on this machine
# (t2t_lite.hardware): configs/multi30k_quick.yaml where training runs in bfloat16 (CPUs with
# AVX512_BF16 or AMX whose bfloat16 matmuls measure fast, recent GPUs),
# configs/multi30k_quick_fp32.yaml where it runs in float32 (AVX2-only CPUs, whose 12 minutes
# hold about a fifth of the steps, and CPUs whose bfloat16 measures slow; docs/tuning.md).
# QUICKSTART_CONFIG=path overrides the choice.
#
# Running it again with the same MODEL_DIR (default runs/quickstart) resumes there.
set -euo pipefail
source "$(dirname "$0")/env.sh"
MODEL_DIR="${1:-runs/quickstart}"
shift || true
if [[ -n "${QUICKSTART_CONFIG:-}" ]]; then
  CONFIG="$QUICKSTART_CONFIG"
  echo "[quickstart] preset $CONFIG (set by QUICKSTART_CONFIG)" >&2
else
  RESOLVED="$(python -c 'from t2t_lite.hardware import resolve_precision as r; print(*r("auto"))' \
    2>/dev/null || true)"
  PRECISION="${RESOLVED%% *}"
  REASON="${RESOLVED#* }"
  if [[ "$PRECISION" == "none" ]]; then
    CONFIG=configs/multi30k_quick_fp32.yaml
    echo "[quickstart] preset $CONFIG: training runs in float32 here ($REASON)" >&2
  elif [[ -n "$PRECISION" ]]; then
    CONFIG=configs/multi30k_quick.yaml
    echo "[quickstart] preset $CONFIG: training runs in $PRECISION here ($REASON)" >&2
  else
    CONFIG=configs/multi30k_quick.yaml
    echo "[quickstart] preset $CONFIG: the training precision could not be detected" >&2
  fi
fi
exec bash scripts/multi30k.sh "$CONFIG" "$MODEL_DIR" "$@"
