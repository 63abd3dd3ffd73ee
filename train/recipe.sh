#!/usr/bin/env bash
# The CPU training recipe of README "Training": stages 0 to 3 from scratch on the 2-core CPU in under an hour, with
# the method the root was trained with (README "How the root was trained"; train/RUNS.md). Run from the repo root.
#   bash train/recipe.sh                   # LangDC: stages 0-3 (run v43c, 34 min; train/RUNS.md "Run v43")
#   MODEL=baseline bash train/recipe.sh    # the no-expert baseline: same data, stages 0, text, 1 and 3, same steps
# OUT receives the bf16 export of the last stage and eval/results-NAME its test-split evaluation.
# From the root's runs it takes the stage-0 colour-moment head (run v30), so the expert's pooled cells keep a move, and
# the expert reading tubelet tokens (`expert_token_layout: tubelets` in tools/configs/synthvid_tubelets.json, run v35)
# for 4000 steps; stage 3 is run v6's (all of a video's questions in one conversation, one prompt form), which binds
# the letters where the root's mixed stage 3 did not from scratch (runs v43, v43b). Run v6, the recipe before
# (frames layout, 1600 expert steps: 35.8% in 51 min), is checkpoints/synthvid-v6-cpu; `git log -p train/recipe.sh`
# has its commands. The shipped root is run v35: v6's stages 0-2, stage 3 on one GPU (run v7), then fourteen CPU runs
# (README "How the root was trained").
# (checkpoints/synthvid-baseline is not this recipe's: it is run v15 without its expert, trained further; README
# "No-expert baseline".)
set -euo pipefail
DATA=${DATA:-data/synthvid}
MODEL=${MODEL:-langdc}
case "$MODEL" in
  langdc) SPEC=tools/configs/synthvid_tubelets.json; NAME=synthvid-cpu-recipe ;;
  baseline) SPEC=tools/configs/synthvid_baseline.json; NAME=synthvid-baseline-cpu ;;
  *) echo "MODEL must be langdc or baseline, got '$MODEL'" >&2; exit 2 ;;
esac
RUNS=${RUNS:-runs/$MODEL}
OUT=${OUT:-checkpoints/$NAME}
python -m synthvid.build --out "$DATA" --train 3000 --val 200 --test 400 --test-unseen 200 --seed 0 --workers 2
python -m train.run --data "$DATA" --stage 0 --init "$SPEC" --output "$RUNS/stage0" \
  --epochs 1.5 --batch-size 64 --lr 2e-3 --vocab-size 512
python -m train.run --data "$DATA" --stage 0 --init "$RUNS/stage0" --output "$RUNS/stage0_moments" \
  --epochs 1 --batch-size 64 --lr 1e-3 --warmup 50 --moment-weight 100
python -m train.run --data "$DATA" --stage text --init "$RUNS/stage0_moments" --output "$RUNS/stage_text" \
  --max-steps 2000 --batch-size 32 --lr 1e-3 --warmup 50
python -m train.run --data "$DATA" --stage 1 --init "$RUNS/stage_text" --output "$RUNS/stage1" \
  --epochs 0.5 --batch-size 8 --lr 1e-3
LAST="$RUNS/stage1"
if [ "$MODEL" = langdc ]; then  # the baseline has no expert to train
  python -m train.run --data "$DATA" --stage 2 --init "$RUNS/stage1" --output "$RUNS/stage2" \
    --max-steps 4000 --batch-size 8 --lr 1e-3 --warmup 100 --freeze-vision-tower --cache-vision-features
  LAST="$RUNS/stage2"
fi
python -m train.run --data "$DATA" --stage 3 --init "$LAST" --output "$RUNS/stage3" \
  --max-steps 1600 --batch-size 8 --lr 1e-3 --ground-truth-fraction 0.5 --open-fraction 0.2 --lookup-fraction 0.25 \
  --cache-vision-features
python -m tools.export_checkpoint "$RUNS/stage3" "$OUT"
python -m eval.evaluate --model "$OUT" --data "$DATA" --split test --output "eval/results-$(basename "$OUT")"
