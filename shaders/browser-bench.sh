#!/usr/bin/env bash
# Times the WGSL engine against the reference engine (wasm) in headless Chromium's WebGPU and
# prints the figures (shaders/tests/web_bench.rs); same set-up as browser-test.sh.
set -euo pipefail
WEB_TEST=web_bench exec bash "$(dirname "$0")/browser-test.sh" -- --nocapture
