#!/usr/bin/env bash
# Same-run speed of one optimizer step of the seed's recipe (`coconut train --init --recipe
# seed`) on a GPT-2-small-shaped stand-in (12 layers, width 768, 12 heads, 50,261 tokens, random
# weights): our CPU engine beside a PyTorch yardstick (scripts/bench_finetune_reference.py, eager
# f32, 2 threads) run batched and as the seed ran it (one micro-batch at a time, accumulated), on
# the same batches of the seed's training problems: stage 0 (32 examples in groups of 16) and the
# all-latent stage 3 (16 examples, each its own group, thoughts fed back). Runs alternate, one per
# process; prints ms per step, the ratio to the batched yardstick and the physical floor (the
# step's FLOP at this CPU's peak: cores x GHz x 32 f32 FLOP per cycle, two 256-bit FMA units).
#
# Usage: bash scripts/bench-finetune.sh [--rounds N] [--steps N] [--layers N --width N --heads N]
# The first run creates a venv (.venv-bench, ignored by git) with torch from PyPI (~3 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=2 steps=2 layers=12 width=768 heads=12
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --layers) layers=$2; shift 2 ;;
    --width) width=$2; shift 2 ;;
    --heads) heads=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
venv=${BENCH_VENV:-.venv-bench}
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  echo "== creating $venv with torch (CPU use; the PyPI wheel brings its CUDA libraries too)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch numpy
fi
cargo bench -p coconut-trainer --bench finetune_step --no-run --locked 2>&1 | grep -v '^ *Compiling' || true
bench=$(ls -t target/release/deps/finetune_step-* | grep -v '\.d$' | head -1)
shape=(--layers "$layers" --width "$width" --heads "$heads")
work=$(mktemp -d)
out="$work/rows.jsonl"
echo "== $(date -u '+%F %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
  for spec in "0 32 16" "3 16 1"; do
    read -r stage batch group <<<"$spec"
    "$bench" --stage "$stage" --batch "$batch" --group "$group" --steps "$steps" "${shape[@]}" \
      --dump "$work/batches-$stage.json"
    "$bench" --stage "$stage" --batch "$batch" --group "$group" --steps "$steps" "${shape[@]}" | tee -a "$out"
    for procedure in batched seed; do
      "$venv/bin/python" -W ignore scripts/bench_finetune_reference.py --batches "$work/batches-$stage.json" \
        --stage "$stage" --group "$group" --procedure "$procedure" "${shape[@]}" | tee -a "$out"
    done
  done
done
ghz=$(awk -F: '/cpu MHz/ {print $2 / 1000; exit}' /proc/cpuinfo)
python3 - "$out" "$(nproc)" "$ghz" "$layers" "$width" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
cores, ghz, layers, width = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
peak = cores * ghz * 1e9 * 32
by = {}
for r in rows:
    by.setdefault((r["stage"], r["impl"]), []).append(r)
print(f"\npeak {peak / 1e9:.0f} GFLOP/s ({cores} cores x {ghz:.2f} GHz x 32)")
print(f"{'stage':<6} {'implementation':<16} {'ms/step':>9} {'tokens':>7} {'peak MiB':>9} {'vs batched PyTorch':>19} {'floor ms':>9}")
for stage in sorted({s for s, _ in by}):
    ref = statistics.median(r["ms_per_step"] for r in by[(stage, "pytorch-batched")])
    rust = by[(stage, "rust-cpu")][0]
    # The step's essential FLOP (forward + backward = 3 x forward): the blocks' matrix products
    # on every token, attention over each prefix, the tied head at the target rows only.
    tokens, targets = rust["tokens_per_step"], rust["targets_per_step"]
    per_seq = tokens / rust["batch"]
    flop = 6 * 12 * layers * width**2 * tokens + 6 * layers * width * per_seq * tokens \
        + 6 * 50261 * width * targets
    floor = flop / peak * 1e3
    for (s, impl), rs in sorted(by.items()):
        if s != stage:
            continue
        ms = statistics.median(r["ms_per_step"] for r in rs)
        mib = max(r["peak_rss_mib"] or 0 for r in rs)
        print(f"{s:<6} {impl:<16} {ms:>9.0f} {rs[0]['tokens_per_step']:>7.0f} {mib:>9.0f} {ref / ms:>18.2f}x {floor:>9.0f}")
PY
rm -rf "$work"
