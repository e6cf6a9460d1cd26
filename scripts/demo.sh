#!/usr/bin/env bash
# The main job: builds the browser demo on the shipped weights (weights/) and serves it at
# http://127.0.0.1:${PORT:-8080}/ until Ctrl-C. The first run on a fresh machine installs trunk and
# wasm-bindgen-cli (about 30 min of compiling); later runs take seconds. Open the address in a
# browser with WebGPU (Chrome, Edge; others get the reference engine, with a notice).
# Extra arguments go to the server: `--mount /seed=seed-weights` serves another weights folder
# beside the page, opened with ?weights=seed/ (an imported GPT-2, say).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/web-build.sh
source scripts/apt.sh
command -v node >/dev/null || apt_install nodejs
port=${PORT:-8080}
echo "== serving web/dist at http://127.0.0.1:$port/ (Ctrl-C stops)"
exec node web/e2e/serve.mjs --root web/dist --port "$port" --host "${HOST:-127.0.0.1}" "$@"
