#!/usr/bin/env bash
# Turns trained runs into the shipped weights folder: evaluates every stage in f32 (the run's own
# stage file), exports it to int8, evaluates the int8 file, and writes weights/ with the int8
# files, tokenizer.json and manifest.json carrying the int8 accuracy and the training facts.
# A curriculum stage whose f32 file keeps the product's promise (>= 99.9% of the test problems)
# and whose int8 file does not ships in f16 instead (evaluated the same way), so quantization
# never breaks the promise.
# The evaluations (f32 and int8, JSON), the thought probes' scores and the patching and carry-flip
# measurements go to weights/eval/ for the model card, the training curves to weights/curves/.
# Usage: bash scripts/ship-weights.sh CURRICULUM_RUN NOCOT_RUN PAUSE_RUN
#   STAGES="stage0 stage2 ..." (default: every stage file of the curriculum run), EVAL_N (5000),
#   EVAL_OOD (1000), EVAL_LONGER (e.g. 6,8: also sets of 6- and 8-digit operands), EVAL_PAIRS
#   (5,6,7,8: every operand-length pair whose longer operand has those digits, EVAL_PER_PAIR (200)
#   problems each, carry chains among them; the page's notes and accepted lengths come from these), OUT (weights), BIN (target/release/coconut), JOBS (2) evaluations at once,
#   EVAL_DIR (kept evaluations: a stage whose f32 and int8 JSON are there is not evaluated again;
#   EVAL_ONLY=1 stops after evaluating, e.g. to evaluate the curriculum while baselines train).
set -euo pipefail
cd "$(dirname "$0")/.."
curriculum=$1 nocot=$2 pause=$3
BIN=${BIN:-target/release/coconut}
OUT=${OUT:-weights}
EVAL_N=${EVAL_N:-5000}
EVAL_OOD=${EVAL_OOD:-1000}
JOBS=${JOBS:-2}
longer=()
[ -n "${EVAL_LONGER:-}" ] && longer=(--longer "$EVAL_LONGER")
longer+=(--pairs "${EVAL_PAIRS:-5,6,7,8}" --n-per-pair "${EVAL_PER_PAIR:-200}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
evals=${EVAL_DIR:-$work/eval}

jobs_list=()
stages=${STAGES:-$(ls "$curriculum"/stages/ | sed -n 's/^\(stage[0-9]*\)\.safetensors$/\1/p' | sort -V)}
for s in $stages; do jobs_list+=("$curriculum $s"); done
# "-" leaves a baseline out (only with EVAL_ONLY=1: the folder must have both).
[ "$nocot" = - ] || jobs_list+=("$nocot nocot")
[ "$pause" = - ] || jobs_list+=("$pause pause")

evaluate() { # run stage
  local run=$1 stage=$2
  if [ -f "$evals/f32-$stage.json" ] && [ -f "$evals/int8-$stage.json" ]; then return; fi
  "$BIN" eval --run-dir "$run" --stage "$stage" --n "$EVAL_N" --n-ood "$EVAL_OOD" "${longer[@]}" \
    --json "$evals/f32-$stage.json" > "$evals/f32-$stage.txt"
  "$BIN" export --run-dir "$run" --stage "$stage" --format int8 --out "$work/int8-$stage" > /dev/null
  "$BIN" eval --weights "$work/int8-$stage" --stage "$stage" \
    --n "$EVAL_N" --n-ood "$EVAL_OOD" "${longer[@]}" --json "$evals/int8-$stage.json" > "$evals/int8-$stage.txt"
  echo "$stage: $(grep ' test  *all ' "$evals/f32-$stage.txt" | awk '{print "f32 greedy " $5 "%"}'), $(grep ' test  *all ' "$evals/int8-$stage.txt" | awk '{print "int8 greedy " $5 "% (n=" $4 ")"}')"
}
greedy() { grep ' test  *all ' "$1" | awk '{print $5}'; }
# The format a stage ships in (see the top): int8, or f16 where int8 alone breaks the promise.
ship_dtype() { # run stage
  local run=$1 stage=$2
  case $stage in stage*) ;; *) echo int8; return ;; esac
  if awk -v f="$(greedy "$evals/f32-$stage.txt")" -v q="$(greedy "$evals/int8-$stage.txt")" \
    'BEGIN { exit !(f >= 99.9 && q < 99.9) }'; then
    if [ ! -f "$evals/f16-$stage.json" ]; then
      "$BIN" export --run-dir "$run" --stage "$stage" --format f16 --out "$work/f16-$stage" > /dev/null
      "$BIN" eval --weights "$work/f16-$stage" --stage "$stage" \
        --n "$EVAL_N" --n-ood "$EVAL_OOD" "${longer[@]}" --json "$evals/f16-$stage.json" > "$evals/f16-$stage.txt"
    fi
    echo "$stage: int8 below 99.9%, ships in f16 ($(greedy "$evals/f16-$stage.txt")%)" >&2
    echo f16
  else
    echo int8
  fi
}
mkdir -p "$evals"
running=0
for job in "${jobs_list[@]}"; do
  evaluate $job &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
[ "${EVAL_ONLY:-0}" = 1 ] && exit 0

dtypes=()
for job in "${jobs_list[@]}"; do dtypes+=("$(ship_dtype $job)"); done
# The folder is assembled apart (export refuses a folder of other files without a manifest, and
# a failure here leaves $OUT as it was), then only what this script writes is replaced in $OUT:
# its README.md and eval/'s subfolders hold the model card and the experiments' figures.
folder=$work/folder
mkdir -p "$folder"
i=0
for job in "${jobs_list[@]}"; do
  set -- $job
  dtype=${dtypes[$i]}
  i=$((i + 1))
  "$BIN" export --run-dir "$1" --stage "$2" --format "$dtype" --eval "$evals/$dtype-$2.json" --out "$folder" > /dev/null
done
mkdir -p "$folder/eval"
cp "$evals"/*.json "$folder/eval/"
# The thoughts' probes (digit and carry per column, f16), listed in the manifest for the page and
# `coconut intervene`; fitted on 5,000 training problems, scored on 5,000 held-out ones.
"$BIN" probe --weights "$folder" --ship --json "$folder/eval/probes.json" > "$folder/eval/probes.txt"
# What the thoughts do (weights/README.md, "What the thoughts hold"): patching each thought from
# another problem's, and flipping each column's carry probe, on 1,000 held-out problems per stage.
# The page shows a flip's measured effect from flips.json.
"$BIN" intervene --weights "$folder" --measure 1000 --measure-json "$folder/eval/patching.json" \
  > "$folder/eval/patching.txt"
"$BIN" intervene --weights "$folder" --measure-flips 1000 --measure-json "$folder/eval/flips.json" \
  > "$folder/eval/flips.txt"
rm -rf "$OUT"/*.safetensors "$OUT"/manifest.json "$OUT"/tokenizer.json "$OUT"/eval/*.json "$OUT"/eval/*.txt "$OUT"/curves/*.svg
mkdir -p "$OUT/eval" "$OUT/curves"
cp -r "$folder"/. "$OUT"/
"$BIN" plot --run-dir "$curriculum" --out "$OUT/curves/curriculum.svg" > /dev/null
"$BIN" plot --run-dir "$nocot" --out "$OUT/curves/nocot.svg" > /dev/null
"$BIN" plot --run-dir "$pause" --out "$OUT/curves/pause.svg" > /dev/null
du -sh "$OUT"
