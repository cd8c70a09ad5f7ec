#!/usr/bin/env bash
# Issue 32 item 6: each held-out corpus fine-tuned (+ probed) from one init, 3 seeds, one core.
#   bash experiments/emotion_init/arms.sh INIT_NAME INIT_SPEC CORPUS...
# e.g. bash experiments/emotion_init/arms.sh small pretrained:small savee turev-db urdu
#      bash experiments/emotion_init/arms.sh multi ckpt:runs/emotion-init/backbone/best savee turev-db urdu
#      bash experiments/emotion_init/arms.sh ravdess ckpt:w2v2/pretrained/emotion-ravdess/member_1 savee turev-db urdu
set -euo pipefail
name=$1; init=$2; shift 2
for corpus in "$@"; do
  run=runs/emotion-init/$corpus-$name
  [ -f "$run/metrics.json" ] && continue
  python=${PYTHON:-.venv/bin/python}
  if [ -f "$run/recipe.json" ]; then  # killed: continue it
    $python -m finetune train --run "$run" --resume
  else
    $python -m finetune train --data "runs/emotion-init/$corpus" --run "$run" --init "$init" --members 3 \
      "kinds=[finetune,probe]" threads=1 workers=1
  fi
done
