//! Benchmark in the browser: time per solved problem of the WGSL engine on WebGPU against the
//! reference engine compiled to wasm, on the same problems in the same page: one problem at a
//! time on the solver (one dispatch per solve) and on the per-layer path, and a batch of problems
//! in one submission; on random `<eos>`-biased weights of the default size and on the shipped
//! weights' first and all-latent stages (coupled ids, built into the test). It prints figures
//! (wasm-bindgen-test shows the console); it asserts only that every engine gave the reference's
//! answers, never a timing. Run by `shaders/browser-bench.sh`.
#![cfg(target_arch = "wasm32")]

mod checks;
mod common;

use checks::{eos_biased, problems};
use coconut_core::manifest::Manifest;
use coconut_core::reference::ReferenceModel;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::{ModelWeights, WeightDtype};
use coconut_core::{ModelConfig, Stage};
use coconut_shaders::WgpuEngine;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Problems solved one at a time on each path.
const SINGLES: usize = 10;
/// Problems of the batch (and solved one at a time by the reference engine beside it).
const BATCH: usize = 200;

#[wasm_bindgen_test]
async fn time_per_problem_in_the_browser() {
    // The shipped size, int8; `<eos>`-biased so runs end at realistic lengths.
    let weights = eos_biased(&ModelConfig::default(), 4, 3.0).convert(WeightDtype::Int8);
    for stage in [Stage::latent(0, 1, 5), Stage::latent(5, 1, 5)] {
        time_stage(&weights, &stage, "random").await;
    }
}

#[wasm_bindgen_test]
async fn time_per_problem_on_the_shipped_stages() {
    let manifest = Manifest::from_json(include_str!("../../weights/manifest.json")).unwrap();
    let files: [(&str, &[u8]); 2] = [
        ("stage0", include_bytes!("../../weights/stage0.safetensors")),
        ("stage5", include_bytes!("../../weights/stage5.safetensors")),
    ];
    for (id, bytes) in files {
        let entry = manifest.stage(id).unwrap();
        let weights = manifest.stage_weights(entry, bytes).unwrap();
        time_stage(&weights, &manifest.stage_of(entry), "shipped").await;
    }
}

/// Times one stage on every path against the reference on the same problems, and prints a line.
async fn time_stage(weights: &ModelWeights, stage: &Stage, what: &str) {
    let tokenizer = Tokenizer::new();
    let reference = ReferenceModel::new(weights);
    let mut engine = WgpuEngine::new(weights).await.expect("a WebGPU adapter");
    console_log!("adapter: {}", engine.adapter());
    let set = problems(11, BATCH);
    let start = js_sys::Date::now();
    let expected: Vec<Vec<u32>> = set
        .iter()
        .map(|p| {
            reference
                .solve(&tokenizer, p, stage, false)
                .unwrap()
                .generation
                .ids
        })
        .collect();
    let reference_ms = (js_sys::Date::now() - start) / BATCH as f64;
    let tokens = expected.iter().map(Vec::len).sum::<usize>() as f64 / BATCH as f64;
    let mut singles_ms = [0.0; 2];
    for (i, per_layer) in [false, true].into_iter().enumerate() {
        engine.use_per_layer(per_layer);
        // First use builds the path's pipelines: outside the timings.
        engine
            .solve(&tokenizer, &set[0], stage, false)
            .await
            .unwrap();
        let start = js_sys::Date::now();
        for (p, ids) in set[..SINGLES].iter().zip(&expected) {
            let s = engine.solve(&tokenizer, p, stage, false).await.unwrap();
            assert_eq!(&s.generation.ids, ids, "{} on {p}", stage.id());
        }
        singles_ms[i] = (js_sys::Date::now() - start) / SINGLES as f64;
    }
    engine.use_per_layer(false);
    engine.reset_stats();
    let start = js_sys::Date::now();
    let solved = engine.solve_batch(&tokenizer, &set, stage).await.unwrap();
    let batch_ms = (js_sys::Date::now() - start) / BATCH as f64;
    let batch_stats = engine.stats();
    for ((p, s), ids) in set.iter().zip(&solved).zip(&expected) {
        assert_eq!(&s.generation.ids, ids, "{} on {p} (batch)", stage.id());
    }
    console_log!(
        "{what} {}: {:.1} tokens/problem; reference (wasm) {:.1} ms/problem ({BATCH}); WebGPU one \
         at a time: solver {:.1} ms/problem, per-layer {:.1} ms/problem ({SINGLES}); WebGPU batch \
         of {BATCH}: {:.2} ms/problem ({} submissions, {} dispatches); batch vs reference {:.2}x, \
         solver one at a time vs reference {:.2}x, solver vs per-layer one at a time {:.2}x",
        stage.id(),
        tokens,
        reference_ms,
        singles_ms[0],
        singles_ms[1],
        batch_ms,
        batch_stats.submissions,
        batch_stats.dispatches,
        reference_ms / batch_ms,
        reference_ms / singles_ms[0],
        singles_ms[1] / singles_ms[0],
    );
}
