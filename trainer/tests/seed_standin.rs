//! The seed's checkpoint format end to end: `standin.pt` (a real `torch.save` of a small
//! `GPT2LMHeadModel` resized to the seed's 50,261 tokens) imported into a weights folder, then
//! run by the reference engine through core's decoder, equal to what the seed's own procedure
//! computed in transformers (tests/fixtures/seed-standin/golden.json, made by
//! scripts/seed_goldens.py): teacher-forced answer tokens, the thought vectors fed, and the free
//! runs of every thought-count protocol; then the same on the trainer's candle model and CPU
//! engine.

use coconut_core::decoding::Generation;
use coconut_core::family::LayoutFamily;
use coconut_core::manifest::WeightsDir;
use coconut_core::reference::ReferenceModel;
use coconut_core::seed::decode::{answer, answer_tokens, decoder, teacher_forced};
use coconut_core::seed::layout::{SeedLayout, SeedStage, ThoughtCount};
use coconut_core::seed::tokenizer::Gpt2Tokenizer;
use coconut_core::seed::EOT;
use coconut_core::weights::WeightDtype;
use coconut_core::Problem;
use coconut_trainer::import::{import, ImportRequest, Source};
use coconut_trainer::seed::{SeedEngine, SeedEngineKind};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/seed-standin")
        .join(name)
}

fn golden() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("golden.json")).unwrap()).unwrap()
}

/// The stand-in imported in f32 as `stage`: the goldens' smallest logit margin (0.0009) leaves
/// no room for int8.
fn imported(dir: &std::path::Path, stages: &[&str], dtype: WeightDtype) -> WeightsDir {
    for stage in stages {
        import(&ImportRequest {
            source: Source::Pt(fixture("standin.pt")),
            stage: stage.to_string(),
            layout: LayoutFamily::Seed,
            n_head: Some(2),
            dtype,
            out: dir.to_path_buf(),
            shard_bytes: coconut_core::manifest::MAX_SHARD_BYTES,
        })
        .unwrap();
    }
    WeightsDir::open(dir).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() as u32)
        .collect()
}

fn close(got: &[Vec<f32>], want: &Value, what: &str) {
    let want: Vec<Vec<f64>> = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(got.len(), want.len(), "{what}: thought count");
    for (g, w) in got.iter().zip(&want) {
        let err = g
            .iter()
            .zip(w)
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-4, "{what}: thought differs by {err}");
    }
}

#[test]
fn the_imported_stand_in_computes_what_the_seeds_procedure_computed() {
    let dir = tempfile::tempdir().unwrap();
    let folder = imported(dir.path(), &["stage0", "stage3"], WeightDtype::F32);
    let manifest = &folder.manifest;
    assert_eq!(manifest.family, coconut_core::family::Family::seed());
    assert_eq!((manifest.model.n_layer, manifest.model.n_embd), (2, 16));
    let (_, _, weights) = folder.stage("stage3").unwrap();
    let model = ReferenceModel::new(&weights);
    let tokenizer = Gpt2Tokenizer::new();
    let tokens = answer_tokens(&tokenizer);
    let golden = golden();
    let n_positions = model.config().n_positions;
    let mut runs = 0;
    for problem in golden["problems"].as_array().unwrap() {
        let p = Problem::new(
            problem["a"].as_u64().unwrap(),
            problem["b"].as_u64().unwrap(),
        );
        for stage in SeedStage::ALL {
            let g = &problem["stages"][format!("stage{}", stage.index())];
            let what = format!("{p} stage{}", stage.index());
            let layout = SeedLayout::new(&tokenizer, &p, stage);
            let forced = teacher_forced(&model, &layout).unwrap();
            assert_eq!(
                forced.answer_argmax,
                ids(&g["teacher_forced"]["answer_argmax"]),
                "{what}: teacher-forced answer tokens"
            );
            close(&forced.thoughts, &g["teacher_forced"]["thoughts"], &what);
            let protocols: &[(&str, ThoughtCount)] = if stage.index() == 0 {
                &[("free", ThoughtCount::Gold)]
            } else {
                &[
                    ("free_gold", ThoughtCount::Gold),
                    ("free_columns", ThoughtCount::Columns),
                    ("free_columns_plus_one", ThoughtCount::ColumnsPlusOne),
                ]
            };
            for (name, count) in protocols {
                let Some(free) = g.get(name) else { continue };
                let d = decoder(&tokenizer, &tokens, &p, stage, *count, n_positions).unwrap();
                let Generation {
                    ids: got,
                    prompt_len,
                    thoughts,
                    ..
                } = model.run_decoder(d, false).unwrap();
                // Golden runs generate a fixed number of tokens; ours stop by the answer rule,
                // so ours are a prefix of theirs.
                let generated = ids(&free["generated"]);
                let after: Vec<u32> = got[prompt_len..]
                    .iter()
                    .copied()
                    .filter(|&id| id != coconut_core::seed::ACT)
                    .skip_while(|&id| stage.index() > 0 && id == EOT)
                    .collect();
                assert!(
                    generated.starts_with(&after),
                    "{what} {name}: generated {after:?}, the seed's run {generated:?}"
                );
                let want = free["answer"].as_str().filter(|a| !a.is_empty());
                assert_eq!(
                    answer(&tokenizer, &got, prompt_len).as_deref(),
                    want,
                    "{what} {name}"
                );
                if let Some(t) = free.get("thoughts") {
                    close(&thoughts, t, &format!("{what} {name}"));
                }
                runs += 1;
            }
        }
    }
    assert!(runs >= 16 * 7, "{runs} free runs compared");
}

/// Every CPU engine of the trainer runs the imported stand-in as the seed's procedure did: the
/// same teacher-forced answer tokens and thought vectors, and every free run token for token,
/// each through the engine's own loop over core's seed decoder ([`SeedEngine`]). The reference
/// engine runs alongside as the control.
///
/// Tolerance of the thought vectors: 1e-4 absolute, as for the reference engine above. The
/// goldens are transformers' f32 on the CPU written with 9 significant digits; the vectors are
/// `ln_f` outputs of size about 1 (width 16), so f32 arithmetic summed in another order (gemm's
/// blocks, candle's matmul, the reference's plain loops) differs by about 1e-6; a wrong position
/// id, mask or thought moves them by 1e-2 or more. Tokens are compared exactly: the goldens'
/// smallest logit margin (0.0009) is far above those rounding differences.
#[test]
fn every_engine_computes_what_the_seeds_procedure_computed() {
    let dir = tempfile::tempdir().unwrap();
    let folder = imported(dir.path(), &["stage3"], WeightDtype::F32);
    let (_, _, weights) = folder.stage("stage3").unwrap();
    let tokenizer = Gpt2Tokenizer::new();
    let tokens = answer_tokens(&tokenizer);
    let golden = golden();
    for kind in [
        SeedEngineKind::Reference,
        SeedEngineKind::Candle,
        SeedEngineKind::Cpu,
    ] {
        let mut engine = SeedEngine::load(kind, &weights).unwrap();
        assert_eq!(engine.n_positions(), 128);
        let (mut runs, mut worst) = (0, 0f64);
        for problem in golden["problems"].as_array().unwrap() {
            let p = Problem::new(
                problem["a"].as_u64().unwrap(),
                problem["b"].as_u64().unwrap(),
            );
            for stage in SeedStage::ALL {
                let g = &problem["stages"][format!("stage{}", stage.index())];
                let what = format!("{kind:?} {p} stage{}", stage.index());
                let layout = SeedLayout::new(&tokenizer, &p, stage);
                let forced = engine.teacher_forced(&layout).unwrap();
                assert_eq!(
                    forced.answer_argmax,
                    ids(&g["teacher_forced"]["answer_argmax"]),
                    "{what}: teacher-forced answer tokens"
                );
                let error = max_error(&forced.thoughts, &g["teacher_forced"]["thoughts"], &what);
                assert!(error < 1e-4, "{what}: thoughts differ by {error}");
                worst = worst.max(error);
                for (name, count) in protocols(stage) {
                    let Some(free) = g.get(name) else { continue };
                    let d = decoder(&tokenizer, &tokens, &p, stage, count, 128).unwrap();
                    let run = engine.run(d).unwrap();
                    let what = format!("{what} {name}");
                    let prompt = free.get("prefix_ids").unwrap_or(&free["ids"]);
                    assert_eq!(
                        run.ids[..run.prompt_len],
                        ids(prompt)[..run.prompt_len],
                        "{what}: prompt"
                    );
                    let want_thoughts = free.get("n_thoughts").map_or(0, |n| n.as_u64().unwrap());
                    assert_eq!(run.thoughts as u64, want_thoughts, "{what}: thoughts fed");
                    let generated = ids(&free["generated"]);
                    let after = generated_after(&run.ids, run.prompt_len, stage);
                    assert!(
                        !after.is_empty() && generated.starts_with(&after),
                        "{what}: generated {after:?}, the seed's run {generated:?}; {:?}",
                        run.ids
                    );
                    let want = free["answer"].as_str().filter(|a| !a.is_empty());
                    assert_eq!(
                        answer(&tokenizer, &run.ids, run.prompt_len).as_deref(),
                        want,
                        "{what}"
                    );
                    runs += 1;
                }
            }
        }
        assert_eq!(runs, 16 * 8, "{kind:?}: free runs compared");
        eprintln!("{kind:?}: {runs} free runs equal, thoughts within {worst:.1e}");
    }
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

/// What a run generated after its prompt: thought slots and, from stage 1, the fed `<eot>` left
/// out (the goldens' `generated` starts after them). Golden runs generate a fixed number of
/// tokens; ours stop by the answer rule, so ours are a prefix of theirs.
fn generated_after(ids: &[u32], prompt_len: usize, stage: SeedStage) -> Vec<u32> {
    ids[prompt_len..]
        .iter()
        .copied()
        .filter(|&id| id != coconut_core::seed::ACT)
        .skip_while(|&id| stage.index() > 0 && id == EOT)
        .collect()
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
fn an_int8_import_lists_its_stage_and_bad_requests_leave_no_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = imported(dir.path(), &["stage3"], WeightDtype::Int8);
    let entry = folder.manifest.stage("stage3").unwrap();
    assert_eq!((entry.dtype, entry.thoughts), (WeightDtype::Int8, 5));
    // Without the head count, and with a head count the width does not divide.
    let request = |n_head, stage: &str| ImportRequest {
        source: Source::Pt(fixture("standin.pt")),
        stage: stage.into(),
        layout: LayoutFamily::Seed,
        n_head,
        dtype: WeightDtype::Int8,
        out: dir.path().join("other"),
        shard_bytes: coconut_core::manifest::MAX_SHARD_BYTES,
    };
    let err = format!("{:#}", import(&request(None, "stage0")).unwrap_err());
    assert!(err.contains("--n-head"), "{err}");
    let err = format!("{:#}", import(&request(Some(3), "stage0")).unwrap_err());
    assert!(err.contains("multiple of n_head (3)"), "{err}");
    let err = format!("{:#}", import(&request(Some(2), "stage4")).unwrap_err());
    assert!(err.contains("stage0 to stage3"), "{err}");
    assert!(!dir.path().join("other").join("manifest.json").exists());
    let err = format!(
        "{:#}",
        import(&ImportRequest {
            layout: LayoutFamily::Coconut,
            ..request(Some(2), "stage0")
        })
        .unwrap_err()
    );
    assert!(err.contains("--layout seed"), "{err}");
}

#[test]
fn a_stage_over_the_piece_size_is_stored_in_pieces_and_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let whole = imported(&dir.path().join("whole"), &["stage3"], WeightDtype::F32);
    let (_, _, want) = whole.stage("stage3").unwrap();
    let request = |shard_bytes| ImportRequest {
        source: Source::Pt(fixture("standin.pt")),
        stage: "stage3".into(),
        layout: LayoutFamily::Seed,
        n_head: Some(2),
        dtype: WeightDtype::F32,
        out: dir.path().join("pieces"),
        shard_bytes,
    };
    // 3.3 MB of f32 in pieces of 1 MiB.
    import(&request(1 << 20)).unwrap();
    let pieces = WeightsDir::open(dir.path().join("pieces")).unwrap();
    let entry = pieces.manifest.stage("stage3").unwrap().clone();
    assert_eq!(entry.file.shards.len(), 4);
    assert_eq!(
        entry.file.sha256,
        whole.manifest.stage("stage3").unwrap().file.sha256
    );
    let names: Vec<String> = std::fs::read_dir(dir.path().join("pieces"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("stage3"))
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(!names.contains(&"stage3.safetensors".to_string()));
    assert_eq!(pieces.stage("stage3").unwrap().2, want);
    // Written again in one piece: the pieces go, the one file comes.
    import(&request(coconut_core::manifest::MAX_SHARD_BYTES)).unwrap();
    let files: Vec<String> = std::fs::read_dir(dir.path().join("pieces"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("stage3"))
        .collect();
    assert_eq!(files, ["stage3.safetensors"]);
    let again = WeightsDir::open(dir.path().join("pieces")).unwrap();
    assert_eq!(again.stage("stage3").unwrap().2, want);
}

#[test]
fn the_seed_s_thoughts_are_probed_and_the_probes_ship_with_its_folder() {
    use coconut_trainer::folder::{FolderWrite, Start};
    use coconut_trainer::probe::{probe_folder, ship, ProbeSizes};
    let dir = tempfile::tempdir().unwrap();
    let folder = imported(
        dir.path(),
        &["stage0", "stage1", "stage2", "stage3"],
        WeightDtype::F32,
    );
    let sizes = ProbeSizes {
        fit: 300,
        test: 100,
    };
    let mut seen = Vec::new();
    let probed = probe_folder(&folder, &[], sizes, |id| seen.push(id.to_string())).unwrap();
    // Stage 0 thinks nothing; stages 1-3 think their last 1, 2 and every column (thoughts
    // counted from the operands: at most 4 for the seed's 4-digit problems).
    assert_eq!(seen, ["stage1", "stage2", "stage3"]);
    for (stage, most) in probed.iter().zip([1, 2, 4]) {
        let slots = stage.scores.iter().map(|s| s.slot).max().unwrap() + 1;
        assert_eq!(slots, most, "{:?}", stage.stage());
        assert!(stage.scores.iter().all(|s| s.column < 4 && s.n_test > 0));
        // Each slot is scored on the held-out problems that have it.
        let slot0 = stage.scores.iter().find(|s| s.slot == 0).unwrap();
        assert_eq!((slot0.n_fit, slot0.n_test), (300, 100));
    }
    let written = ship(
        FolderWrite::begin(dir.path(), Start::Keep).unwrap(),
        &folder,
        &probed,
    )
    .unwrap();
    assert_eq!(written.len(), 3);
    let shipped = WeightsDir::open(dir.path()).unwrap();
    for id in ["stage1", "stage2", "stage3"] {
        let entry = shipped.manifest.stage(id).unwrap();
        assert!(shipped.probes(entry).unwrap().is_some(), "{id}");
    }
    // Importing stage3 again replaces its weights: its probes (of the old thoughts) go too.
    imported(dir.path(), &["stage3"], WeightDtype::F32);
    let again = WeightsDir::open(dir.path()).unwrap();
    assert!(again.manifest.stage("stage3").unwrap().probes.is_none());
    assert!(!dir.path().join("stage3.probes.safetensors").exists());
    assert!(dir.path().join("stage2.probes.safetensors").exists());
    // A name that is not a thinking stage is refused before any work.
    let err = probe_folder(&folder, &["stage0".into()], sizes, |_| {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("not a stage with fed-back thoughts"),
        "{err}"
    );
}
