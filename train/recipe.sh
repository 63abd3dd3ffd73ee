#!/usr/bin/env bash
# The recipe that trained the shipped root checkpoint (2-core CPU, see README "Training"). Run from the repo root.
set -euo pipefail
DATA=${DATA:-data/synthvid}
RUNS=${RUNS:-runs}
python -m synthvid.build --out "$DATA" --train 3000 --val 200 --test 400 --test-unseen 200 --seed 0 --workers 2
python -m train.run --data "$DATA" --stage 1 --init tools/configs/synthvid.json --output "$RUNS/stage1" \
  --epochs 0.5 --batch-size 8 --lr 1e-3 --vocab-size 512
python -m train.run --data "$DATA" --stage 2 --init "$RUNS/stage1" --output "$RUNS/stage2" \
  --epochs 5 --batch-size 8 --lr 1e-3
python -m train.run --data "$DATA" --stage 3 --init "$RUNS/stage2" --output "$RUNS/stage3" \
  --epochs 1 --batch-size 16 --lr 1e-3 --ground-truth-fraction 0.3 --open-fraction 0.2
python -m tools.export_checkpoint "$RUNS/stage3" .
python -m eval.evaluate --model . --data "$DATA" --split test --output eval/results
