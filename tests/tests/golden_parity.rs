//! The reference engine (core) reproduces the golden activations the trainer's candle model wrote
//! for every stage of the fixture weights: same greedy sequence, thoughts and logits within 1e-5.

use coconut_core::manifest::WeightsDir;
use coconut_core::problem::Problem;
use coconut_core::reference::ReferenceModel;
use coconut_tests::{assert_matches_golden, read_golden, relative_error, repo_root};

const TOLERANCE: f64 = 1e-5;

#[test]
fn reference_engine_matches_the_trainer_golden_runs() {
    let dir = repo_root().join("tests/fixtures/tiny-weights");
    let folder = WeightsDir::open(&dir).unwrap();
    let tokenizer = folder.tokenizer().unwrap();
    let golden = read_golden(&dir);
    assert_eq!(
        golden.len(),
        folder.manifest.stages.len(),
        "one golden set per stage"
    );
    let mut checked = 0;
    for set in &golden {
        let (_, stage, weights) = folder.stage(&set.stage).unwrap();
        let model = ReferenceModel::new(&weights);
        for run in &set.runs {
            let problem = Problem::new(run.a, run.b);
            let solution = model.solve(&tokenizer, &problem, &stage, true).unwrap();
            let g = &solution.generation;
            let context = format!("{} on {problem}", set.stage);
            assert_eq!(
                g.thoughts.len(),
                run.thoughts.len(),
                "{context}: thought count"
            );
            for (j, (ours, theirs)) in g.thoughts.iter().zip(&run.thoughts).enumerate() {
                let e = relative_error(ours, theirs);
                assert!(e < TOLERANCE, "{context}: thought {j} relative error {e}");
            }
            let logits = &g.trace.as_ref().unwrap().logits;
            assert_matches_golden(run, &g.ids, logits, TOLERANCE, &context);
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * 5);
}
