//! The same kernel checks as `kernels.rs` and the engine-vs-reference comparison (one at a time
//! on both paths, and batches), in the browser:
//! headless Chromium's WebGPU (SwiftShader) through wasm-bindgen-test. Run by
//! `shaders/browser-test.sh`.
#![cfg(target_arch = "wasm32")]

mod checks;
mod common;

use checks::*;
use coconut_core::weights::{random_weights, WeightDtype};
use coconut_shaders::{Gpu, GpuOptions};
use std::sync::Arc;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn gpu() -> Gpu {
    Gpu::new(&GpuOptions::default())
        .await
        .expect("a WebGPU adapter: run Chromium with --enable-unsafe-webgpu (see webdriver.json)")
}

#[wasm_bindgen_test]
async fn kernels_match_the_cpu_reference_in_webgpu() {
    let gpu = gpu().await;
    assert!(
        gpu.adapter.backend.contains("BrowserWebGpu"),
        "{}",
        gpu.adapter
    );
    embedding(&gpu).await;
    layer_norm(&gpu).await;
    products(&gpu).await;
    attention(&gpu).await;
    lm_head(&gpu).await;
    argmax(&gpu).await;
}

#[wasm_bindgen_test]
async fn engine_matches_the_reference_in_webgpu() {
    #[allow(clippy::arc_with_non_send_sync)]
    let gpu = Arc::new(gpu().await);
    let cfg = small_config();
    let mut tally = Tally::default();
    let int8 = random_weights(&cfg, 2).convert(WeightDtype::Int8);
    engine_parity(gpu.clone(), &int8, 1, 3, &mut tally).await;
    let eos = eos_biased(&cfg, 4, 3.0).convert(WeightDtype::Int8);
    engine_parity(gpu, &eos, 2, 3, &mut tally).await;
    assert!(tally.finished > 0 && tally.unfinished > 0, "{tally:?}");
}
