#!/usr/bin/env bash
# Train a Transformer on Multi30k English->German, translate test2016 with beam search (the
# averaged checkpoint), and print sacreBLEU and chrF.
#
#   bash scripts/multi30k.sh CONFIG MODEL_DIR [extra t2t-train flags, e.g. --set train.max_minutes=30]
#
# The full recipe: bash scripts/multi30k.sh configs/multi30k_cpu.yaml runs/m30k   (about 1 hour)
# The quickstart:  bash scripts/quickstart.sh                                    (about 15 minutes)
#
# Data: $T2T_DATA_DIR/multi30k, else ../shared/data/multi30k beside the checkout (scripts/env.sh
# exports it), else ~/.cache/t2t_lite/data/multi30k, else it is downloaded into the data dir by
# scripts/download_multi30k.sh (research use only; see that script).
source "$(dirname "$0")/env.sh"

if [[ $# -lt 2 ]]; then
  echo "usage: bash scripts/multi30k.sh CONFIG MODEL_DIR [t2t-train flags...]" >&2
  exit 2
fi
CONFIG="$1"
MODEL_DIR="$2"
shift 2
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
  echo "[multi30k] Multi30k not found locally: downloading it" >&2
  bash scripts/download_multi30k.sh
  DATA="$(find_data)"
fi
echo "[multi30k] data: $DATA/multi30k" >&2
if [[ -e "$MODEL_DIR/config.yaml" ]]; then
  echo "[multi30k] $MODEL_DIR already holds a model: training resumes there" >&2
fi

t2t-train --config="$CONFIG" --model_dir="$MODEL_DIR" "$@"
echo "[multi30k] translating test2016 with beam search" >&2
t2t-evaluate --model_dir="$MODEL_DIR" --src="$DATA/multi30k/test2016.en" \
  --ref="$DATA/multi30k/test2016.de" --output="$MODEL_DIR/test2016.hyp.de"
cat >&2 <<MSG
[multi30k] done. Model directory: $MODEL_DIR
  translate:    .venv/bin/t2t-translate --model_dir=$MODEL_DIR --input=file.en --output=file.de
  evaluate:     .venv/bin/t2t-evaluate --model_dir=$MODEL_DIR --src=X.en --ref=X.de
  TensorBoard:  .venv/bin/tensorboard --logdir $MODEL_DIR/logs
MSG
