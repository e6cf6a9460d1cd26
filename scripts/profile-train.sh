#!/usr/bin/env bash
# Where one training step's time goes: samples the train_step bench under `perf record`
# (cpu-clock, so it works in VMs without hardware counters) and sums the samples by kind of work.
# Usage: bash scripts/profile-train.sh [ENGINE...]   (default: cpu candle; stages 0 and 5)
# Needs perf (Debian: apt-get install linux-perf). The warm-up step and data generation are in
# the samples too; STEPS (default 10) timed steps keep them a small share.
set -euo pipefail
cd "$(dirname "$0")/.."
engines=("${@:-cpu}")
(($#)) || engines=(cpu candle)
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }
cargo build --release -p coconut-trainer --bench train_step --locked -q
bench=$(ls -t target/release/deps/train_step-* | grep -v '\.d$' | head -1)
dir=$(mktemp -d)
for engine in "${engines[@]}"; do
  for stage in stage0 stage5; do
    perf record -q -e cpu-clock -F 499 -o "$dir/$engine-$stage.data" \
      "$bench" --engine "$engine" --stage "$stage" --steps "${STEPS:-10}" >"$dir/$engine-$stage.json"
    perf report -i "$dir/$engine-$stage.data" --no-children --sort symbol --stdio 2>/dev/null \
      >"$dir/$engine-$stage.txt"
    python3 - "$dir/$engine-$stage.txt" "$dir/$engine-$stage.json" "$engine" "$stage" <<'PY'
import json, re, sys
report, result, engine, stage = sys.argv[1:]
kinds = [  # first match wins
    ("matmul (gemm)", lambda s, k: "gemm" in s),
    ("attention", lambda s, k: "attention" in s or "softmax" in s.lower()),
    ("GELU", lambda s, k: "gelu" in s.lower()),
    ("LayerNorm", lambda s, k: "layer_norm" in s or "LayerNorm" in s),
    ("loss", lambda s, k: "cross_entropy" in s or "log_" in s),
    ("elementwise (bias, residual, embedding)", lambda s, k: any(w in s for w in (
        "add_bias", "column_sums", "add_assign", "index_select", "binary_map", "Map1", "Map2",
        "unary_map", "affine", "copy_strided"))),
    ("optimizer", lambda s, k: "adamw" in s or "sum_of_squares" in s),
    ("page faults, kernel", lambda s, k: k == "k"),
    ("memset, memcpy, malloc", lambda s, k: any(w in s for w in ("memset", "memmove", "memcpy", "malloc", "free", "alloc"))),
    ("threads, waiting", lambda s, k: any(w in s for w in ("Barrier", "rayon", "crossbeam", "thread", "backtrace", "futex"))),
]
total = {}
for line in open(report):
    m = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    pct, kind, sym = float(m.group(1)), m.group(2), m.group(3)
    name = next((n for n, f in kinds if f(sym, kind)), "other")
    total[name] = total.get(name, 0.0) + pct
ms = json.load(open(result))["ms_per_step"]
parts = ", ".join(f"{n} {p:.0f}%" for n, p in sorted(total.items(), key=lambda x: -x[1]) if p >= 0.5)
print(f"{engine:<7} {stage:<7} {ms:7.0f} ms/step: {parts}")
PY
  done
done
rm -rf "$dir"
