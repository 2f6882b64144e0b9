#!/usr/bin/env bash
# The main job: train on Multi30k English->German for 12 minutes on a CPU (configs/multi30k_quick.yaml),
# translate test2016 with beam search, and print sacreBLEU and chrF. About 15 minutes on 2 cores.
#
#   bash scripts/quickstart.sh [MODEL_DIR] [extra t2t-train flags]
#
# Running it again with the same MODEL_DIR (default runs/quickstart) resumes there.
set -euo pipefail
MODEL_DIR="${1:-runs/quickstart}"
shift || true
exec bash "$(dirname "$0")/multi30k.sh" configs/multi30k_quick.yaml "$MODEL_DIR" "$@"
