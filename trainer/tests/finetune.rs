//! Fine-tuning an imported GPT-2 with the seed's recipe (`coconut train --init`): the seed's
//! stand-in checkpoint (tests/fixtures/seed-standin/standin.pt, GPT-2's 50,261 tokens) imported,
//! fine-tuned through stages 0 and 3 for a few steps, its stages written into a seed-family
//! folder every command reads; a run killed mid-stage and resumed ends with the same weights,
//! bit for bit, as one that never stopped.

use candle_core::Device;
use coconut_core::family::{Family, LayoutFamily};
use coconut_core::manifest::WeightsDir;
use coconut_core::weights::WeightDtype;
use coconut_trainer::cpu::noise::StepNoise;
use coconut_trainer::finetune::{
    cosine_with_warmup, finetune, EarlyStop, FinetuneRecipe, FinetuneRequest, FinetuneStart,
};
use coconut_trainer::import::{import, ImportRequest, Source};
use coconut_trainer::train::{Outcome, Silent};
use std::path::{Path, PathBuf};

fn standin(dir: &Path) -> PathBuf {
    let out = dir.join("standin");
    import(&ImportRequest {
        source: Source::Pt(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/seed-standin/standin.pt"),
        ),
        stage: "stage0".into(),
        layout: LayoutFamily::Seed,
        n_head: Some(2),
        dtype: WeightDtype::F32,
        out: out.clone(),
        shard_bytes: coconut_core::manifest::MAX_SHARD_BYTES,
    })
    .unwrap();
    out
}

/// The seed's recipe cut to stages 0 and 3, `steps` steps each of batches of 4 from 24 problems.
fn short_recipe(steps: u64) -> FinetuneRecipe {
    let mut recipe = FinetuneRecipe::seed();
    recipe.stages.retain(|s| s.stage == 0 || s.stage == 3);
    for s in &mut recipe.stages {
        s.problems = 24;
        s.batch = 4;
        s.group = s.group.min(4);
        s.steps = Some(steps);
        s.lr = 1e-3;
    }
    recipe.checkpoint_every = 2;
    recipe
}

fn request(init: &Path, run_dir: &Path, out: &Path, start_new: bool) -> FinetuneRequest {
    FinetuneRequest {
        start: if start_new {
            FinetuneStart::New {
                init: init.to_path_buf(),
                init_stage: None,
                recipe: Box::new(short_recipe(5)),
                out: out.to_path_buf(),
                dtype: WeightDtype::F32,
            }
        } else {
            FinetuneStart::Resume
        },
        run_dir: run_dir.to_path_buf(),
        cpu_shards: Some(2),
        stop_at_step: None,
        time_budget: None,
    }
}

fn stage_bytes(out: &Path, stage: &str) -> Vec<u8> {
    std::fs::read(out.join(format!("{stage}.safetensors"))).unwrap()
}

#[test]
fn the_seeds_recipe_fine_tunes_an_imported_gpt2_and_resumes_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let init = standin(tmp.path());

    // Unbroken.
    let (run, out) = (tmp.path().join("run"), tmp.path().join("out"));
    let report = finetune(&request(&init, &run, &out, true), &Device::Cpu, &mut Silent).unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    assert_eq!(report.progress.global_step, 10);
    let ids: Vec<&str> = report
        .progress
        .finished
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids, ["stage0", "stage3"]);
    assert!(report
        .progress
        .finished
        .iter()
        .all(|r| r.final_loss.is_finite()));
    let folder = WeightsDir::open(&out).unwrap();
    assert_eq!(folder.manifest.family, Family::seed());
    let stages: Vec<&str> = folder
        .manifest
        .stages
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(stages, ["stage0", "stage3"]);
    // Training moved the weights (stage 0 differs from the imported model, stage 3 from 0).
    let imported = stage_bytes(&init, "stage0");
    assert_ne!(stage_bytes(&out, "stage0"), imported);
    assert_ne!(stage_bytes(&out, "stage3"), stage_bytes(&out, "stage0"));
    // Every step's metrics.
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 10);
    // The schedule: a warmup of 5% of 5 steps is none, so step 0 runs at the peak.
    assert!(
        metrics.lines().next().unwrap().contains(r#""lr":0.001"#),
        "{metrics}"
    );

    // Killed at step 7 (stage 3's second step, after the checkpoint at 6), then resumed.
    let (run2, out2) = (tmp.path().join("run2"), tmp.path().join("out2"));
    let mut killed = request(&init, &run2, &out2, true);
    killed.stop_at_step = Some(7);
    let report = finetune(&killed, &Device::Cpu, &mut Silent).unwrap();
    assert_eq!(report.outcome, Outcome::Stopped);
    assert_eq!(stage_bytes(&out2, "stage0"), stage_bytes(&out, "stage0"));
    assert!(!out2.join("stage3.safetensors").exists());
    let report = finetune(
        &request(&init, &run2, &out2, false),
        &Device::Cpu,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    assert_eq!(stage_bytes(&out2, "stage3"), stage_bytes(&out, "stage3"));

    // A second run into a directory that holds one is refused; so is a folder of our own family.
    let again = finetune(&request(&init, &run, &out, true), &Device::Cpu, &mut Silent);
    let e = format!("{:#}", again.err().unwrap());
    assert!(e.contains("already holds a run"), "{e}");
    let ours = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../weights");
    let e = finetune(
        &request(&ours, &tmp.path().join("run3"), &out, true),
        &Device::Cpu,
        &mut Silent,
    )
    .err()
    .unwrap();
    assert!(
        format!("{e:#}").contains("this project's own models"),
        "{e:#}"
    );
    // An output folder of another model is refused before any step.
    let other = tmp.path().join("ours");
    std::fs::create_dir(&other).unwrap();
    for f in std::fs::read_dir(&ours).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, other.join(f.file_name().unwrap())).unwrap();
        }
    }
    let run4 = tmp.path().join("run4");
    let e = finetune(
        &request(&init, &run4, &other, true),
        &Device::Cpu,
        &mut Silent,
    )
    .err()
    .unwrap();
    assert!(
        format!("{e:#}").contains("holds another model or family"),
        "{e:#}"
    );
    assert!(!run4.join("recipe.json").exists(), "nothing written");
    // A run killed before its first checkpoint resumes from the start.
    let (run5, out5) = (tmp.path().join("run5"), tmp.path().join("out5"));
    let mut early = request(&init, &run5, &out5, true);
    early.stop_at_step = Some(1);
    finetune(&early, &Device::Cpu, &mut Silent).unwrap();
    assert!(!run5.join("checkpoint.safetensors").exists());
    let resumed = request(&init, &run5, &out5, false);
    let report = finetune(&resumed, &Device::Cpu, &mut Silent).unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    assert_eq!(stage_bytes(&out5, "stage3"), stage_bytes(&out, "stage3"));
}

/// `coconut-lab` cut like [`short_recipe`] to stages 0 and 2, validated every 2 steps on 6
/// held-out problems.
fn short_lab_recipe(steps: u64) -> FinetuneRecipe {
    let mut recipe = FinetuneRecipe::coconut_lab();
    recipe.stages.retain(|s| s.stage == 0 || s.stage == 2);
    let seed = short_recipe(steps);
    for s in &mut recipe.stages {
        s.problems = 24;
        s.batch = 4;
        s.group = s.group.min(4);
        s.steps = Some(steps);
        s.lr = 1e-3;
    }
    recipe.checkpoint_every = seed.checkpoint_every;
    recipe.early_stop = Some(EarlyStop {
        every: 2,
        problems: 6,
        until: 100.0,
    });
    recipe
}

#[test]
fn coconut_lab_thinks_the_first_steps_validates_and_resumes_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let init = standin(tmp.path());
    let start = |recipe: FinetuneRecipe, run: &Path, out: &Path| FinetuneRequest {
        start: FinetuneStart::New {
            init: init.clone(),
            init_stage: None,
            recipe: Box::new(recipe),
            out: out.to_path_buf(),
            dtype: WeightDtype::F32,
        },
        ..request(&init, run, out, false)
    };
    let (run, out) = (tmp.path().join("lab"), tmp.path().join("lab-out"));
    let report = finetune(
        &start(short_lab_recipe(5), &run, &out),
        &Device::Cpu,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    // The stand-in answers none of them (2 layers of width 16): no stage ends early.
    let ends: Vec<(&str, u64, &str)> = report
        .progress
        .finished
        .iter()
        .map(|r| (r.id.as_str(), r.steps, r.ended.as_str()))
        .collect();
    assert_eq!(ends, [("stage0", 5, "schedule"), ("stage2", 5, "schedule")]);
    // Validated at stage steps 2 and 4 of each stage (not at its last), on the 6 problems.
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let checks: Vec<(String, u64, u64)> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "val")
        .map(|v| {
            let accuracy = v["val_greedy"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&accuracy), "{v}");
            (
                v["stage"].as_str().unwrap().to_string(),
                v["stage_step"].as_u64().unwrap(),
                v["n_val"].as_u64().unwrap(),
            )
        })
        .collect();
    let at = |stage: &str, step| (stage.to_string(), step, 6);
    assert_eq!(
        checks,
        [
            at("stage0", 2),
            at("stage0", 4),
            at("stage2", 2),
            at("stage2", 4)
        ]
    );
    // The folder says which steps the thoughts replace, so every reader lays them out so.
    let folder = WeightsDir::open(&out).unwrap();
    for entry in &folder.manifest.stages {
        let stage = coconut_core::seed::layout::SeedStage::of_entry(entry).unwrap();
        assert_eq!(
            stage.order(),
            coconut_core::stage::LatentOrder::First,
            "{}",
            entry.id
        );
    }
    // Its layouts and loss are not the seed's: the same settings in the seed's order train
    // other weights from the same start.
    let mut seed_order = short_lab_recipe(5);
    seed_order.order = coconut_core::stage::LatentOrder::Last;
    seed_order.early_stop = None;
    let seed_out = tmp.path().join("seed-order-out");
    finetune(
        &start(seed_order, &tmp.path().join("seed-order"), &seed_out),
        &Device::Cpu,
        &mut Silent,
    )
    .unwrap();
    assert_ne!(
        stage_bytes(&seed_out, "stage2"),
        stage_bytes(&out, "stage2")
    );

    // Killed at step 7 (after the checkpoint at 6 and stage 2's check at its step 2), resumed.
    let (run2, out2) = (tmp.path().join("lab2"), tmp.path().join("lab2-out"));
    let mut killed = start(short_lab_recipe(5), &run2, &out2);
    killed.stop_at_step = Some(7);
    assert_eq!(
        finetune(&killed, &Device::Cpu, &mut Silent)
            .unwrap()
            .outcome,
        Outcome::Stopped
    );
    let report = finetune(
        &request(&init, &run2, &out2, false),
        &Device::Cpu,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    assert_eq!(stage_bytes(&out2, "stage2"), stage_bytes(&out, "stage2"));
}

/// The candle path (the definition, and the CUDA path) through the same driver: the same first
/// loss, and after one AdamW step the same weights up to the noise AdamW makes of gradients that
/// are zero but for rounding (the key biases': softmax ignores a shift of every score), which it
/// scales to a full step of either sign.
#[test]
fn the_candle_path_takes_the_same_first_step() {
    let tmp = tempfile::tempdir().unwrap();
    let init = standin(tmp.path());
    let run = |name: &str, cpu: Option<usize>| {
        let mut r = request(&init, &tmp.path().join(name), &tmp.path().join(name), true);
        if let FinetuneStart::New { recipe, out, .. } = &mut r.start {
            recipe.stages.retain(|s| s.stage == 3);
            recipe.stages[0].steps = Some(1);
            *out = tmp.path().join(format!("{name}-out"));
        }
        r.cpu_shards = cpu;
        finetune(&r, &Device::Cpu, &mut Silent).unwrap();
        let metrics = std::fs::read_to_string(tmp.path().join(name).join("metrics.jsonl")).unwrap();
        let line: serde_json::Value =
            serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
        let dir = WeightsDir::open(tmp.path().join(format!("{name}-out"))).unwrap();
        (
            line["loss"].as_f64().unwrap(),
            dir.stage("stage3").unwrap().2,
        )
    };
    let ((cpu_loss, cpu), (candle_loss, candle)) = (run("cpu", Some(2)), run("candle", None));
    assert!(
        (cpu_loss - candle_loss).abs() < 1e-5 * candle_loss,
        "{cpu_loss} vs {candle_loss}"
    );
    for (name, t) in &cpu.tensors {
        let (a, b) = (t.to_f32(), candle.tensors[name].to_f32());
        let e = coconut_core::compare::relative_error(&a, &b);
        assert!(e < 1e-3, "{name}: relative error {e}");
    }
}

#[test]
fn the_schedule_is_transformers_cosine_with_warmup() {
    // get_cosine_schedule_with_warmup(warmup=2, total=10) factors at steps 0, 1, 2, 6, 10.
    let lr = |step| cosine_with_warmup(step, 10, 2, 1.0);
    assert_eq!(lr(0), 0.0);
    assert_eq!(lr(1), 0.5);
    assert_eq!(lr(2), 1.0);
    assert!((lr(6) - 0.5).abs() < 1e-12);
    assert!(lr(10).abs() < 1e-12);
    // The seed's stage 1: 3,750 steps, 187 of warmup.
    let seed = FinetuneRecipe::seed();
    let s1 = &seed.stages[1];
    assert_eq!(s1.total_steps(), 3_750);
    assert_eq!((seed.warmup_fraction * 3_750.0) as u64, 187);
    assert_eq!(seed.stages[0].total_steps(), 9_375);
}

/// The seed's loss and gradients, as its own procedure computes them in transformers on the
/// stand-in (tests/fixtures/seed-standin/finetune-golden.json, made by
/// scripts/seed_loss_goldens.py: stage 0 one padded micro-batch, stages 1-3 one example at a
/// time on a KV cache with the thought-norm term, accumulated), equal to what `train --init
/// --recipe seed` computes in one pass with its objective.
#[test]
fn the_seeds_loss_and_gradients_equal_its_procedure_in_transformers() {
    use coconut_core::layout::Layout;
    use coconut_core::seed::layout::{SeedLayout, SeedStage};
    use coconut_core::Problem;
    use coconut_trainer::cpu::CpuTrainer;
    use coconut_trainer::objective::Objective;
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, weights) = WeightsDir::open(standin(tmp.path()))
        .unwrap()
        .stage("stage0")
        .unwrap();
    let golden: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/seed-standin/finetune-golden.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let problems: Vec<Problem> = golden["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Problem::new(p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
        .collect();
    let tokenizer = coconut_core::seed::tokenizer::Gpt2Tokenizer::new();
    let close = |got: f64, want: f64, tol: f64, what: &str| {
        assert!(
            (got - want).abs() <= tol * want.abs(),
            "{what}: {got} vs {want}"
        );
    };
    for stage in SeedStage::ALL {
        let k = stage.index();
        let want = &golden["stages"][format!("stage{k}")];
        let layouts: Vec<Layout> = problems
            .iter()
            .map(|p| SeedLayout::new(&tokenizer, p, stage).training_layout())
            .collect();
        let refs: Vec<&Layout> = layouts.iter().collect();
        // Stage 0: the four in one micro-batch; after it, each example its own.
        let objective = Objective {
            group: Some(if k == 0 { 16 } else { 1 }),
            thought_norm: if k == 0 { 0.0 } else { 0.001 },
        };
        let mut engine = CpuTrainer::new(&weights, FinetuneRecipe::seed().adamw(), 2).unwrap();
        let stats = engine
            .compute_with(&refs, k > 0, StepNoise::NONE, &objective)
            .unwrap();
        let at = format!("stage {k}");
        close(
            stats.loss,
            want["loss"].as_f64().unwrap(),
            1e-5,
            &format!("{at} loss"),
        );
        close(
            stats.grad_norm,
            want["grad_norm"].as_f64().unwrap(),
            1e-4,
            &format!("{at} gradient norm"),
        );
        let mut compared = 0;
        for (name, range) in &engine.layout().tensors {
            let Some(w) = want["grads"].get(&name.name) else {
                continue;
            };
            compared += 1;
            let w: Vec<f32> = serde_json::from_value(w.clone()).unwrap();
            let e = coconut_core::compare::relative_error(&engine.grads()[range.clone()], &w);
            assert!(e < 1e-4, "{at} {}: relative error {e}", name.name);
        }
        assert_eq!(compared, 3, "{at}: every tensor of the golden compared");
    }
}

/// A batch computed in micro-batches, gradients summed, is the same step: the CPU engine's
/// gradient equal to the whole batch's, the candle path's loss and gradient norm too.
#[test]
fn micro_batches_sum_to_the_batch_gradient() {
    use coconut_core::layout::Layout;
    use coconut_core::seed::layout::{SeedLayout, SeedStage};
    use coconut_core::seed::problems::{split, SeedSplit};
    use coconut_trainer::cpu::CpuTrainer;
    use coconut_trainer::learner::Learner;
    use coconut_trainer::objective::Objective;
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, weights) = WeightsDir::open(standin(tmp.path()))
        .unwrap()
        .stage("stage0")
        .unwrap();
    let tokenizer = coconut_core::seed::tokenizer::Gpt2Tokenizer::new();
    let layouts: Vec<Layout> = split(SeedSplit::Train)[..7]
        .iter()
        .map(|p| SeedLayout::new(&tokenizer, p, SeedStage::ALL[3]).training_layout())
        .collect();
    let refs: Vec<&Layout> = layouts.iter().collect();
    let objective = Objective {
        group: Some(2),
        thought_norm: 0.01,
    };
    let adamw = FinetuneRecipe::seed().adamw();

    let mut whole = CpuTrainer::new(&weights, adamw.clone(), 2).unwrap();
    let want = whole
        .compute_with(&refs, true, StepNoise::NONE, &objective)
        .unwrap();
    let mut parts = CpuTrainer::new(&weights, adamw.clone(), 2).unwrap();
    let w = objective.for_layouts(&refs, true);
    let mut loss = 0.0;
    for (i, (part, pw)) in refs.chunks(3).zip(w.chunks(3)).enumerate() {
        loss += parts
            .compute_weighted(part, true, StepNoise::NONE, pw, i > 0)
            .unwrap();
    }
    assert!(
        (loss - want.loss).abs() < 1e-6 * want.loss,
        "{loss} vs {}",
        want.loss
    );
    let e = coconut_core::compare::relative_error(parts.grads(), whole.grads());
    assert!(e < 1e-6, "gradient relative error {e}");

    for cpu in [Some(2), None] {
        let mut learner = Learner::from_weights(
            &weights,
            adamw.clone(),
            &Device::Cpu,
            cpu,
            Default::default(),
        )
        .unwrap();
        let got = learner
            .compute_in_parts(&refs, true, &objective, 3)
            .unwrap();
        let full = learner.compute_with(&refs, true, &objective).unwrap();
        assert!(
            (got.loss - full.loss).abs() < 1e-5 * full.loss,
            "{cpu:?} loss"
        );
        let gap = (got.grad_norm - full.grad_norm).abs() / full.grad_norm;
        assert!(
            gap < 1e-5,
            "{cpu:?}: gradient norm {} vs {}",
            got.grad_norm,
            full.grad_norm
        );
    }
}

/// A pretrained GPT-2 of GPT-2's own 50,257 tokens (a Hugging Face folder) imports with the
/// seed's four tokens added, and fine-tunes.
#[test]
fn a_pretrained_gpt2_imports_with_the_seeds_tokens_and_fine_tunes() {
    use coconut_core::ModelConfig;
    let tmp = tempfile::tempdir().unwrap();
    let config = ModelConfig {
        vocab_size: 50_257,
        n_positions: 96,
        n_embd: 8,
        n_layer: 1,
        n_head: 2,
        ..ModelConfig::default()
    };
    let pretrained = coconut_core::weights::random_weights(&config, 3);
    let hf = tmp.path().join("gpt2");
    coconut_trainer::export::export_hf(
        &pretrained,
        &coconut_core::Stage::latent(0, 1, 5),
        &hf,
        tmp.path(),
        false,
    )
    .unwrap();
    let base = tmp.path().join("base");
    let imported = import(&ImportRequest {
        source: Source::Hf(hf),
        stage: "stage0".into(),
        layout: LayoutFamily::Seed,
        n_head: None,
        dtype: WeightDtype::F32,
        out: base.clone(),
        shard_bytes: coconut_core::manifest::MAX_SHARD_BYTES,
    })
    .unwrap();
    assert_eq!(imported.added_tokens, 4);
    assert_eq!(imported.config.vocab_size, coconut_core::seed::VOCAB);
    let (_, _, weights) = WeightsDir::open(&base).unwrap().stage("stage0").unwrap();
    let table = weights.f32("wte.weight");
    let old = pretrained.f32("wte.weight");
    assert_eq!(&table[..old.len()], &old[..], "GPT-2's own rows kept");
    let (run, out) = (tmp.path().join("run"), tmp.path().join("out"));
    let mut r = request(&base, &run, &out, true);
    if let FinetuneStart::New { recipe, .. } = &mut r.start {
        recipe.stages.truncate(1);
        recipe.stages[0].steps = Some(2);
    }
    let report = finetune(&r, &Device::Cpu, &mut Silent).unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    assert!(out.join("stage0.safetensors").exists());
}
