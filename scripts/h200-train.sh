#!/usr/bin/env bash
# Runs ON an NVIDIA (H200) machine, from the repository root, with the binary built by
# scripts/cuda-build.sh carried along (no Rust, no network there). One script, one time budget,
# everything written under $OUT:
#   - the curriculum (stages 0..5) twice, with a longer and a shorter epoch plan, so that at least
#     one finishes inside the budget whatever the speed turns out to be;
#   - the two baselines (no chain of thought; pause thoughts), from scratch;
#   - the independent PyTorch yardstick on the same model and batch, in the same run, for tokens/s;
#   - then greedy + teacher-forced evaluation of every trained stage on the 5,000-problem test set
#     and the 1,000-problem 5-digit set.
# The GPU is launch-bound at this model size, so the processes share it.
# Usage: OUT=/some/dir BUDGET=330 bash scripts/h200-train.sh
set -u
OUT=${OUT:-$PWD/h200-out}
BUDGET=${BUDGET:-330}
LONG_EPOCHS=${LONG_EPOCHS:-4,2,2,2,2,3}
SHORT_EPOCHS=${SHORT_EPOCHS:-2,1,1,1,1,2}
BIN=${BIN:-target/cuda/coconut-cuda}
YARDSTICK=${YARDSTICK:-}
TORCH_VENV=${TORCH_VENV:-/opt/torch/.venv}
mkdir -p "$OUT"
start=$(date +%s)

# Runtime CUDA libraries come from the PyTorch venv there; libcuda.so.1 is the driver's own.
LD_LIBRARY_PATH=$(ls -d "$TORCH_VENV"/lib/python3*/site-packages/nvidia/*/lib 2>/dev/null | paste -sd:):${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

train() { # name, then coconut train flags
  local name=$1; shift
  timeout -s INT -k 20 $((BUDGET + 45)) "$BIN" train --device cuda --run-dir "$OUT/$name" \
    --time-budget "$BUDGET" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: train exit $? after $(( $(date +%s) - start )) s"
}
train long --epochs "$LONG_EPOCHS" &
train short --epochs "$SHORT_EPOCHS" &
train nocot --stages nocot --epochs 30 &
train pause --stages pause --epochs 4 &
if [ -n "$YARDSTICK" ] && [ -f "$YARDSTICK" ]; then
  timeout -s INT -k 20 $((BUDGET + 45)) "$TORCH_VENV/bin/python3" -u "$YARDSTICK" --device cuda \
    --n-layer 4 --n-embd 128 --n-head 4 --batch-size 256 --lr 1e-3 --epochs "$LONG_EPOCHS" \
    --budget "$BUDGET" --n-test 1000 --n-ood 100 --out "$OUT/torch" > "$OUT/torch.log" 2>&1 &
fi
wait
echo "training done after $(( $(date +%s) - start )) s"

for run in long short nocot pause; do
  for f in "$OUT/$run"/stages/*.safetensors; do
    [ -f "$f" ] || continue
    stage=$(basename "$f" .safetensors)
    timeout 150 "$BIN" eval --device cuda --run-dir "$OUT/$run" --stage "$stage" --n 5000 \
      --n-ood 1000 --json "$OUT/$run/eval-$stage.json" > "$OUT/$run/eval-$stage.txt" 2>&1 &
  done
done
wait
echo "evaluation done after $(( $(date +%s) - start )) s"
for run in long short nocot pause; do
  echo "== $run"; grep -h " all " "$OUT/$run"/eval-*.txt 2>/dev/null
done
echo "== tokens/s (median of the log lines, per stage)"
for run in long short nocot pause; do
  python3 - "$run" "$OUT/$run/metrics.jsonl" <<'PY' 2>/dev/null
import json, statistics, sys
by = {}
for line in open(sys.argv[2]):
    m = json.loads(line)
    if "tokens_per_s" in m:
        by.setdefault(m["stage"], []).append(m["tokens_per_s"])
print(sys.argv[1], " ".join(f"{s}:{statistics.median(v):,.0f}" for s, v in by.items()))
PY
done
grep -E "tok/s" "$OUT/torch.log" 2>/dev/null | tail -n 8
rm -f "$OUT"/*/checkpoint.safetensors.tmp
