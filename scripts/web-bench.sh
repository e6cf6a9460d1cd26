#!/usr/bin/env bash
# Browser benchmark of the page (web/e2e/bench.mjs): page weight, time to first answer and
# per-problem time for each engine, in headless Debian Chromium; same set-up as web-test.sh.
#   bash scripts/web-bench.sh                                  # JSON to web-bench.json
#   bash scripts/web-bench.sh --out bench.json --runs 5 --n 50 # other options: see bench.mjs --help
set -euo pipefail
WEB_E2E_RUN=bench exec bash "$(dirname "$0")/web-test.sh" "$@"
