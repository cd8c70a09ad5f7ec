#!/bin/bash
# Cheaper members, measured on RAVDESS actors 1-18 -> 19-24 (the rav-default run's data and seeds):
# each arm trains one kind's three seeds; summary.py swaps them into the default's saved ensemble.
set -u
cd "$(dirname "$0")/../.."
DATA=runs/ravdess-heldout
arm() {  # name, overrides...
  local name=$1; shift
  [ -f runs/cost-cut/$name/metrics.json ] && return
  rm -rf runs/cost-cut/$name
  /usr/bin/time -f "%e s wall, %U+%S CPU-s" .venv/bin/python -m finetune train --data $DATA \
    --run runs/cost-cut/$name "$@" > runs/cost-cut/$name.log 2>&1
}
mkdir -p runs/cost-cut
arm scratch40 'kinds=[scratch]' scratch.epochs=40
arm ft12 'kinds=[finetune]' epochs=12
arm scratch40_lr2 'kinds=[scratch]' scratch.epochs=40 scratch.lr_backbone=2e-3
