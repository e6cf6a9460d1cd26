#!/usr/bin/env bash
# Replays the CPU training that produced the shipped weights (2026-11-28, 2 cores; see
# weights/README.md), then ships them with scripts/ship-weights.sh. The first plan proved too slow
# for the session, so the run was stopped at its step-800 checkpoint (stage 0) and resumed with
# shorter stages; this script does exactly that, then trains the two baselines.
# Usage: bash scripts/cpu-train.sh [RUNS_DIR]   (default runs/cpu; about 2.5 h on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/cpu}
cargo build --release -p coconut-trainer --locked
bin=target/release/coconut
mkdir -p "$runs"

# 1. The first plan, until its step-800 checkpoint is written (the next one would be at 1000).
"$bin" train --run-dir "$runs/curriculum" --epochs 1.5,0.5,0.5,0.5,0.5,1.0 --batch-size 128 \
  --checkpoint-every 200 --val-problems 500 &
first=$!
until grep -q '"step":810,' "$runs/curriculum/metrics.jsonl" 2>/dev/null; do sleep 2; done
kill "$first"; wait "$first" || true

# 2. Shorter stages from there: the stage-0 schedule ends at 1.1 epochs (step 860), then a quarter
#    epoch per latent stage 1-4 and one epoch of the all-latent stage (the session stopped once more
#    at the stage-4/5 boundary to lengthen stage 5 from 0.5 to 1 epoch; resuming with the final
#    plan gives the same run, since a stage's schedule depends only on its own length).
python3 - "$runs/curriculum/config.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
for plan, epochs in zip(config["stages"], [1.1, 0.25, 0.25, 0.25, 0.25, 1.0]):
    plan["epochs"] = epochs
json.dump(config, open(path, "w"), indent=2)
PY
"$bin" train --run-dir "$runs/curriculum" --resume

# 3. The baselines, from scratch.
"$bin" train --run-dir "$runs/nocot" --stages nocot --epochs 1 --batch-size 128 --val-problems 500
"$bin" train --run-dir "$runs/pause" --stages pause --epochs 1 --batch-size 128 --val-problems 500

bash scripts/ship-weights.sh "$runs/curriculum" "$runs/nocot" "$runs/pause"
