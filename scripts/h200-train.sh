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
# Usage: OUT=/some/dir BUDGET=200 bash scripts/h200-train.sh
set -u
OUT=${OUT:-$PWD/h200-out}
BUDGET=${BUDGET:-200}
LONG_EPOCHS=${LONG_EPOCHS:-3,1.5,1.5,1.5,1.5,2.5}
SHORT_EPOCHS=${SHORT_EPOCHS:-2,1,1,1,1,1.5}
BIN=${BIN:-target/cuda/coconut-cuda}
YARDSTICK=${YARDSTICK:-}
TORCH_VENV=${TORCH_VENV:-/opt/torch/.venv}
DEVICE=${DEVICE:-cuda}
EVAL_N=${EVAL_N:-5000}
EVAL_OOD=${EVAL_OOD:-1000}
mkdir -p "$OUT"
start=$(date +%s)

# Runtime CUDA libraries come from the PyTorch venv there; libcuda.so.1 is the driver's own.
LD_LIBRARY_PATH=$(ls -d "$TORCH_VENV"/lib/python3*/site-packages/nvidia/*/lib 2>/dev/null | paste -sd:):${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

train() { # name, then coconut train flags
  local name=$1; shift
  timeout -s INT -k 10 $((BUDGET + 30)) "$BIN" train --device "$DEVICE" --run-dir "$OUT/$name" \
    --time-budget "$BUDGET" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: train exit $? after $(( $(date +%s) - start )) s"
}
train long --epochs "$LONG_EPOCHS" &
train short --epochs "$SHORT_EPOCHS" &
train nocot --stages nocot --epochs 20 &
train pause --stages pause --epochs 3 &
if [ -n "$YARDSTICK" ] && [ -f "$YARDSTICK" ]; then
  timeout -s INT -k 10 $((BUDGET + 30)) "$TORCH_VENV/bin/python3" -u "$YARDSTICK" --device "$DEVICE" \
    --n-layer 4 --n-embd 128 --n-head 4 --batch-size 256 --lr 1e-3 --epochs "$LONG_EPOCHS" \
    --budget "$BUDGET" --n-test 1000 --n-ood 100 --out "$OUT/torch" > "$OUT/torch.log" 2>&1 &
fi
wait
echo "training done after $(( $(date +%s) - start )) s"

evaluate() { # run, stage, label, then --run-dir or --weights flags
  local run=$1 stage=$2 label=$3; shift 3
  timeout 60 "$BIN" eval --device "$DEVICE" --stage "$stage" --n "$EVAL_N" --n-ood "$EVAL_OOD" "$@" \
    --json "$OUT/$run/eval-$label-$stage.json" > "$OUT/$run/eval-$label-$stage.txt" 2>&1
}
# 1. f32 accuracy of every trained stage (the run's own stage files).
for run in long short nocot pause; do
  for f in "$OUT/$run"/stages/*.safetensors; do
    [ -f "$f" ] || continue
    evaluate "$run" "$(basename "$f" .safetensors)" f32 --run-dir "$OUT/$run" &
  done
done
wait
echo "f32 evaluation done after $(( $(date +%s) - start )) s"

# 2. int8 weights folders (curriculum + both baselines), then the accuracy of the int8 files,
#    which is what the manifest carries.
export_all() { # eval label
  for curriculum in long short; do
    for run in "$curriculum" nocot pause; do
      for f in "$OUT/$run"/stages/*.safetensors; do
        [ -f "$f" ] || continue
        stage=$(basename "$f" .safetensors)
        ev="$OUT/$run/eval-$1-$stage.json"
        "$BIN" export --run-dir "$OUT/$run" --stage "$stage" --format int8 \
          --out "$OUT/pack/weights-$curriculum" $( [ -f "$ev" ] && echo --eval "$ev" ) > /dev/null 2>&1
      done
    done
  done
}
export_all f32
for run in long short nocot pause; do
  folder=$OUT/pack/weights-$run
  [ "$run" = nocot ] || [ "$run" = pause ] && folder=$OUT/pack/weights-long
  for f in "$OUT/$run"/stages/*.safetensors; do
    [ -f "$f" ] || continue
    stage=$(basename "$f" .safetensors)
    evaluate "$run" "$stage" int8 --weights "$folder" &
  done
done
wait
export_all int8
echo "int8 evaluation done after $(( $(date +%s) - start )) s"

for run in long short nocot pause; do
  echo "== $run"; grep -H " all " "$OUT/$run"/eval-*.txt 2>/dev/null | sed "s|$OUT/||"
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

# What comes back: few files (the device tool returns at most 8, 16 MiB each).
( cd "$OUT/pack" && tar czf "$OUT/weights-long.tgz" weights-long 2>/dev/null; tar czf "$OUT/weights-short.tgz" weights-short 2>/dev/null )
( cd "$OUT" && tar czf "$OUT/runs.tgz" --exclude='*.safetensors' --exclude='*.tmp' long short nocot pause torch *.log gpu.txt 2>/dev/null )
rm -rf "$OUT/pack" "$OUT/long" "$OUT/short" "$OUT/nocot" "$OUT/pause" "$OUT/torch" "$OUT"/*.log "$OUT/gpu.txt"
ls -la "$OUT"
