#!/usr/bin/env bash
# Fuzzes the readers of outside input (core/tests/fuzz.rs: the problem parser, manifest.json and
# the safetensors header; cli/src/args_fuzz.rs: the argument parser of every `coconut` command)
# for a bounded time, in rounds of PROPTEST_CASES cases per property, each round with fresh random
# seeds. Not part of CI (there each property runs 48 cases).
#   bash scripts/fuzz.sh              # 10 minutes, 20,000 cases per property per round
#   bash scripts/fuzz.sh 60 2000      # one minute, 2,000 cases per round
# A failure stops the script; proptest prints the minimal failing input and saves its seed under
# core/proptest-regressions/ (cli/proptest-regressions/) so that `cargo test -p coconut-core --test
# fuzz` (`cargo test -p coconut --bin coconut args_fuzz`) replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
cases="${2:-20000}"
cargo test --release -p coconut-core --test fuzz --no-run
cargo test --release -p coconut --bin coconut --no-run

deadline=$((SECONDS + seconds))
rounds=0
started=$SECONDS
while ((SECONDS < deadline)); do
  if ! log=$(PROPTEST_CASES="$cases" cargo test --release -q -p coconut-core --test fuzz 2>&1 &&
    PROPTEST_CASES="$cases" cargo test --release -q -p coconut --bin coconut args_fuzz 2>&1); then
    echo "$log"
    echo "fuzz: a property failed in round $((rounds + 1)) (see above)" >&2
    exit 1
  fi
  rounds=$((rounds + 1))
  echo "round $rounds: $cases cases per property passed ($((SECONDS - started)) s so far)"
done
elapsed=$((SECONDS - started))
echo "fuzz: $rounds rounds, $((rounds * cases)) cases per property in ${elapsed} s, no panic"
