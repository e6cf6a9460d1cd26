#!/usr/bin/env bash
# Trains the shipped weights from scratch on this machine's CPU and ships them into weights/:
#  1. the curriculum, stages 0..5, one layer, one continuous thought per step (c = 1), with
#     coupled position ids ahead (docs/positions.md: each column's tokens share an id, columns
#     start at a random offset up to 24 and are spaced by random gaps of 0-3 ids, training
#     answers get 0-2 extra leading zeros), both operands written with 2 extra leading zeros
#     (in training 0-4, and 0-14 in the all-latent stage, so its chain of thoughts is trained as
#     long as a 16-digit problem's), carry chains drawn 3 more times per column in stages 4 and 5, and the weights'
#     moving average (EMA 0.995) evaluated and kept, so that the all-latent stage adds longer
#     numbers than it trained on, every mix of lengths (weights/README.md); stages 0-4 end once
#     greedy accuracy on 2,000 validation problems reaches 100% twice in a row (checked every
#     250 steps), stage 5 trains all its epochs; each takes at most 8, 8, 12, 12, 10, 7 epochs;
#  2. the two baselines (no chain of thought, pause thoughts), with the same model, ids and data
#     as the all-latent stage (its padding and carry chains), each given as many optimizer steps
#     as the whole curriculum took, so the comparison is fair;
#  3. scripts/ship-weights.sh: f32 and int8 evaluations on the 5,000 test problems, on 1,000
#     problems each of 5, 6, 7 and 8 digits, and on every operand-length pair whose longer
#     operand has 5 to 8 digits (200 each: the page's notes and accepted lengths), int8 export
#     (f16 for a stage int8 would take below 99.9%), manifest, probes, curves.
# Each run resumes from its checkpoint if the script is started again.
# Usage: bash scripts/cpu-train.sh [RUNS_DIR]   (default runs/cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/cpu}
cargo build --release -p coconut --locked
bin=target/release/coconut
mkdir -p "$runs"

train() { # run-dir, then train flags
  local dir=$1
  shift
  if [ -f "$dir/checkpoint.safetensors" ]; then
    "$bin" train --run-dir "$dir" --resume
  else
    "$bin" train --run-dir "$dir" "$@"
  fi
}

model=(--seed 4 --layers 1 --positions coupled --max-position-offset 24 --n-positions 160
  --ids-ahead --max-column-gap 3 --max-answer-pad 2 --operand-pad 2 --max-operand-pad 4
  --ema-decay 0.995)
train "$runs/curriculum" "${model[@]}" --thoughts-per-step 1 --epochs 8,8,12,12,10,7 \
  --until-val 99.9 --stage-until-val stage0=100,stage1=100,stage2=100,stage3=100,stage4=100,stage5=off \
  --val-every 250 --val-problems 2000 --val-confirm 2 --stage-repeat-nines stage4=3,stage5=3 \
  --stage-max-operand-pad stage5=14

# The curriculum's optimizer steps, as epochs of the baselines' training set: the all-latent
# stage's (its carry chains repeated), whose length in steps the curriculum's last stage shows,
# since it trains all its epochs.
epochs=$(python3 - "$runs/curriculum" <<'PY'
import json, sys
run = sys.argv[1]
config = json.load(open(f"{run}/config.json"))
last = config["stages"][-1]
steps = {}
for line in open(f"{run}/metrics.jsonl"):
    record = json.loads(line)
    if "stage" in record and "step" in record:
        steps[record["stage"]] = max(steps.get(record["stage"], 0), record["step"])
before = max((s for k, s in steps.items() if k != last["stage"]), default=0)
per_epoch = (steps[last["stage"]] - before) / last["epochs"]
print(f"{steps[last['stage']] / per_epoch:.4f}")
PY
)
echo "baselines: $epochs epochs each (the curriculum's steps)"
train "$runs/nocot" "${model[@]}" --stages nocot --epochs "$epochs" --val-problems 2000 \
  --stage-repeat-nines nocot=3 --stage-max-operand-pad nocot=14
train "$runs/pause" "${model[@]}" --stages pause --thoughts-per-step 1 --epochs "$epochs" \
  --val-problems 2000 --stage-repeat-nines pause=3 --stage-max-operand-pad pause=14

EVAL_LONGER=6,7,8 bash scripts/ship-weights.sh "$runs/curriculum" "$runs/nocot" "$runs/pause"
