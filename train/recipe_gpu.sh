#!/usr/bin/env bash
# The GPU recipe of README "Training on one GPU": the same four stages as train/recipe.sh (run v6), scaled for one
# H100 inside one 10-minute command: 12,000 training videos built with 16 processes, a wider model
# (tools/configs/synthvid_gpu.json) and larger batches. Run from the repo root; every count is an environment
# variable so that a short smoke run uses the same script:
#   bash train/recipe_gpu.sh
#   TRAIN_VIDEOS=2000 TEXT_SCENES=2000 STEPS_0=40 STEPS_TEXT=40 STEPS_1=40 STEPS_2=40 STEPS_3=40 bash train/recipe_gpu.sh
# Each stage's folder under RUNS is a checkpoint; EXPORT receives the bf16 export of stage 3. The test split is built
# too (same seed, so the same videos as data/synthvid's) but evaluated where the command is run from, with
# python -m eval.evaluate --model EXPORT --data DATA --split test.
set -euo pipefail
DATA=${DATA:-data/synthvid_gpu}
RUNS=${RUNS:-runs/gpu}
EXPORT=${EXPORT:-checkpoints/synthvid-gpu}
SPEC=${SPEC:-tools/configs/synthvid_gpu.json}
WORKERS=${WORKERS:-16}
LOADERS=${LOADERS:-8}
TRAIN_VIDEOS=${TRAIN_VIDEOS:-12000}
TEXT_SCENES=${TEXT_SCENES:-30000}
STEPS_0=${STEPS_0:-600} STEPS_TEXT=${STEPS_TEXT:-4000} STEPS_1=${STEPS_1:-300} STEPS_2=${STEPS_2:-3000}
STEPS_3=${STEPS_3:-3000}
# STAGE2=CHECKPOINT runs stage 3 alone from that stage-2 checkpoint (README "Run v7": run v6's CPU stage 2, exported
# bf16 to travel); otherwise stages 0 to 3 from SPEC
STAGE2=${STAGE2:-}
ALIGN=${ALIGN:-1}  # stage 3 starts from the least-squares caption projector (--align-caption-projector); 0: as run v6
TF32=${TF32:-1}  # TF32 matrix products need an Ampere or newer GPU: TF32=0 for a CPU check of the script
common=(--data "$DATA" --workers "$WORKERS" --dataloader-workers "$LOADERS" --logging-steps 50 --save-steps 100000)
if [ "$TF32" = 1 ]; then common+=(--tf32); fi  # float32 weights and activations: bf16 autocast diverged in stage 1
stamp() { echo "[$(date +%T)] $*"; }

stamp "building $TRAIN_VIDEOS training videos"
python -m synthvid.build --out "$DATA" --train "$TRAIN_VIDEOS" --val 0 --test 400 --test-unseen 200 --seed 0 \
  --workers "$WORKERS"
if [ -z "$STAGE2" ]; then
  stamp "stage 0"
  python -m train.run "${common[@]}" --stage 0 --init "$SPEC" --output "$RUNS/stage0" \
    --max-steps "$STEPS_0" --batch-size 512 --lr 2e-3 --vocab-size 512
  stamp "text stage"
  python -m train.run "${common[@]}" --stage text --init "$RUNS/stage0" --output "$RUNS/stage_text" \
    --max-steps "$STEPS_TEXT" --batch-size 64 --lr 1e-3 --warmup 100 \
    --caption-qa-fraction 0.5 --lookup-fraction 0.5 --text-scenes "$TEXT_SCENES"
  stamp "stage 1"
  python -m train.run "${common[@]}" --stage 1 --init "$RUNS/stage_text" --output "$RUNS/stage1" \
    --max-steps "$STEPS_1" --batch-size 64 --lr 1e-3 --cache-vision-features
  stamp "stage 2"
  python -m train.run "${common[@]}" --stage 2 --init "$RUNS/stage1" --output "$RUNS/stage2" \
    --max-steps "$STEPS_2" --batch-size 64 --lr 1e-3 --freeze-vision-tower --cache-vision-features
  STAGE2="$RUNS/stage2"
fi
stamp "stage 3"
python -m train.run "${common[@]}" --stage 3 --init "$STAGE2" --output "$RUNS/stage3" \
  --max-steps "$STEPS_3" --batch-size 32 --lr 1e-3 --ground-truth-fraction 0.5 --open-fraction 0.2 \
  --lookup-fraction 0.25 --cache-vision-features --caption-batch-videos 1024 \
  $([ "$ALIGN" = 1 ] && echo --align-caption-projector)
python -m tools.export_checkpoint "$RUNS/stage3" "$EXPORT"
stamp "done"
