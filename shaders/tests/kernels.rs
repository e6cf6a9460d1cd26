//! Each WGSL kernel against a CPU reference (f64, on the dequantized weights for int8), on fresh
//! random inputs and several shapes, outputs poisoned with NaN before each run:
//! ‖out − ref‖ / ‖ref‖ < 1e-5. Natively on the default adapter (lavapipe in CI); the same checks
//! run in headless Chromium's WebGPU from `web.rs`. The checks live in `checks/mod.rs`.
#![cfg(not(target_arch = "wasm32"))]

mod checks;
mod common;

use common::gpu;

#[test]
fn embedding_lookup_tokens_and_thoughts() {
    let Some(gpu) = gpu() else { return };
    pollster::block_on(checks::embedding(&gpu));
}

#[test]
fn layer_norm_rows() {
    let Some(gpu) = gpu() else { return };
    pollster::block_on(checks::layer_norm(&gpu));
}

#[test]
fn matrix_vector_and_matrix_matrix_products() {
    let Some(gpu) = gpu() else { return };
    pollster::block_on(checks::products(&gpu));
}

#[test]
fn causal_attention_over_the_cache() {
    let Some(gpu) = gpu() else { return };
    pollster::block_on(checks::attention(&gpu));
}

#[test]
fn lm_head_logits() {
    let Some(gpu) = gpu() else { return };
    pollster::block_on(checks::lm_head(&gpu));
}

#[test]
fn argmax_takes_the_first_of_the_largest() {
    let Some(gpu) = gpu() else { return };
    pollster::block_on(checks::argmax(&gpu));
}
