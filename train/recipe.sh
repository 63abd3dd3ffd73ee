#!/usr/bin/env bash
# The training recipe of README "Training" (run v2, 2-core CPU). Run from the repo root.
# OUT receives the bf16 export of the last stage and eval/results-NAME its test-split evaluation. Once a run meets
# the targets of README "Results", export it to the repo root instead: python -m tools.export_checkpoint runs/stage3 .
set -euo pipefail
DATA=${DATA:-data/synthvid}
RUNS=${RUNS:-runs}
OUT=${OUT:-checkpoints/synthvid-v2}
python -m synthvid.build --out "$DATA" --train 3000 --val 200 --test 400 --test-unseen 200 --seed 0 --workers 2
python -m train.run --data "$DATA" --stage 0 --init tools/configs/synthvid.json --output "$RUNS/stage0" \
  --epochs 1.5 --batch-size 64 --lr 2e-3 --vocab-size 512
python -m train.run --data "$DATA" --stage 1 --init "$RUNS/stage0" --output "$RUNS/stage1" \
  --epochs 0.5 --batch-size 8 --lr 1e-3
python -m train.run --data "$DATA" --stage 2 --init "$RUNS/stage1" --output "$RUNS/stage2" \
  --max-steps 700 --batch-size 8 --lr 1e-3
python -m train.run --data "$DATA" --stage 3 --init "$RUNS/stage2" --output "$RUNS/stage3" \
  --max-steps 1000 --batch-size 8 --lr 1e-3 --ground-truth-fraction 0.5 --open-fraction 0.2
python -m tools.export_checkpoint "$RUNS/stage3" "$OUT"
python -m eval.evaluate --model "$OUT" --data "$DATA" --split test --output "eval/results-$(basename "$OUT")"
