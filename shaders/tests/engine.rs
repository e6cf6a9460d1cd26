//! End to end: the WGSL engine against the reference engine (coconut-core), same greedy ids,
//! texts, answers and finished flags for every stage kind, on random weights and on weights
//! biased towards <eos> (so both finished and unfinished runs are compared), in f32 and int8;
//! thoughts and traces within the kernels' tolerance. Run single-threaded.

mod common;

use coconut_core::problem::Problem;
use coconut_core::reference::{ReferenceModel, Solution};
use coconut_core::stage::{Stage, StageKind};
use coconut_core::tokenizer::{Tokenizer, EOS};
use coconut_core::weights::{random_weights, ModelWeights, WeightDtype};
use coconut_core::ModelConfig;
use coconut_shaders::{GpuError, GpuOptions, WgpuEngine};
use common::*;
use rand::Rng;

fn small_config() -> ModelConfig {
    ModelConfig {
        vocab_size: coconut_core::tokenizer::VOCAB.len(),
        n_positions: 40,
        n_embd: 32,
        n_layer: 2,
        n_head: 4,
        layer_norm_epsilon: 1e-5,
    }
}

/// Random weights whose `<eos>` row leans towards the final LayerNorm's bias, so that the model
/// says `<eos>` at some positions and not at others.
fn eos_biased(config: &ModelConfig, seed: u64, strength: f32) -> ModelWeights {
    let mut w = random_weights(config, seed);
    let c = config.n_embd;
    let bias = w.f32("ln_f.bias");
    let norm = bias.iter().map(|b| b * b).sum::<f32>().sqrt();
    let mut wte = w.f32("wte.weight");
    for i in 0..c {
        wte[EOS as usize * c + i] += strength * bias[i] / norm;
    }
    w.tensors.get_mut("wte.weight").unwrap().data = coconut_core::weights::TensorData::F32(wte);
    w
}

fn stages() -> Vec<Stage> {
    let mut s = Stage::curriculum(1, 5);
    s.push(Stage::latent(0, 1, 5).with_kind(StageKind::NoCot));
    s.push(Stage::latent(0, 1, 5).with_kind(StageKind::Pause));
    s.push(Stage::latent(3, 2, 5));
    s
}

fn problems(seed: u64, n: usize) -> Vec<Problem> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let mut operand = || {
                let digits = r.random_range(1..=4u32);
                r.random_range(
                    if digits == 1 {
                        0
                    } else {
                        10u64.pow(digits - 1)
                    }..10u64.pow(digits),
                )
            };
            Problem::new(operand(), operand())
        })
        .collect()
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    rel_err(a, &b.iter().map(|&x| x as f64).collect::<Vec<_>>())
}

/// Greedy output identical; thoughts within tolerance.
fn assert_same(gpu: &Solution, reference: &Solution, what: &str) {
    assert_eq!(gpu.text, reference.text, "{what}: text");
    assert_eq!(gpu.answer, reference.answer, "{what}: answer");
    let (g, r) = (&gpu.generation, &reference.generation);
    assert_eq!(g.ids, r.ids, "{what}: ids");
    assert_eq!(g.finished, r.finished, "{what}: finished");
    assert_eq!(g.prompt_len, r.prompt_len, "{what}: prompt_len");
    assert_eq!(g.thoughts.len(), r.thoughts.len(), "{what}: thought count");
    for (j, (a, b)) in g.thoughts.iter().zip(&r.thoughts).enumerate() {
        let e = rel(a, b);
        assert!(e < 1e-5, "{what}: thought {j} relative error {e}");
    }
}

struct Tally {
    runs: usize,
    finished: usize,
    unfinished: usize,
}

fn compare_many(weights: &ModelWeights, seed: u64, per_stage: usize, tally: &mut Tally) {
    let gpu = gpu().expect("adapter");
    let tok = Tokenizer::new();
    let reference = ReferenceModel::new(weights);
    let mut engine = WgpuEngine::on(gpu, weights).expect("engine");
    for (si, stage) in stages().iter().enumerate() {
        for (pi, p) in problems(seed * 100 + si as u64, per_stage)
            .iter()
            .enumerate()
        {
            let want = reference.solve(&tok, p, stage, false).unwrap();
            let got = engine.solve_blocking(&tok, p, stage, false).unwrap();
            assert_same(
                &got,
                &want,
                &format!("{} {p:?} (problem {pi}, seed {seed})", stage.id()),
            );
            tally.runs += 1;
            if want.generation.finished {
                tally.finished += 1;
            } else {
                tally.unfinished += 1;
            }
        }
    }
}

#[test]
fn greedy_generations_match_the_reference_for_every_stage() {
    if gpu().is_none() {
        return;
    }
    let cfg = small_config();
    let mut tally = Tally {
        runs: 0,
        finished: 0,
        unfinished: 0,
    };
    let sets: Vec<(String, ModelWeights)> = vec![
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
    ];
    let start = std::time::Instant::now();
    for (i, (name, w)) in sets.iter().enumerate() {
        let before = tally.runs;
        compare_many(w, i as u64 + 1, 12, &mut tally);
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
        for (i, stage) in [
            Stage::latent(5, 1, 5),
            Stage::latent(2, 1, 5),
            Stage::latent(0, 1, 5).with_kind(StageKind::Pause),
        ]
        .iter()
        .enumerate()
        {
            let p = problems(70 + i as u64, 1)[0];
            let want = reference.solve(&tok, &p, stage, true).unwrap();
            let got = engine.solve_blocking(&tok, &p, stage, true).unwrap();
            let what = format!("default {name} {} {p:?}", stage.id());
            assert_same(&got, &want, &what);
            let (gt, rt) = (
                got.generation.trace.unwrap(),
                want.generation.trace.unwrap(),
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

#[test]
fn errors_are_clear_and_say_when_to_fall_back() {
    // No adapter: an instance with no backends finds none.
    let options = GpuOptions {
        backends: wgpu::Backends::empty(),
        ..GpuOptions::default()
    };
    let w = random_weights(&small_config(), 1);
    let err = pollster::block_on(WgpuEngine::with_options(&w, &options))
        .err()
        .expect("no adapter without backends");
    assert!(matches!(err, GpuError::NoAdapter { .. }), "{err}");
    assert!(err.should_fall_back());
    assert!(err.to_string().contains("reference engine"), "{err}");

    let Some(gpu) = gpu() else { return };
    let mut engine = WgpuEngine::on(gpu, &w).unwrap();
    let stage = Stage::latent(5, 1, 5);
    // Input errors are the caller's: the reference refuses them too.
    let err = engine
        .generate_blocking(&[3, 99], &stage, false)
        .unwrap_err();
    assert!(
        matches!(err, GpuError::Engine(_)) && !err.should_fall_back(),
        "{err}"
    );
    let err = engine
        .generate_blocking(&[8; 39], &stage, false)
        .unwrap_err();
    assert!(err.to_string().contains("40 positions"), "{err}");
    // The engine still works after refusing input.
    engine
        .generate_blocking(&[8, 18, 9, 19, 1], &stage, false)
        .unwrap();

    // A lost device: a fresh device of its own, destroyed under the engine.
    let own =
        std::sync::Arc::new(coconut_shaders::Gpu::new_blocking(&GpuOptions::default()).unwrap());
    let mut engine = WgpuEngine::on(own.clone(), &w).unwrap();
    own.device.destroy();
    let _ = own.device.poll(wgpu::PollType::Poll);
    let err = engine
        .generate_blocking(&[8, 18, 9, 19, 1], &stage, false)
        .unwrap_err();
    assert!(matches!(err, GpuError::DeviceLost { .. }), "{err}");
    assert!(err.should_fall_back());
}

#[test]
fn one_submission_per_position_and_one_token_read_per_generated_token() {
    let Some(gpu) = gpu() else { return };
    let cfg = small_config();
    let w = eos_biased(&cfg, 3, 3.0);
    let mut engine = WgpuEngine::on(gpu, &w).unwrap();
    let tok = Tokenizer::new();
    let stage = Stage::latent(3, 1, 5);
    let p = Problem::new(347, 285);
    let s = engine.solve_blocking(&tok, &p, &stage, false).unwrap();
    let g = &s.generation;
    let st = engine.stats();
    let generated = g.ids.len() - g.prompt_len - stage.thoughts();
    // prompt (1) + thoughts + every generated token but the last (which is predicted, not run)
    // + the final read of the thoughts.
    assert_eq!(
        st.submissions as usize,
        1 + stage.thoughts() + (generated - 1) + 1,
        "{st:?}"
    );
    assert_eq!(st.readbacks as usize, generated + 1, "{st:?}");
    assert_eq!(st.positions as usize, g.ids.len() - 1, "{st:?}");
    // Per decode position: embedding, 7 per block, ln_f, LM head, argmax.
    let per_token = 1 + 7 * cfg.n_layer + 3;
    let thoughts_and_tokens = stage.thoughts() + generated - 1;
    let expected = (per_token - 2 + 2 * usize::from(stage.thoughts() == 0))
        + (stage.thoughts() - 1) * (per_token - 2)
        + per_token
        + (generated - 1) * per_token;
    assert!(thoughts_and_tokens > 0);
    assert_eq!(st.dispatches as usize, expected, "{st:?}");
}
