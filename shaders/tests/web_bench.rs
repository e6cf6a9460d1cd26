//! Benchmark in the browser: time per solved problem of the WGSL engine on WebGPU against the
//! reference engine compiled to wasm, on the same problems in the same page, and dispatches per
//! position. It prints figures (wasm-bindgen-test shows the console); it asserts only that both
//! engines gave the same answers, never a timing. Run by `shaders/browser-bench.sh`.
#![cfg(target_arch = "wasm32")]

mod checks;
mod common;

use checks::{eos_biased, problems};
use coconut_core::reference::ReferenceModel;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::WeightDtype;
use coconut_core::{ModelConfig, Stage};
use coconut_shaders::WgpuEngine;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const PROBLEMS: usize = 10;

#[wasm_bindgen_test]
async fn time_per_problem_in_the_browser() {
    // The shipped size, int8; `<eos>`-biased so runs end at realistic lengths.
    let weights = eos_biased(&ModelConfig::default(), 4, 3.0).convert(WeightDtype::Int8);
    let tokenizer = Tokenizer::new();
    let reference = ReferenceModel::new(&weights);
    let mut engine = WgpuEngine::new(&weights).await.expect("a WebGPU adapter");
    console_log!("adapter: {}", engine.adapter());
    for stage in [Stage::latent(0, 1, 5), Stage::latent(5, 1, 5)] {
        let set = problems(11, PROBLEMS);
        let start = js_sys::Date::now();
        let mut expected = Vec::new();
        for p in &set {
            expected.push(
                reference
                    .solve(&tokenizer, p, &stage, false)
                    .unwrap()
                    .generation
                    .ids,
            );
        }
        let reference_ms = (js_sys::Date::now() - start) / PROBLEMS as f64;
        engine.reset_stats();
        let start = js_sys::Date::now();
        let mut positions = 0;
        for (p, ids) in set.iter().zip(&expected) {
            let s = engine.solve(&tokenizer, p, &stage, false).await.unwrap();
            assert_eq!(&s.generation.ids, ids, "{} on {p}", stage.id());
            positions += ids.len();
        }
        let wgsl_ms = (js_sys::Date::now() - start) / PROBLEMS as f64;
        let stats = engine.stats();
        console_log!(
            "{}: {PROBLEMS} problems, {:.1} tokens each; reference (wasm) {:.1} ms/problem; \
             WGSL (WebGPU) {:.1} ms/problem; ratio {:.1}x; {:?}",
            stage.id(),
            positions as f64 / PROBLEMS as f64,
            reference_ms,
            wgsl_ms,
            wgsl_ms / reference_ms,
            stats
        );
    }
}
