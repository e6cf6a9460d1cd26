#!/usr/bin/env bash
# End-to-end tests of the browser page (web/e2e/*.test.mjs, node's test runner + playwright-core)
# in headless Debian Chromium with WebGPU (SwiftShader).
# Installs what is missing (chromium, Node.js, web/e2e/node_modules via npm ci, the coconut CLI the
# tests compare against), builds web/dist when it has no index.html, serves it with
# web/e2e/serve.mjs on a free port (the fixture weights at /fixture-weights/), runs the tests and
# stops the server. Exits non-zero when a test fails.
#
#   bash scripts/web-test.sh                         # every test file
#   bash scripts/web-test.sh web/e2e/input.test.mjs  # some files (extra arguments go to node --test)
#   WEB_BUILD=1 bash scripts/web-test.sh             # rebuild web/dist first
#   WEB_DIST=DIR bash scripts/web-test.sh            # test a page built elsewhere (never built here)
# Knobs: E2E_PROBLEMS / E2E_GPU_PROBLEMS (problems per stage, reference / WebGPU; 8 / 4),
# E2E_TIMEOUT_MS (one wait on the page), COCONUT (the CLI), CHROMIUM (the browser).
# WEB_E2E_RUN=bench runs web/e2e/bench.mjs instead (that is scripts/web-bench.sh);
# WEB_E2E_RUN=measure-scale runs web/e2e/measure-scale.mjs (the page's patching measurement over
# 1,000 pairs against the model card's, MEASURE_STAGE / MEASURE_PAIRS).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# --- what a fresh machine lacks
need_apt=()
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
source scripts/apt.sh
apt_install ${need_apt[@]+"${need_apt[@]}"}
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "web-test: Node.js $(node --version) is too old: playwright-core needs 20 or newer" >&2
  exit 1
fi

# playwright-core (never `npx playwright install`: the browser is Debian's chromium) and axe-core,
# at the lockfile's versions.
stale=
for pkg in playwright-core axe-core; do
  pinned=$(node -p "require('./web/e2e/package-lock.json').packages['node_modules/$pkg'].version")
  have=$(node -p "try { require('./web/e2e/node_modules/$pkg/package.json').version } catch { '' }")
  [ "$have" = "$pinned" ] || stale+=" $pkg@$pinned"
done
if [ -n "$stale" ]; then
  echo "== npm ci (web/e2e:$stale)"
  (cd web/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

# The oracle the page is compared with.
export COCONUT=${COCONUT:-$repo/target/release/coconut}
if [ ! -x "$COCONUT" ]; then
  echo "== cargo build --release -p coconut (the coconut CLI)"
  cargo build --release -p coconut --locked
fi

# --- the page
dist=$(realpath -m "${WEB_DIST:-web/dist}")
if [ -z "${WEB_DIST:-}" ] && { [ "${WEB_BUILD:-0}" = 1 ] || [ ! -f web/dist/index.html ]; }; then
  if [ -f scripts/web-build.sh ]; then
    echo "== bash scripts/web-build.sh"
    bash scripts/web-build.sh
  elif command -v trunk >/dev/null 2>&1; then
    echo "== trunk build --release (web/)"
    (cd web && trunk build --release)
  else
    echo "web-test: web/dist/index.html is missing and neither scripts/web-build.sh nor trunk is there to build it" >&2
    exit 1
  fi
fi
[ -f "$dist/index.html" ] || { echo "web-test: no $dist/index.html" >&2; exit 1; }

# --- serve it on a free port
log=$(mktemp)
node web/e2e/serve.mjs --quiet --port 0 --root "$dist" --mount /fixture-weights=tests/fixtures/tiny-weights >"$log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -f "$log"' EXIT
url=
for _ in $(seq 1 100); do
  url=$(sed -n 's/^serving .* at \(http[^ ]*\)$/\1/p' "$log")
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "web-test: serve.mjs did not start:" >&2
  cat "$log" >&2
  exit 1
fi
echo "== serving $dist at $url (fixture weights at ${url}fixture-weights/)"

export E2E_BASE_URL=$url E2E_DIST=$dist
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
start=$(date +%s)
if [ "${WEB_E2E_RUN:-test}" = bench ]; then
  echo "== web/e2e/bench.mjs"
  node web/e2e/bench.mjs --url "$url" "$@"
elif [ "${WEB_E2E_RUN:-test}" = measure-scale ]; then
  echo "== web/e2e/measure-scale.mjs"
  node web/e2e/measure-scale.mjs
else
  echo "== node --test web/e2e ($("$CHROMIUM" --version 2>/dev/null | head -1))"
  # The test files unless some were named.
  files=(web/e2e/*.test.mjs)
  for arg in "$@"; do [[ $arg == *.mjs ]] && files=(); done
  node --test --test-concurrency=1 "${files[@]}" "$@"
fi
echo "web-test: finished in $(( $(date +%s) - start )) s"
