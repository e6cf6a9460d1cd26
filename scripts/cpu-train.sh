#!/usr/bin/env bash
# Trains the shipped weights from scratch on this machine's CPU and ships them into weights/:
#  1. the curriculum, stages 0..5, with two continuous thoughts per step (c = 2: stage k has 2k
#     thoughts; with c = 1 stages 4 and 5 stopped short of 99.9%, see weights/README.md): each
#     stage ends once greedy accuracy on 2,000 validation problems reaches 99.9% (checked every
#     250 steps), the all-latent stage 5 once it reaches 100%, and each takes at most 8, 4, 4, 4,
#     10, 14 epochs (the recipe's 8, 4, 4, 4, 4, 6 of ../shared/notes/recipe.md, with the last two
#     stages given longer schedules);
#  2. the two baselines (no chain of thought, pause thoughts), each given as many optimizer steps
#     as the whole curriculum took, so the comparison is fair;
#  3. scripts/ship-weights.sh: f32 and int8 evaluations on the 5,000 test problems, int8 export,
#     manifest, curves.
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

train "$runs/curriculum" --thoughts-per-step 2 --epochs 8,4,4,4,10,14 --until-val 99.9 \
  --stage-until-val stage5=100 --val-every 250 --val-problems 2000

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
train "$runs/nocot" --stages nocot --epochs "$epochs" --val-problems 2000
train "$runs/pause" --stages pause --thoughts-per-step 2 --epochs "$epochs" --val-problems 2000

bash scripts/ship-weights.sh "$runs/curriculum" "$runs/nocot" "$runs/pause"
