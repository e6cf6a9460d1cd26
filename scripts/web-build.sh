#!/usr/bin/env bash
# Builds the browser demo into web/dist with trunk (offline), installing what a fresh machine
# lacks first: the wasm32 target, wasm-bindgen-cli equal to Cargo.lock's wasm-bindgen (~10 min)
# trunk 0.21.14 (~20 min; 0.22 needs a newer rustc) and wasm-opt (npm binaryen, web/tools).
# Extra arguments go to `trunk build`.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || rustup target add wasm32-unknown-unknown
version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p' | head -1)
if ! wasm-bindgen --version 2>/dev/null | grep -q "$version"; then
  echo "== cargo install wasm-bindgen-cli@$version"
  # Without --locked: its own lockfile pins a webpki-roots the registry mirror lacks.
  cargo install wasm-bindgen-cli@"$version"
fi
if ! trunk --version 2>/dev/null | grep -q '0\.21\.14'; then
  echo "== cargo install trunk@0.21.14"
  cargo install --locked trunk@0.21.14
fi
# wasm-opt (Binaryen 132, the npm package: a wasm build run by Node.js) for trunk's -Oz pass.
command -v npm >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
if [ ! -x web/tools/node_modules/.bin/wasm-opt ]; then
  echo "== npm ci (web/tools: binaryen)"
  (cd web/tools && npm ci --no-audit --no-fund --loglevel=error)
fi
export PATH="$PWD/web/tools/node_modules/.bin:$PATH"
if [ ! -f weights/manifest.json ]; then
  echo "weights/manifest.json is missing: the page needs a weights folder (see weights/README.md)" >&2
  exit 1
fi

# trunk runs cargo with --offline (Trunk.toml): fetch the locked dependencies first.
cargo fetch --locked >/dev/null
echo "== trunk build --release (web/dist)"
cd web
trunk build --release "$@"
