#!/usr/bin/env bash
# Runs every check of the project: formatting, clippy (warnings are errors), the workspace's tests,
# and the wasm32 build of the crates the browser uses. Installs what a fresh machine lacks first.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked -- --test-threads=2

echo "== wasm32 clippy of core as the browser builds it (no tokenizers crate) and of the browser app"
cargo clippy -p coconut-core --no-default-features --target wasm32-unknown-unknown --locked -- -D warnings
cargo clippy -p coconut-web --target wasm32-unknown-unknown --locked -- -D warnings

echo "== WGSL kernels and engine in headless Chromium WebGPU"
bash shaders/browser-test.sh

echo "== the browser demo: trunk build of web/dist, then end-to-end tests in headless Chromium"
# The oracle is the debug coconut binary that cargo test built above.
WEB_BUILD=1 COCONUT="$PWD/target/debug/coconut" bash scripts/web-test.sh
