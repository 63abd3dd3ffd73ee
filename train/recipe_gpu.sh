#!/usr/bin/env bash
# Training on one GPU (train/RUNS.md "Run v7"). Run from the repo root. Two modes:
#   STAGE2=CKPT bash train/recipe_gpu.sh   # stage 3 alone, from the stage-2 checkpoint CKPT, on TRAIN_VIDEOS videos
#   bash train/recipe_gpu.sh               # stages 0 to 3 from SPEC (a wider model, tools/configs/synthvid_gpu.json)
# Run v7, the root's stage 3: run v6's CPU stage 2 (exported bf16 to travel: python -m tools.export_checkpoint
# runs/v6/stage2 gpu_init/v6-stage2), then on one H100 (6.7 min):
#   STAGE2=gpu_init/v6-stage2 ALIGN=0 bash train/recipe_gpu.sh
# The full mode was only smoke-tested (2,000 videos, 40-150 steps per stage, on the H100); its default step counts
# are sized from the speeds measured there to fit one 10-minute command with 12,000 videos, not yet run at that size.
# The full mode has the vision side of the CPU runs: the colour-moment fine-tuning after stage 0 (run v30, STEPS_0M
# steps) and objects painted in novel colours in a RECOLOR share of the stage-0 frames (shapes learnt from them alone,
# run v58) and of the stage-2 videos (run v60); RECOLOR=0 leaves them out. Neither has been run on a GPU yet.
# Every count is an environment variable. RUNS receives one checkpoint folder per stage, EXPORT the bf16 export of
# stage 3; the test split is built too (same seed: the same videos as data/synthvid's), for
# python -m eval.evaluate --model EXPORT --data DATA --split test.
set -euo pipefail
DATA=${DATA:-data/synthvid_gpu}
RUNS=${RUNS:-runs/gpu}
EXPORT=${EXPORT:-checkpoints/synthvid-gpu}
SPEC=${SPEC:-tools/configs/synthvid_gpu.json}
WORKERS=${WORKERS:-16}
LOADERS=${LOADERS:-8}
TRAIN_VIDEOS=${TRAIN_VIDEOS:-12000}
TEXT_SCENES=${TEXT_SCENES:-12000}
STAGE2=${STAGE2:-}
STEPS_0=${STEPS_0:-300} STEPS_0M=${STEPS_0M:-200} STEPS_TEXT=${STEPS_TEXT:-700} STEPS_1=${STEPS_1:-100} STEPS_2=${STEPS_2:-400}
STEPS_3=${STEPS_3:-$([ -n "$STAGE2" ] && echo 2800 || echo 700)}
ALIGN=${ALIGN:-1}  # stage 3 starts from the least-squares caption projector (--align-caption-projector); 0: as run v6
# float32 with TF32 matrix products (Ampere or newer; TF32=0 for a CPU check of the script): with --bf16 a smoke run
# logged NaN losses from stage 1 on (cause not established)
TF32=${TF32:-1}
RECOLOR=${RECOLOR:-0.5}
recolor_frames=() recolor_videos=()
if [ "$RECOLOR" != 0 ]; then
  recolor_frames=(--recolor-fraction "$RECOLOR" --named-shape-weight 0)
  recolor_videos=(--recolor-fraction "$RECOLOR")
fi
common=(--data "$DATA" --workers "$WORKERS" --dataloader-workers "$LOADERS" --logging-steps 50 --save-steps 100000)
if [ "$TF32" = 1 ]; then common+=(--tf32); fi
stamp() { echo "[$(date +%T)] $*"; }

stamp "building $TRAIN_VIDEOS training videos"
python -m synthvid.build --out "$DATA" --train "$TRAIN_VIDEOS" --val 0 --test 400 --test-unseen 200 --seed 0 \
  --workers "$WORKERS"
if [ -z "$STAGE2" ]; then
  stamp "stage 0"
  python -m train.run "${common[@]}" --stage 0 --init "$SPEC" --output "$RUNS/stage0" \
    --max-steps "$STEPS_0" --batch-size 512 --lr 2e-3 --vocab-size 512 "${recolor_frames[@]}"
  stamp "stage 0, colour moments"
  python -m train.run "${common[@]}" --stage 0 --init "$RUNS/stage0" --output "$RUNS/stage0_moments" \
    --max-steps "$STEPS_0M" --batch-size 512 --lr 1e-3 --warmup 50 --moment-weight 100 "${recolor_frames[@]}"
  stamp "text stage"
  python -m train.run "${common[@]}" --stage text --init "$RUNS/stage0_moments" --output "$RUNS/stage_text" \
    --max-steps "$STEPS_TEXT" --batch-size 64 --lr 1e-3 --warmup 100 \
    --caption-qa-fraction 0.5 --lookup-fraction 0.5 --text-scenes "$TEXT_SCENES"
  stamp "stage 1"
  python -m train.run "${common[@]}" --stage 1 --init "$RUNS/stage_text" --output "$RUNS/stage1" \
    --max-steps "$STEPS_1" --batch-size 64 --lr 1e-3 --cache-vision-features
  stamp "stage 2"
  python -m train.run "${common[@]}" --stage 2 --init "$RUNS/stage1" --output "$RUNS/stage2" \
    --max-steps "$STEPS_2" --batch-size 64 --lr 1e-3 --freeze-vision-tower --cache-vision-features \
    "${recolor_videos[@]}"
  STAGE2="$RUNS/stage2"
fi
stamp "stage 3"
python -m train.run "${common[@]}" --stage 3 --init "$STAGE2" --output "$RUNS/stage3" \
  --max-steps "$STEPS_3" --batch-size 32 --lr 1e-3 --ground-truth-fraction 0.5 --open-fraction 0.2 \
  --lookup-fraction 0.25 --cache-vision-features --caption-batch-videos 1024 \
  $([ "$ALIGN" = 1 ] && echo --align-caption-projector)
python -m tools.export_checkpoint "$RUNS/stage3" "$EXPORT"
stamp "done"
