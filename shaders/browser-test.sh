#!/usr/bin/env bash
# Runs the WGSL kernels and the engine in headless Chromium's WebGPU (SwiftShader) with
# wasm-bindgen-test: the same checks as the native tests (tests/checks), compiled to wasm32.
# Installs what is missing first (slow once per machine: wasm-bindgen-cli builds in ~10 min).
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
dpkg -s chromium >/dev/null 2>&1 || need_apt+=(chromium)
dpkg -s chromium-driver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if ((${#need_apt[@]})); then
  echo "== apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || rustup target add wasm32-unknown-unknown

# The CLI must equal the wasm-bindgen crate in Cargo.lock. Installed without --locked: its own
# lockfile pins a webpki-roots the registry mirror lacks.
version=$(grep -A1 '^name = "wasm-bindgen"$' ../Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p' | head -1)
if ! wasm-bindgen-test-runner --version 2>/dev/null | grep -q "$version"; then
  echo "== cargo install wasm-bindgen-cli@$version"
  cargo install wasm-bindgen-cli@"$version"
fi

echo "== WGSL kernels and engine in headless Chromium WebGPU"
# webdriver.json (beside this script) passes --enable-unsafe-webgpu and the offline flags.
CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver} \
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-900} \
  cargo test -p coconut-shaders --target wasm32-unknown-unknown --test "${WEB_TEST:-web}" "$@"
