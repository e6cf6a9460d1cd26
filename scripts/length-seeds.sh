#!/usr/bin/env bash
# Issue 33's measurement of a length-generalization recipe over training seeds: trains the whole
# curriculum once per seed (resumable: a run with a checkpoint continues), then evaluates every
# stage greedily on the 5,000 test problems and on every operand-length pair whose longer operand
# has 5, 6, 7, 8, 12 or 16 digits (both orders, 200 problems each, long carry chains among them),
# and prints the spread over seeds (scripts/seed-spread.py).
# Usage: bash scripts/length-seeds.sh RUNS_DIR SEED... [-- extra train flags]
#   e.g. bash scripts/length-seeds.sh runs/lengths/padded 3 4 5 6 7 -- --operand-pad 2 --max-operand-pad 4
# The flags before `--` are the shipped recipe's (scripts/cpu-train.sh); those after it are added.
# STAGE_UNTIL_VAL replaces the recipe's per-stage stopping rules (default stage4=100,stage5=100),
#   e.g. STAGE_UNTIL_VAL=stage4=100,stage5=off to train the all-latent stage all its epochs.
# EPOCHS replaces the recipe's most epochs per stage (default 8,4,12,12,10,14).
# Written stages cannot reach 16 digits in 160 positions (their steps do not fit): their 12- and
# 16-digit pairs read as unanswered; the goal's 12/16-digit figure is the all-latent stage's.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=$1
shift
seeds=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do seeds+=("$1"); shift; done
[ $# -gt 0 ] && shift
extra=("$@")
[ ${#seeds[@]} -gt 0 ] || { echo "usage: $0 RUNS_DIR SEED... [-- flags]" >&2; exit 2; }
cargo build --release -p coconut --locked
bin=target/release/coconut
for seed in "${seeds[@]}"; do
  dir="$runs/seed$seed"
  mkdir -p "$dir"
  if [ -f "$dir/checkpoint.safetensors" ]; then
    "$bin" train --run-dir "$dir" --resume
  else
    "$bin" train --run-dir "$dir" --seed "$seed" --layers 1 --positions coupled \
      --max-position-offset 24 --n-positions 160 --ids-ahead --max-column-gap 3 --max-answer-pad 2 \
      --thoughts-per-step 1 --epochs "${EPOCHS:-8,4,12,12,10,14}" --until-val 99.9 \
      --stage-until-val "${STAGE_UNTIL_VAL:-stage4=100,stage5=100}" --val-every 250 --val-problems 2000 "${extra[@]}"
  fi
  mkdir -p "$dir/eval"
  for stage in stage0 stage1 stage2 stage3 stage4 stage5; do
    [ -f "$dir/eval/$stage.json" ] && continue
    "$bin" eval --run-dir "$dir" --stage "$stage" --n 5000 --n-ood 0 --pairs 5,6,7,8,12,16 \
      --n-per-pair 200 --json "$dir/eval/$stage.json" > "$dir/eval/$stage.txt"
  done
done
python3 scripts/seed-spread.py "${seeds[@]/#/$runs/seed}"
