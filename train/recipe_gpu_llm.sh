#!/usr/bin/env bash
# Run v44 (train/RUNS.md): a new, wider LLM side trained on one GPU on a trained vision tower and expert (those of
# INIT, the root by default). The LLM is SPEC's text_config (tools/configs/synthvid_gpu.json: 384 wide, 6 layers,
# 9.6M parameters against the root's 1.4M); the caption and pool projectors start anew with it
# (python -m tools.export_checkpoint --llm-config). Run from the repo root, in parts that each fit one 10-minute
# device command (every stage's steps are also cut by --max-minutes, so a slower machine still ends in time):
#   PART=text bash train/recipe_gpu_llm.sh   # data, the new LLM side, the text stage, stage 1
#   PART=qa bash train/recipe_gpu_llm.sh     # stage 3 in run v7's form (it binds the answer letters), export
#   PART=mixed bash train/recipe_gpu_llm.sh  # stage 3 more, in the root's mixed prompt forms, export
# Each part starts from the last one's folder in RUNS (the mixed part from FROM when set: run v45 is
# PART=mixed FROM=. RUNS=runs/v45, the root's own LLM given the GPU's longer mixed stage 3), and leaves its
# checkpoint exported in bf16 (EXPORT/PART), the stage logs, and, with OUT set, both packed into
# OUT/<RUNS' name>_PART.tar.NN pieces of at most 15 MB (the device tool's file limit).
# Every count is an environment variable; TF32=0 LOADERS=0 for a CPU check of the script (done: 40 videos, a few
# steps per part). Not yet run on a GPU: the one lease so far went to setup (train/RUNS.md "Runs v44 and v45"), which
# says how to start the device command (carry .whl; a `python` wrapper script, not a link; an import probe first).
set -euo pipefail
PART=${PART:?set PART to text, qa or mixed}
DATA=${DATA:-data/synthvid_gpu}
RUNS=${RUNS:-runs/v44}
EXPORT=${EXPORT:-$RUNS/export}
INIT=${INIT:-.}
FROM=${FROM:-$RUNS/stage3}
SPEC=${SPEC:-tools/configs/synthvid_gpu.json}
WORKERS=${WORKERS:-16}
LOADERS=${LOADERS:-8}
TRAIN_VIDEOS=${TRAIN_VIDEOS:-12000}
TEXT_SCENES=${TEXT_SCENES:-12000}
STEPS_TEXT=${STEPS_TEXT:-2000} MINUTES_TEXT=${MINUTES_TEXT:-4.5}
STEPS_1=${STEPS_1:-150} MINUTES_1=${MINUTES_1:-1}
STEPS_3=${STEPS_3:-3000} MINUTES_3=${MINUTES_3:-6.5}
STEPS_MIXED=${STEPS_MIXED:-2000} MINUTES_MIXED=${MINUTES_MIXED:-6}
TF32=${TF32:-1}
common=(--data "$DATA" --workers "$WORKERS" --dataloader-workers "$LOADERS" --logging-steps 50 --save-steps 100000)
if [ "$TF32" = 1 ]; then common+=(--tf32); fi
qa=(--ground-truth-fraction 0.5 --open-fraction 0.2 --lookup-fraction 0.25 --cache-vision-features
    --caption-batch-videos 1024)
stamp() { echo "[$(date +%T)] $*"; }
pack() {  # pack() NAME FOLDER...: FOLDERs as OUT/NAME.tar.NN pieces
  if [ -n "${OUT:-}" ]; then tar -cf - "${@:2}" | split -b 15M -d - "$OUT/$1.tar."; fi
}

if [ ! -f "$DATA/meta.json" ]; then  # a part on a fresh machine builds the data again (the same videos)
  stamp "building $TRAIN_VIDEOS training videos"
  python -m synthvid.build --out "$DATA" --train "$TRAIN_VIDEOS" --val 0 --test 0 --test-unseen 0 --seed 0 \
    --workers "$WORKERS"
fi
case "$PART" in
  text)
    python -m tools.export_checkpoint "$INIT" "$RUNS/init" --dtype float32 --llm-config "$SPEC"
    stamp "text stage"
    python -m train.run "${common[@]}" --stage text --init "$RUNS/init" --output "$RUNS/stage_text" \
      --max-steps "$STEPS_TEXT" --max-minutes "$MINUTES_TEXT" --batch-size 64 --lr 1e-3 --warmup 100 \
      --caption-qa-fraction 0.5 --lookup-fraction 0.5 --text-scenes "$TEXT_SCENES"
    stamp "stage 1"
    python -m train.run "${common[@]}" --stage 1 --init "$RUNS/stage_text" --output "$RUNS/stage1" \
      --max-steps "$STEPS_1" --max-minutes "$MINUTES_1" --batch-size 64 --lr 1e-3 --cache-vision-features
    LAST="$RUNS/stage1" ;;
  qa)
    stamp "stage 3, run v7's form"
    python -m train.run "${common[@]}" --stage 3 --init "$RUNS/stage1" --output "$RUNS/stage3" "${qa[@]}" \
      --max-steps "$STEPS_3" --max-minutes "$MINUTES_3" --batch-size 32 --lr 1e-3 --align-caption-projector
    LAST="$RUNS/stage3" ;;
  mixed)
    stamp "stage 3, the root's mixed forms"
    python -m train.run "${common[@]}" --stage 3 --init "$FROM" --output "$RUNS/stage3_mixed" "${qa[@]}" \
      --max-steps "$STEPS_MIXED" --max-minutes "$MINUTES_MIXED" --batch-size 32 --lr 3e-4 --warmup 100 \
      --frame-prompt-fraction 0.5 --describe-fraction 0.1 --mvbench-prompt-fraction 0.3 --questions-per-example 3
    LAST="$RUNS/stage3_mixed" ;;
  *) echo "PART must be text, qa or mixed, got '$PART'" >&2; exit 2 ;;
esac
python -m tools.export_checkpoint "$LAST" "$EXPORT/$PART"
mkdir -p "$RUNS/logs"
for stage in "$RUNS"/stage*/; do cp "$stage/train_log.json" "$RUNS/logs/$(basename "$stage")_train_log.json"; done
pack "$(basename "$RUNS")_$PART" "$EXPORT/$PART" "$RUNS/logs"
stamp "done: $EXPORT/$PART"
