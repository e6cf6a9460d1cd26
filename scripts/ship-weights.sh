#!/usr/bin/env bash
# Turns trained runs into the shipped weights folder: evaluates every stage in f32 (the run's own
# stage file), exports it to int8, evaluates the int8 file, and writes weights/ with the int8
# files, tokenizer.json and manifest.json carrying the int8 accuracy and the training facts.
# The evaluations (f32 and int8, JSON) go to weights/eval/ for the model card, the training
# curves to weights/curves/.
# Usage: bash scripts/ship-weights.sh CURRICULUM_RUN NOCOT_RUN PAUSE_RUN
#   STAGES="stage0 stage2 ..." (default: every stage file of the curriculum run), EVAL_N (5000),
#   EVAL_OOD (1000), OUT (weights), BIN (target/release/coconut), JOBS (2) evaluations at once.
set -euo pipefail
cd "$(dirname "$0")/.."
curriculum=$1 nocot=$2 pause=$3
BIN=${BIN:-target/release/coconut}
OUT=${OUT:-weights}
EVAL_N=${EVAL_N:-5000}
EVAL_OOD=${EVAL_OOD:-1000}
JOBS=${JOBS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

jobs_list=()
stages=${STAGES:-$(ls "$curriculum"/stages/ | sed -n 's/^\(stage[0-9]*\)\.safetensors$/\1/p' | sort -V)}
for s in $stages; do jobs_list+=("$curriculum $s"); done
jobs_list+=("$nocot nocot" "$pause pause")

evaluate() { # run stage
  local run=$1 stage=$2
  "$BIN" eval --run-dir "$run" --stage "$stage" --n "$EVAL_N" --n-ood "$EVAL_OOD" \
    --json "$work/eval/f32-$stage.json" > "$work/eval/f32-$stage.txt"
  "$BIN" export --run-dir "$run" --stage "$stage" --format int8 --out "$work/int8-$stage" > /dev/null
  "$BIN" eval --weights "$work/int8-$stage/$stage.safetensors" --config "$run/config.json" --stage "$stage" \
    --n "$EVAL_N" --n-ood "$EVAL_OOD" --json "$work/eval/int8-$stage.json" > "$work/eval/int8-$stage.txt"
  echo "$stage: $(grep ' test  *all ' "$work/eval/f32-$stage.txt" | awk '{print "f32 greedy " $5 "%"}'), $(grep ' test  *all ' "$work/eval/int8-$stage.txt" | awk '{print "int8 greedy " $5 "% (n=" $4 ")"}')"
}
mkdir -p "$work/eval"
running=0
for job in "${jobs_list[@]}"; do
  evaluate $job &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait

rm -rf "$OUT"/*.safetensors "$OUT"/manifest.json "$OUT"/tokenizer.json "$OUT"/eval "$OUT"/curves
mkdir -p "$OUT/eval" "$OUT/curves"
for job in "${jobs_list[@]}"; do
  set -- $job
  "$BIN" export --run-dir "$1" --stage "$2" --format int8 --eval "$work/eval/int8-$2.json" --out "$OUT" > /dev/null
done
cp "$work"/eval/*.json "$OUT/eval/"
"$BIN" plot --run-dir "$curriculum" --out "$OUT/curves/curriculum.svg" > /dev/null
"$BIN" plot --run-dir "$nocot" --out "$OUT/curves/nocot.svg" > /dev/null
"$BIN" plot --run-dir "$pause" --out "$OUT/curves/pause.svg" > /dev/null
du -sh "$OUT"
