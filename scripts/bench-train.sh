#!/usr/bin/env bash
# Same-run training-speed comparison on this machine: one optimizer step at batch 256 on the
# shipped model size (4 layers, width 128, 4 heads), at stage 0 (everything written) and at the
# all-latent stage, for our CPU engine, the candle path it replaced (optional) and the independent
# PyTorch yardstick (CPU, 2 threads). Runs alternate, each in its own process (peak memory is
# per process), and print ms per step and the ratio to PyTorch.
# The yardstick is an independent one-file PyTorch implementation of this curriculum (torch and
# numpy only), kept outside this repository on purpose: YARDSTICK=PATH/coconut_ref.py names it,
# and scripts/bench_train_reference.py drives it without copying any of it. Without YARDSTICK the
# script tries the copy the development machines keep beside the checkout, and stops with a
# message when there is none.
#
# Usage: bash scripts/bench-train.sh [--rounds N] [--steps N] [--batch N] [--candle]
# The first run creates a venv (.venv-bench, ignored by git) with torch from PyPI (~3 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=2 steps=6 batch=256 candle=0
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --candle) candle=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
yardstick=${YARDSTICK:-$(dirname "$PWD")/shared/tools/coconut_ref.py}
[ -f "$yardstick" ] || { echo "no yardstick at $yardstick: set YARDSTICK= to the PyTorch yardstick's coconut_ref.py" >&2; exit 1; }
venv=${BENCH_VENV:-.venv-bench}
if ! "$venv/bin/python" -c 'import torch, numpy' 2>/dev/null; then
  echo "== creating $venv with torch (CPU use; the PyPI wheel brings its CUDA libraries too)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch numpy
fi
cargo build --release -p coconut-trainer --bench train_step --locked -q 2>/dev/null || cargo bench -p coconut-trainer --bench train_step --no-run --locked
bench=$(ls -t target/release/deps/train_step-* | grep -v '\.d$' | head -1)

out=$(mktemp)
echo "== $(date -u '+%F %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
  for stage in 0 5; do
    "$bench" --engine cpu --stage "stage$stage" --batch "$batch" --steps "$steps" | tee -a "$out"
    "$venv/bin/python" -W ignore scripts/bench_train_reference.py --yardstick "$yardstick" \
      --stage "$stage" --batch "$batch" --steps "$steps" --threads 2 | tee -a "$out"
    if ((candle)); then
      "$bench" --engine candle --stage "stage$stage" --batch "$batch" --steps "$steps" | tee -a "$out"
    fi
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault((r["stage"], r["impl"]), []).append(r)
print(f"\n{'stage':<8} {'implementation':<12} {'ms/step':>9} {'tokens/step':>12} {'peak MiB':>9} {'vs PyTorch':>11}")
for stage in sorted({s for s, _ in by}):
    ref = statistics.median(r["ms_per_step"] for r in by[(stage, "pytorch")])
    for (s, impl), rs in sorted(by.items()):
        if s != stage:
            continue
        ms = statistics.median(r["ms_per_step"] for r in rs)
        peak = max(r["peak_rss_mib"] or 0 for r in rs)
        tokens = rs[0]["tokens_per_step"]
        print(f"{stage:<8} {impl:<12} {ms:>9.0f} {tokens:>12.0f} {peak:>9.0f} {ref / ms:>10.2f}x")
PY
rm -f "$out"
