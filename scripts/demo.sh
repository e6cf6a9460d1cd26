#!/usr/bin/env bash
# The main job. Until the browser demo and trained weights ship, the best runnable thing:
# how the curriculum lays out a problem, stage by stage (pass a problem, e.g. "999 + 1").
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p coconut-core --example layouts -- "${@:-347 + 285}"
