//! Each WGSL kernel against a CPU reference (f64, on the dequantized weights for int8), on fresh
//! random inputs and several shapes, outputs poisoned with NaN before each run:
//! ‖out − ref‖ / ‖ref‖ < 1e-5. Natively on the default adapter (lavapipe in CI); the same checks
//! run in headless Chromium's WebGPU from `web.rs`. The checks live in `checks/mod.rs`.
#![cfg(not(target_arch = "wasm32"))]

mod checks;
mod common;

use common::gpu;

/// One `#[test]` per check, each on the shared test device (skipped as `common::gpu` says).
macro_rules! kernel_tests {
    ($($name:ident => $check:path,)*) => {$(
        #[test]
        fn $name() {
            let Some(gpu) = gpu() else { return };
            pollster::block_on($check(&gpu));
        }
    )*};
}

kernel_tests! {
    embedding_lookup_tokens_and_thoughts => checks::embedding,
    layer_norm_rows => checks::layer_norm,
    matrix_vector_and_matrix_matrix_products => checks::products,
    causal_attention_over_the_cache => checks::attention,
    lm_head_logits => checks::lm_head,
    argmax_takes_the_first_of_the_largest => checks::argmax,
}
