#!/usr/bin/env bash
# Installs what the project needs and a fresh machine lacks; fast when everything is there.
set -euo pipefail

need_apt=()
# lavapipe (software Vulkan) for the WGSL engine's native tests.
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
dpkg -s libvulkan1 >/dev/null 2>&1 || need_apt+=(libvulkan1)
source "$(dirname "$0")/apt.sh"
apt_install ${need_apt[@]+"${need_apt[@]}"}

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || rustup target add wasm32-unknown-unknown
