#!/usr/bin/env bash
# Runs ON an NVIDIA (H200) machine, from the repository root: the seed's size on a GPU, in one
# script with one time budget, every result in $OUT/results.tgz (the device tool brings back at
# most 8 files) and the log beside it (BENCHMARKS.md, "On an NVIDIA H200"). No Rust and no network there: it takes the binaries prepared here (DEV=.device):
#   $DEV/coconut-cuda.xz     `coconut` built with --features cuda (scripts/cuda-build.sh), xz'd
#   $DEV/reference_speed.xz  core/examples/reference_speed (release, CPU), xz'd
#   $DEV/batches-0.json, $DEV/batches-3.json
#                            the seed's training batches (`finetune_step --dump`), the same for
#                            the PyTorch yardstick as for ours
#   .gl/*.deb                the Vulkan loader (the device notes' recipe) for the WGSL engine
# Parts, each with its own timeout, skipped once the budget is spent:
#   1. a GPT-2-large-shaped checkpoint with random weights (scripts/seed_large.py), imported as
#      f32 and int8 folders;
#   2. fine-tuning speed (the seed's recipe, stages 0 and 3): `coconut train --init --device cuda`
#      beside scripts/bench_finetune_reference.py on cuda (batched, and the seed's procedure);
#      peak GPU memory of each, and of ours with --micro-batch 1 (the 24 GB question);
#   3. decoding: the reference engine (16 cores) per token beside its bandwidth floor; the WGSL
#      engine (Vulkan on the H200) beside the reference on the seed-size int8 folder and on the
#      shipped stages.
# Usage: OUT=/some/dir BUDGET=540 bash scripts/h200-seed.sh
# (LAYERS=2 WIDTH=64 HEADS=2 DEVICE=cpu: a small dry run of the script itself, on any machine.)
set -u
OUT=${OUT:-$PWD/h200-seed-out}
BUDGET=${BUDGET:-540}
DEV=${DEV:-.device}
TORCH_VENV=${TORCH_VENV:-/opt/torch/.venv}
PY=${PY:-$TORCH_VENV/bin/python3}
[ -x "$PY" ] || PY=python3
LAYERS=${LAYERS:-36} WIDTH=${WIDTH:-1280} HEADS=${HEADS:-20} DEVICE=${DEVICE:-cuda}
# Results gather here and travel as one archive.
FINAL=$OUT
OUT=$(mktemp -d)
mkdir -p "$FINAL"
trap 'tar czf "$FINAL/results.tgz" -C "$OUT" . ; cp "$OUT/log.txt" "$FINAL/" 2>/dev/null' EXIT
start=$(date +%s)
log() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$OUT/log.txt"; }
left() { echo $(( BUDGET - ($(date +%s) - start) )); }
# part NAME SECONDS CMD...: runs CMD with at most SECONDS (fewer if the budget is nearly spent).
part() {
  local name=$1 limit=$2; shift 2
  local l; l=$(left)
  if (( l < 15 )); then log "$name: skipped (budget spent)"; return 1; fi
  (( limit > l )) && limit=$l
  log "$name: start (limit $limit s)"
  timeout -k 5 "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  log "$name: exit $rc"
  return $rc
}

for f in "${GL:-.gl}"/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done
ldconfig 2>/dev/null
# The NVIDIA Vulkan driver where the loader would not find it on its own.
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
LD_LIBRARY_PATH=$(ls -d "$TORCH_VENV"/lib/python3*/site-packages/nvidia/*/lib 2>/dev/null | paste -sd:):${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1
nproc >> "$OUT/gpu.txt"
mkdir -p /tmp/bin
xz -dc "$DEV/coconut-cuda.xz" > /tmp/bin/coconut && chmod +x /tmp/bin/coconut
xz -dc "$DEV/reference_speed.xz" > /tmp/bin/reference_speed && chmod +x /tmp/bin/reference_speed
BIN=/tmp/bin/coconut
"$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' >> "$OUT/gpu.txt" 2>&1

# --- 1. the checkpoint and its folders
part large 120 "$PY" scripts/seed_large.py --out /tmp/large --n-layer "$LAYERS" --n-embd "$WIDTH" \
  --n-head "$HEADS" || exit 0
part import-f32 120 "$BIN" import --hf /tmp/large --stage stage0 --dtype f32 --out /tmp/large-f32 &
part import-int8 120 "$BIN" import --hf /tmp/large --stage stage3 --dtype int8 --out /tmp/large-int8 &
wait

# Peak GPU memory of whatever runs while it is polled (MiB, the card's whole use).
poll() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$OUT/$1.mem" 2>/dev/null & echo $!; }

# --- 2. fine-tuning speed and memory
ours() { # name, stage, steps, extra flags
  local name=$1 stage=$2 steps=$3; shift 3
  local p; p=$(poll "$name")
  part "$name" 120 "$BIN" train --init /tmp/large-f32 --recipe seed --device "$DEVICE" --stages "$stage" \
    --steps "$steps" --run-dir "/tmp/runs/$name" "$@"
  kill "$p" 2>/dev/null
  cp "/tmp/runs/$name/metrics.jsonl" "$OUT/$name.metrics.jsonl" 2>/dev/null
}
ours ours-s0 0 5
ours ours-s3 3 4
ours ours-s0-micro1 0 3 --micro-batch 1
for spec in "0 16" "3 1"; do
  read -r stage group <<<"$spec"
  for procedure in batched seed; do
    part "torch-s$stage-$procedure" 120 "$PY" -W ignore scripts/bench_finetune_reference.py --device "$DEVICE" \
      --batches "$DEV/batches-$stage.json" --stage "$stage" --group "$group" --procedure "$procedure" \
      --layers "$LAYERS" --width "$WIDTH" --heads "$HEADS" --threads "$(nproc)"
  done
done

# --- 3. decoding
part reference-speed-int8 60 /tmp/bin/reference_speed /tmp/large-int8 stage3 24
printf '%s\n' "347 + 285" "1234 + 5678" "99 + 11" "4821 + 3079" > /tmp/problems.txt
for engine in reference wgpu; do
  part "seed-solve-$engine" 90 bash -c "time $BIN solve --weights /tmp/large-int8 --stage stage3 --json --engine $engine < /tmp/problems.txt"
done
"$PY" - > /tmp/shipped.txt <<'PY'
import random
random.seed(7)
for _ in range(200):
    d = random.randint(1, 6)
    print(random.randrange(10 ** (d - 1) if d > 1 else 0, 10 ** d), "+", random.randrange(0, 10 ** random.randint(1, d)))
PY
for stage in 0 5; do
  for engine in reference wgpu; do
    part "shipped-s$stage-$engine" 60 bash -c "time $BIN solve --weights weights --stage $stage --json --engine $engine < /tmp/shipped.txt"
  done
done
log "done"
