#!/usr/bin/env bash
# Trains the shipped weights from scratch on this machine's CPU and ships them into weights/:
#  1. the curriculum, stages 0..5, one layer, one continuous thought per step (c = 1), with
#     coupled position ids ahead (docs/positions.md: each column's tokens share an
#     id, columns start at a random offset up to 24 and are spaced by random gaps of 0-3, training
#     answers get 0-2 extra leading zeros), so that the all-latent stage adds longer numbers than
#     it trained on (weights/README.md); each stage ends once greedy accuracy on 2,000 validation
#     problems reaches 99.9% (checked every 250 steps), stages 4 and 5 once it reaches 100%, and
#     each takes at most 8, 4, 12, 12, 10, 14 epochs;
#  2. the two baselines (no chain of thought, pause thoughts), with the same model and ids, each
#     given as many optimizer steps as the whole curriculum took, so the comparison is fair;
#  3. scripts/ship-weights.sh: f32 and int8 evaluations on the 5,000 test problems and on 1,000
#     problems each of 5, 6, 7 and 8 digits (every length the page then accepts), int8 export
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

model=(--seed 3 --layers 1 --positions coupled --max-position-offset 24 --n-positions 160
  --ids-ahead --max-column-gap 3 --max-answer-pad 2)
train "$runs/curriculum" "${model[@]}" --thoughts-per-step 1 --epochs 8,4,12,12,10,14 \
  --until-val 99.9 --stage-until-val stage4=100,stage5=100 --val-every 250 --val-problems 2000

# The curriculum's optimizer steps, as epochs of the baselines' (same) training set.
epochs=$(python3 - "$runs/curriculum" <<'PY'
import json, math, sys
run = sys.argv[1]
config = json.load(open(f"{run}/config.json"))
steps = max(json.loads(l).get("step", 0) for l in open(f"{run}/metrics.jsonl") if l.startswith("{"))
per_epoch = math.ceil(config["data"]["n_train"] / config["batch_size"])
print(f"{steps / per_epoch:.4f}")
PY
)
echo "baselines: $epochs epochs each (the curriculum's steps)"
train "$runs/nocot" "${model[@]}" --stages nocot --epochs "$epochs" --val-problems 2000
train "$runs/pause" "${model[@]}" --stages pause --thoughts-per-step 1 --epochs "$epochs" --val-problems 2000

EVAL_LONGER=6,7,8 bash scripts/ship-weights.sh "$runs/curriculum" "$runs/nocot" "$runs/pause"
