//! The WGSL engine reproduces the golden activations the trainer's candle model wrote for every
//! stage of the fixture weights (int8, dequantised in the shaders): the same greedy sequence, and
//! the logits within 1e-5 (relative) at every position. Runs on any wgpu adapter; in CI that is
//! lavapipe (software Vulkan). `COCONUT_GPU_TESTS=skip` skips it where no adapter exists.

use coconut_core::manifest::WeightsDir;
use coconut_core::problem::Problem;
use coconut_shaders::WgpuEngine;
use coconut_tests::{assert_matches_golden, read_golden, repo_root};

const TOLERANCE: f64 = 1e-5;

#[test]
fn wgsl_engine_matches_the_trainer_golden_runs() {
    if std::env::var("COCONUT_GPU_TESTS").as_deref() == Ok("skip") {
        eprintln!("COCONUT_GPU_TESTS=skip: not run");
        return;
    }
    let dir = repo_root().join("tests/fixtures/tiny-weights");
    let folder = WeightsDir::open(&dir).unwrap();
    let tokenizer = folder.tokenizer().unwrap();
    let golden = read_golden(&dir);
    let mut checked = 0;
    for set in &golden {
        let (_, stage, weights) = folder.stage(&set.stage).unwrap();
        let mut engine = WgpuEngine::new_blocking(&weights).unwrap();
        for run in &set.runs {
            let problem = Problem::new(run.a, run.b);
            let solution =
                coconut_shaders::block_on(engine.solve(&tokenizer, &problem, &stage, true))
                    .unwrap();
            let g = &solution.generation;
            let context = format!("{} on {problem}", set.stage);
            let logits = &g.trace.as_ref().unwrap().logits;
            assert_matches_golden(run, &g.ids, logits, TOLERANCE, &context);
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * 5);
}
