//! End to end: the WGSL engine against the reference engine (coconut-core), same greedy ids,
//! texts, answers and finished flags for every stage kind, on random weights and on weights
//! biased towards <eos> (so both finished and unfinished runs are compared), in f32 and int8;
//! thoughts and traces within the kernels' tolerance. Run single-threaded.

#![cfg(not(target_arch = "wasm32"))]

mod checks;
mod common;

use checks::*;
use coconut_core::problem::Problem;
use coconut_core::reference::ReferenceModel;
use coconut_core::stage::{Positions, Stage, StageKind};
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::{random_weights, ModelWeights, WeightDtype};
use coconut_core::ModelConfig;
use coconut_shaders::{block_on, GpuError, GpuOptions, WgpuEngine};
use common::*;

/// Small models in every storage type, random and leaning towards `<eos>` (so that both
/// finished and unfinished runs are compared).
fn weight_sets() -> Vec<(String, ModelWeights)> {
    let cfg = small_config();
    vec![
        ("random f32".into(), random_weights(&cfg, 1)),
        (
            "random int8".into(),
            random_weights(&cfg, 2).convert(WeightDtype::Int8),
        ),
        ("eos-biased f32".into(), eos_biased(&cfg, 3, 3.0)),
        (
            "eos-biased int8".into(),
            eos_biased(&cfg, 4, 3.0).convert(WeightDtype::Int8),
        ),
        (
            "eos-biased f16".into(),
            eos_biased(&cfg, 5, 2.0).convert(WeightDtype::F16),
        ),
    ]
}

#[test]
fn greedy_generations_match_the_reference_for_every_stage() {
    if gpu().is_none() {
        return;
    }
    let mut tally = Tally::default();
    let sets = weight_sets();
    let start = std::time::Instant::now();
    for (i, (name, w)) in sets.iter().enumerate() {
        let before = tally.runs;
        block_on(engine_parity(
            gpu().unwrap(),
            w,
            i as u64 + 1,
            12,
            &mut tally,
        ));
        eprintln!("{name}: {} generations identical", tally.runs - before);
    }
    eprintln!(
        "{} generations identical ({} finished with <eos>, {} at the position limit) in {:.1?}",
        tally.runs,
        tally.finished,
        tally.unfinished,
        start.elapsed()
    );
    assert!(tally.runs >= 500, "a few hundred problems");
    assert!(
        tally.finished >= 30,
        "finished runs compared: {}",
        tally.finished
    );
    assert!(
        tally.unfinished >= 30,
        "unfinished runs compared: {}",
        tally.unfinished
    );
}

#[test]
fn default_size_model_matches_with_traces() {
    if gpu().is_none() {
        return;
    }
    let cfg = ModelConfig::default();
    let tok = Tokenizer::new();
    for (name, w) in [
        ("f32", eos_biased(&cfg, 7, 6.0)),
        ("int8", eos_biased(&cfg, 8, 6.0).convert(WeightDtype::Int8)),
        // Unbiased random weights decode to the 128-position limit: the longest trace.
        (
            "random int8",
            random_weights(&cfg, 9).convert(WeightDtype::Int8),
        ),
    ] {
        let reference = ReferenceModel::new(&w);
        let mut engine = WgpuEngine::on(gpu().unwrap(), &w).expect("engine");
        engine.use_per_layer(true);
        let mut solver = WgpuEngine::on(gpu().unwrap(), &w).expect("engine");
        for (i, stage) in [
            Stage::latent(5, 1, 5),
            Stage::latent(2, 1, 5),
            Stage::latent(0, 1, 5).with_kind(StageKind::Pause),
            // The shipped stages' ids: coupled, ahead, padded operands.
            Stage::latent(5, 1, 5).with_positions(Positions::coupled(true, Some(2))),
        ]
        .iter()
        .enumerate()
        {
            let p = problems(70 + i as u64, 1)[0];
            let want = reference.solve(&tok, &p, stage, true).unwrap();
            let per_layer = block_on(engine.solve(&tok, &p, stage, true)).unwrap();
            let solved = block_on(solver.solve(&tok, &p, stage, true)).unwrap();
            for (engine_name, got) in [("per-layer", per_layer), ("solver", solved)] {
                let what = format!("default {name} {engine_name} {} {p:?}", stage.id());
                assert_same(&got, &want, &what);
                let (gt, rt) = (
                    got.generation.trace.unwrap(),
                    want.generation.trace.clone().unwrap(),
                );
                assert_eq!(
                    gt.positions.len(),
                    rt.positions.len(),
                    "{what}: traced positions"
                );
                assert_eq!(gt.logits.len(), rt.logits.len(), "{what}: traced logits");
                let mut worst = (0f64, 0f64, 0f64);
                for (t, (a, b)) in gt.positions.iter().zip(&rt.positions).enumerate() {
                    assert_eq!(a.residual.len(), cfg.n_layer);
                    for (l, (x, y)) in a.residual.iter().zip(&b.residual).enumerate() {
                        let e = rel(x, y);
                        worst.0 = worst.0.max(e);
                        assert!(e < 1e-5, "{what}: residual t={t} layer {l}: {e}");
                    }
                    for (l, (x, y)) in a.attention.iter().zip(&b.attention).enumerate() {
                        assert_eq!(x.len(), cfg.n_head);
                        for (h, (xa, ya)) in x.iter().zip(y).enumerate() {
                            assert_eq!(xa.len(), t + 1, "{what}: attention row length");
                            let e = rel(xa, ya);
                            worst.1 = worst.1.max(e);
                            assert!(e < 1e-5, "{what}: attention t={t} layer {l} head {h}: {e}");
                        }
                    }
                    let e = rel(&gt.logits[t], &rt.logits[t]);
                    worst.2 = worst.2.max(e);
                    assert!(e < 1e-5, "{what}: logits t={t}: {e}");
                }
                eprintln!(
                "{what}: {} positions, finished={}, worst relative errors: residual {:.1e}, attention {:.1e}, logits {:.1e}",
                gt.positions.len(),
                got.generation.finished,
                worst.0,
                worst.1,
                worst.2
            );
            }
        }
    }
}

#[test]
fn errors_are_clear_and_say_when_to_fall_back() {
    // No adapter: an instance with no backends finds none.
    let options = GpuOptions {
        backends: wgpu::Backends::empty(),
        ..GpuOptions::default()
    };
    let w = random_weights(&small_config(), 1);
    let err = block_on(WgpuEngine::with_options(&w, &options))
        .err()
        .expect("no adapter without backends");
    assert!(matches!(err, GpuError::NoAdapter { .. }), "{err}");
    assert!(err.should_fall_back());
    assert!(err.to_string().contains("reference engine"), "{err}");

    let Some(gpu) = gpu() else { return };
    let mut engine = WgpuEngine::on(gpu, &w).unwrap();
    let stage = Stage::latent(5, 1, 5);
    // Input errors are the caller's: the reference refuses them too.
    let err = block_on(engine.generate(&[3, 99], &stage, false)).unwrap_err();
    assert!(
        matches!(err, GpuError::Engine(_)) && !err.should_fall_back(),
        "{err}"
    );
    let err = block_on(engine.generate(&[8; 39], &stage, false)).unwrap_err();
    assert!(err.to_string().contains("40 positions"), "{err}");
    // The engine still works after refusing input.
    block_on(engine.generate(&[8, 18, 9, 19, 1], &stage, false)).unwrap();

    // A lost device: a fresh device of its own, destroyed under the engine.
    let own =
        std::sync::Arc::new(coconut_shaders::Gpu::new_blocking(&GpuOptions::default()).unwrap());
    let mut engine = WgpuEngine::on(own.clone(), &w).unwrap();
    own.device.destroy();
    let _ = own.device.poll(wgpu::PollType::Poll);
    let err = block_on(engine.generate(&[8, 18, 9, 19, 1], &stage, false)).unwrap_err();
    assert!(matches!(err, GpuError::DeviceLost { .. }), "{err}");
    assert!(err.should_fall_back());
}

#[test]
fn one_submission_per_position_and_one_token_read_per_generated_token() {
    let Some(gpu) = gpu() else { return };
    let cfg = small_config();
    let w = eos_biased(&cfg, 3, 3.0);
    let mut engine = WgpuEngine::on(gpu, &w).unwrap();
    engine.use_per_layer(true);
    let tok = Tokenizer::new();
    let stage = Stage::latent(3, 1, 5);
    let p = Problem::new(347, 285);
    let s = block_on(engine.solve(&tok, &p, &stage, false)).unwrap();
    let g = &s.generation;
    let st = engine.stats();
    let generated = g.ids.len() - g.prompt_len - stage.thoughts();
    assert!(
        g.finished && generated > 1,
        "this test wants a run ended by <eos>"
    );
    // Prompt (1) + thoughts + one per generated token (each position is submitted before the
    // previous token is read, so the one after <eos> is computed and discarded) + the final read
    // of the thoughts.
    assert_eq!(
        st.submissions as usize,
        1 + stage.thoughts() + generated + 1,
        "{st:?}"
    );
    assert_eq!(st.discarded, 1, "{st:?}");
    assert_eq!(st.readbacks as usize, generated + 1, "{st:?}");
    assert_eq!(st.positions as usize, g.ids.len() - 1 + 1, "{st:?}");
    // Per decode position: embedding, 7 per block, ln_f, LM head, argmax; the prompt and all but
    // the last thought need no LM head and no argmax.
    let per_token = 1 + 7 * cfg.n_layer + 3;
    let expected = (per_token - 2) * stage.thoughts() + per_token + generated * per_token;
    assert_eq!(st.dispatches as usize, expected, "{st:?}");
}

#[test]
fn the_solver_submits_once_and_reads_back_once_per_batch() {
    let Some(gpu) = gpu() else { return };
    let w = eos_biased(&small_config(), 3, 3.0);
    let tok = Tokenizer::new();
    let problems = problems(5, 40);
    // Absolute ids, and the shipped stages' coupled ids (ahead, padded operands).
    for stage in [
        Stage::latent(3, 1, 5),
        Stage::latent(3, 1, 5).with_positions(Positions::coupled(true, Some(2))),
    ] {
        let mut engine = WgpuEngine::on(gpu.clone(), &w).unwrap();
        let solved = block_on(engine.solve_batch(&tok, &problems, &stage)).unwrap();
        let st = engine.stats();
        assert_eq!((st.submissions, st.readbacks), (1, 1), "{st:?}");
        assert_eq!(st.generations, 40, "{st:?}");
        // A few dispatches of the same kernel at most (one per chunk of positions on lavapipe).
        assert!(st.dispatches >= 1 && st.dispatches <= 40, "{st:?}");
        // The batch equals the problems solved one at a time on the per-layer path.
        engine.use_per_layer(true);
        for (p, got) in problems.iter().zip(&solved) {
            let want = block_on(engine.solve(&tok, p, &stage, false)).unwrap();
            assert_eq!(
                got.generation.ids,
                want.generation.ids,
                "{} {p:?}",
                stage.id()
            );
        }
    }
}
