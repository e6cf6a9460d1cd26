#!/usr/bin/env bash
# The reference engine at the seed's size (issue 31; BENCHMARKS.md, "The seed's size"): a
# GPT-2-large-shaped checkpoint with random weights (scripts/seed_large.py, 3.1 GB, not
# committed) imported as int8 and f32, decoded by core/examples/reference_speed.rs beside
# transformers on the same CPU (scripts/bench_seed_speed.py), in one run, alternating so that
# a busy machine slows both. Each line of output is one JSON measurement.
#
#   scripts/bench-seed-speed.sh [WORK_DIR] [POSITIONS]
#
# The first run creates .venv-bench (ignored by git) with torch and transformers from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/seed-speed}
positions=${2:-24}
python=.venv-bench/bin/python
if ! "$python" -c 'import torch, transformers' 2>/dev/null; then
  echo "== creating .venv-bench with torch and transformers" >&2
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install -q torch==2.10.0 transformers==4.44.2
fi

cargo build --release -q -p coconut -p coconut-core --example reference_speed
mkdir -p "$work"
[ -f "$work/hf/model.safetensors" ] || "$python" scripts/seed_large.py --out "$work/hf" >&2
for dtype in int8 f32; do
  [ -f "$work/$dtype/manifest.json" ] || target/release/coconut import --hf "$work/hf" \
    --stage stage3 --n-head 20 --dtype "$dtype" --out "$work/$dtype" >&2
done
for round in 1 2; do
  echo "# round $round, $(date -u +%FT%TZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
  target/release/examples/reference_speed "$work/int8" stage3 "$positions"
  "$python" -W ignore scripts/bench_seed_speed.py "$work/hf" --positions "$positions"
  target/release/examples/reference_speed "$work/f32" stage3 "$positions"
done
