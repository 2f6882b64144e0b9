#!/usr/bin/env bash
# The main job: train a Transformer on Multi30k English->German on a CPU, translate test2016
# with beam search, and print sacreBLEU and chrF. About 15 minutes on 2 cores.
#
#   bash scripts/quickstart.sh [MODEL_DIR] [extra t2t-train flags, e.g. --set train.max_minutes=30]
#
# Data: $T2T_DATA_DIR/multi30k, else ../shared/data/multi30k, else ~/.cache/t2t_lite/data/multi30k,
# else it is downloaded there by scripts/download_multi30k.sh (research use only; see that script).
source "$(dirname "$0")/env.sh"

MODEL_DIR="${1:-runs/quickstart}"
shift || true
find_data() {
  python - <<'PY'
from t2t_lite.data.paths import data_dir
import os
d = data_dir()
print(d if d and os.path.isfile(os.path.join(d, "multi30k", "test2016.de")) else "")
PY
}
DATA="$(find_data)"
if [[ -z "$DATA" ]]; then
  echo "[quickstart] Multi30k not found locally: downloading it" >&2
  bash scripts/download_multi30k.sh
  DATA="$(find_data)"
fi
echo "[quickstart] data: $DATA/multi30k" >&2
if [[ -e "$MODEL_DIR/config.yaml" ]]; then
  echo "[quickstart] $MODEL_DIR already holds a model: training resumes there" >&2
fi

t2t-train --config=configs/multi30k_quick.yaml --model_dir="$MODEL_DIR" "$@"
echo "[quickstart] translating test2016 with beam search" >&2
t2t-evaluate --model_dir="$MODEL_DIR" --src="$DATA/multi30k/test2016.en" \
  --ref="$DATA/multi30k/test2016.de" --output="$MODEL_DIR/test2016.hyp.de"
cat >&2 <<MSG
[quickstart] done. Model directory: $MODEL_DIR
  translate:    .venv/bin/t2t-translate --model_dir=$MODEL_DIR --input=file.en --output=file.de
  evaluate:     .venv/bin/t2t-evaluate --model_dir=$MODEL_DIR --src=X.en --ref=X.de
  TensorBoard:  .venv/bin/tensorboard --logdir $MODEL_DIR/logs
MSG
