//! The seed's family on the WGSL engine: the stand-in checkpoint (tests/fixtures/seed-standin,
//! a real `torch.save` of a small GPT-2 with the seed's 50,261 tokens and 128 positions) imported
//! with the trainer's importer, then every free run of the goldens (transformers' own run of the
//! seed's procedure, golden.json) decoded by [`WgpuEngine::run_decoder`] over core's seed
//! decoder: token for token, for every stage and thought-count protocol, with the thought
//! vectors fed.
//!
//! Tolerance of the thought vectors: 1e-4 absolute, as for the CPU engines
//! (trainer/tests/seed_standin.rs). The goldens are transformers' f32 written with 9 significant
//! digits; the vectors are `ln_f` outputs of size about 1 (width 16), and the kernels sum in the
//! reference's order in f32, so they differ from the goldens by rounding (about 1e-6); a wrong
//! position id, mask, fed token or thought moves them by 1e-2 or more. Tokens are compared
//! exactly: the goldens' smallest logit margin (0.0009) is far above those differences.

#![cfg(not(target_arch = "wasm32"))]

mod common;

use coconut_core::family::LayoutFamily;
use coconut_core::manifest::WeightsDir;
use coconut_core::seed::decode::{answer, answer_tokens, decoder};
use coconut_core::seed::layout::{SeedStage, ThoughtCount};
use coconut_core::seed::tokenizer::Gpt2Tokenizer;
use coconut_core::seed::{ACT, EOT};
use coconut_core::weights::WeightDtype;
use coconut_core::Problem;
use coconut_shaders::{block_on, WgpuEngine};
use coconut_trainer::import::{import, ImportRequest, Source};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/seed-standin")
        .join(name)
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() as u32)
        .collect()
}

/// The protocols the goldens ran at `stage`, by their golden names.
fn protocols(stage: SeedStage) -> Vec<(&'static str, ThoughtCount)> {
    if stage.index() == 0 {
        vec![("free", ThoughtCount::Gold)]
    } else {
        vec![
            ("free_gold", ThoughtCount::Gold),
            ("free_columns", ThoughtCount::Columns),
            ("free_columns_plus_one", ThoughtCount::ColumnsPlusOne),
        ]
    }
}

/// The largest absolute difference between `got` and the golden vectors `want`.
fn max_error(got: &[Vec<f32>], want: &Value, what: &str) -> f64 {
    let want: Vec<Vec<f64>> = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(got.len(), want.len(), "{what}: thought count");
    got.iter()
        .zip(&want)
        .flat_map(|(g, w)| {
            assert_eq!(g.len(), w.len(), "{what}: thought width");
            g.iter().zip(w).map(|(a, b)| (*a as f64 - b).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn the_wgsl_engine_runs_the_imported_stand_in_as_the_seeds_procedure_did() {
    let Some(gpu) = common::gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    import(&ImportRequest {
        source: Source::Pt(fixture("standin.pt")),
        stage: "stage3".into(),
        layout: LayoutFamily::Seed,
        n_head: Some(2),
        dtype: WeightDtype::F32,
        out: dir.path().to_path_buf(),
        shard_bytes: coconut_core::manifest::MAX_SHARD_BYTES,
    })
    .unwrap();
    let folder = WeightsDir::open(dir.path()).unwrap();
    let (_, _, weights) = folder.stage("stage3").unwrap();
    assert_eq!(weights.config.vocab_size, 50261);
    let mut engine = WgpuEngine::per_layer_on(gpu, &weights).unwrap();
    let n_positions = engine.config().n_positions;
    assert_eq!(n_positions, 128);
    let tokenizer = Gpt2Tokenizer::new();
    let tokens = answer_tokens(&tokenizer);
    let golden: Value =
        serde_json::from_slice(&std::fs::read(fixture("golden.json")).unwrap()).unwrap();
    let (mut runs, mut with_thoughts, mut worst) = (0, 0, 0f64);
    for problem in golden["problems"].as_array().unwrap() {
        let p = Problem::new(
            problem["a"].as_u64().unwrap(),
            problem["b"].as_u64().unwrap(),
        );
        for stage in SeedStage::ALL {
            let g = &problem["stages"][format!("stage{}", stage.index())];
            for (name, count) in protocols(stage) {
                let Some(free) = g.get(name) else { continue };
                let what = format!("{p} stage{} {name}", stage.index());
                let d = decoder(&tokenizer, &tokens, &p, stage, count, n_positions).unwrap();
                let run = block_on(engine.run_decoder(d, false)).unwrap();
                let n = run.prompt_len;
                let prompt = free.get("prefix_ids").unwrap_or(&free["ids"]);
                assert_eq!(run.ids[..n], ids(prompt)[..n], "{what}: prompt");
                let want_thoughts = free.get("n_thoughts").map_or(0, |k| k.as_u64().unwrap());
                assert_eq!(
                    run.thoughts.len() as u64,
                    want_thoughts,
                    "{what}: thoughts fed"
                );
                // From stage 1 the thoughts are followed by the fed <eot>, then the model's
                // tokens; the goldens' `generated` starts after the <eot>. Golden runs generate
                // a fixed number of tokens; ours stop by the answer rule: a prefix of theirs.
                let k = run.thoughts.len();
                assert!(
                    run.ids[n..n + k].iter().all(|&id| id == ACT),
                    "{what}: slots"
                );
                let mut after = &run.ids[n + k..];
                if stage.index() > 0 {
                    assert_eq!(
                        after.first(),
                        Some(&EOT),
                        "{what}: <eot> fed after the thoughts"
                    );
                    after = &after[1..];
                }
                let generated = ids(&free["generated"]);
                assert!(
                    !after.is_empty() && generated.starts_with(after),
                    "{what}: generated {after:?}, the seed's run {generated:?}"
                );
                let want = free["answer"].as_str().filter(|a| !a.is_empty());
                assert_eq!(answer(&tokenizer, &run.ids, n).as_deref(), want, "{what}");
                if let Some(t) = free.get("thoughts") {
                    let error = max_error(&run.thoughts, t, &what);
                    assert!(error < 1e-4, "{what}: thoughts differ by {error}");
                    worst = worst.max(error);
                    with_thoughts += 1;
                }
                runs += 1;
            }
        }
    }
    assert_eq!(runs, 16 * 8, "free runs compared");
    assert!(with_thoughts > 0, "thought vectors compared");
    eprintln!(
        "{runs} free runs equal on {}, {with_thoughts} with thought vectors within {worst:.1e}",
        engine.adapter()
    );
}

/// A model whose buffers exceed the adapter's limits is refused before any buffer exists, with
/// the tensor, its size and the limit named (here the stand-in's `wte`, 50,261 x 16 in f32, on a
/// device whose storage bindings are capped at 1 MiB).
#[test]
fn buffers_beyond_the_adapters_limits_are_refused_by_name() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    import(&ImportRequest {
        source: Source::Pt(fixture("standin.pt")),
        stage: "stage3".into(),
        layout: LayoutFamily::Seed,
        n_head: Some(2),
        dtype: WeightDtype::F32,
        out: dir.path().to_path_buf(),
        shard_bytes: coconut_core::manifest::MAX_SHARD_BYTES,
    })
    .unwrap();
    let (_, _, weights) = WeightsDir::open(dir.path())
        .unwrap()
        .stage("stage3")
        .unwrap();
    let mut gpu = coconut_shaders::Gpu::new_blocking(&Default::default()).unwrap();
    gpu.limits.max_storage_buffer_binding_size = 1 << 20;
    let err = match WgpuEngine::per_layer_on(std::sync::Arc::new(gpu), &weights) {
        Ok(_) => panic!("a 3.2 MB wte under a 1 MiB binding limit was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("weight wte.weight (50261 x 16, stored f32) takes 3216704 bytes")
            && err.contains("max_storage_buffer_binding_size of 1048576"),
        "{err}"
    );
}
