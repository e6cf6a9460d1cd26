//! Training end to end on the CPU with tiny models: the loss falls, a stage-0 model learns small
//! additions, latent stages train, a killed run resumes to identical weights, and a diverging
//! run stops with a clear error.

use candle_core::Device;
use coconut_core::data::DataConfig;
use coconut_core::layout::Layout;
use coconut_core::manifest::SetAccuracy;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::ModelWeights;
use coconut_core::{ModelConfig, Stage};
use coconut_trainer::batch::{loss, Batch};
use coconut_trainer::branch::Branch;
use coconut_trainer::checkpoint::{self, Progress};
use coconut_trainer::eval::{evaluate, EvalSet};
use coconut_trainer::optim::{AdamW, AdamWConfig};
use coconut_trainer::provenance::RunInfo;
use coconut_trainer::train::{train, Outcome, RunDir, Silent, TrainOptions, TrainReport};
use coconut_trainer::{Gpt, StagePlan, TrainConfig};
use std::time::Instant;

mod common;
use common::weight_bits;

fn tiny_model(layers: usize, width: usize, heads: usize) -> ModelConfig {
    ModelConfig {
        n_positions: 64,
        n_embd: width,
        n_layer: layers,
        n_head: heads,
        ..ModelConfig::default()
    }
}

/// Trains `config` from scratch in `dir` on the CPU, silently.
fn train_fresh(config: &TrainConfig, dir: &std::path::Path) -> anyhow::Result<TrainReport> {
    train(
        config,
        dir,
        &Device::Cpu,
        &TrainOptions::default(),
        &mut Silent,
    )
}

/// 1-2 digit problems (10,000 exist).
fn small_data(n_train: usize) -> DataConfig {
    DataConfig {
        seed: 7,
        n_train,
        n_val: 200,
        n_test: 500,
        n_ood: 0,
        min_digits: 1,
        max_digits: 2,
        ..DataConfig::default()
    }
}

fn tiny_run(stages: &[(&str, f64)]) -> TrainConfig {
    TrainConfig {
        model: tiny_model(1, 16, 2),
        data: small_data(96),
        stages: stages
            .iter()
            .map(|&(stage, epochs)| StagePlan::new(stage, epochs))
            .collect(),
        batch_size: 16,
        warmup_steps: 2,
        checkpoint_every: 4,
        log_every: 1,
        val_problems: 0,
        ..TrainConfig::default()
    }
}

#[test]
fn loss_falls_on_a_fixed_batch() {
    let tok = Tokenizer::new();
    let config = tiny_model(1, 32, 2);
    let model = Gpt::new_random(&config, 3, &Device::Cpu).unwrap();
    let stage = Stage::latent(0, 1, 3);
    let problems = small_data(64).generate().unwrap().train;
    let layouts: Vec<Layout> = problems[..16]
        .iter()
        .map(|p| Layout::new(&tok, p, &stage).unwrap())
        .collect();
    let refs: Vec<&Layout> = layouts.iter().collect();
    let batch = Batch::new(&refs, &stage, &Device::Cpu).unwrap();
    let adamw = AdamWConfig {
        beta1: 0.9,
        beta2: 0.98,
        eps: 1e-8,
        weight_decay: 0.0,
        decay_all: false,
    };
    let mut opt = AdamW::new(model.named_vars(), adamw).unwrap();
    let mut losses = Vec::new();
    for _ in 0..40 {
        let l = loss(&model, &batch).unwrap();
        losses.push(l.to_scalar::<f32>().unwrap());
        opt.step(&l.backward().unwrap(), 3e-3, 1.0).unwrap();
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(first > 2.5, "an untrained model is near uniform: {first}");
    assert!(last < 0.5 * first, "loss went from {first} to {last}");
}

/// Stage 0 on 4,300 of the 10,000 problems with 1-2 digit operands, at most six epochs (about
/// 810 steps), ending early at `until_val`.
fn learning_run(until_val: Option<f64>) -> TrainConfig {
    TrainConfig {
        model: tiny_model(2, 64, 4),
        data: DataConfig {
            n_test: 300,
            ..small_data(4300)
        },
        stages: vec![StagePlan {
            until_val,
            ..StagePlan::new("stage0", 6.0)
        }],
        batch_size: 32,
        lr: 3e-3,
        warmup_steps: 20,
        weight_decay: 0.0,
        checkpoint_every: 1000,
        val_problems: 0,
        ..TrainConfig::default()
    }
}

/// Greedy and teacher-forced accuracy of a run's first stage on its `test` or `val` set.
fn first_stage_accuracy(report: &TrainReport, config: &TrainConfig, set: &str) -> SetAccuracy {
    let splits = config.data.generate().unwrap();
    let problems = if set == "test" {
        splits.test
    } else {
        splits.val
    };
    let stage = config.stage(&config.stages[0]).unwrap();
    let set_to_score = EvalSet {
        tokenizer: &Tokenizer::new(),
        problems: &problems,
        stage: &stage,
        batch_size: 256,
    };
    evaluate(&report.model, set, set_to_score).unwrap()
}

#[test]
fn stage_zero_learns_small_additions() {
    // 4,300 of the 10,000 problems with 1-2 digit operands, six epochs (about 810 steps).
    // Tensors this small gain nothing from threads, which only contend with the other tests.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let dir = tempfile::tempdir().unwrap();
    let config = learning_run(None);
    let started = Instant::now();
    let report = train_fresh(&config, dir.path()).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let acc = first_stage_accuracy(&report, &config, "test");
    eprintln!(
        "stage 0, 1-2 digits: {:?} after {} steps in {seconds:.0} s: greedy {:.2}%, teacher-forced {:.2}% (n = {})",
        report.outcome, report.progress.global_step, acc.greedy, acc.teacher_forced, acc.n
    );
    assert!(acc.greedy >= 90.0, "greedy accuracy {:.2}%", acc.greedy);
    assert!(
        acc.teacher_forced >= 90.0,
        "teacher-forced accuracy {:.2}%",
        acc.teacher_forced
    );
}

#[test]
fn a_stage_ends_when_validation_reaches_its_goal() {
    // The learning test's run, with at most its six epochs, ending once 200 validation problems
    // are 95% right; a goal of 100% on a tiny model is never reached and the schedule runs out.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        val_problems: 200,
        val_every: 50,
        ..learning_run(Some(95.0))
    };
    let report = train_fresh(&config, dir.path()).unwrap();
    let record = &report.progress.finished[0];
    let full = config.total_steps(&config.stages[0], 4300);
    eprintln!("{record:?} of {full} steps");
    assert!(record.ended.starts_with("validation"), "{}", record.ended);
    assert!(
        record.steps < full && record.steps.is_multiple_of(50),
        "{record:?}"
    );
    assert_eq!(report.progress.global_step, record.steps);
    let acc = first_stage_accuracy(&report, &config, "val");
    assert!(acc.greedy >= 95.0, "validation accuracy {:.2}%", acc.greedy);

    // Two checks in a row: the same run goes on past its first check at the goal and ends at
    // the second of two consecutive ones (the metrics' last two checks both reach it).
    let confirmed = TrainConfig {
        val_confirm: 2,
        ..config.clone()
    };
    let dir = tempfile::tempdir().unwrap();
    let report = train_fresh(&confirmed, dir.path()).unwrap();
    let twice = &report.progress.finished[0];
    eprintln!("{twice:?}");
    assert!(
        twice.ended.ends_with("2 checks in a row"),
        "{}",
        twice.ended
    );
    assert!(
        twice.steps >= record.steps + 50,
        "{twice:?} after {record:?}"
    );
    let metrics = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let checks: Vec<f64> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "val")
        .map(|v| v["val_greedy"].as_f64().unwrap())
        .collect();
    let n = checks.len();
    assert!(
        n >= 2 && checks[n - 2] >= 95.0 && checks[n - 1] >= 95.0,
        "{checks:?}"
    );
    assert!(
        checks[..n - 1]
            .windows(2)
            .all(|w| w[0] < 95.0 || w[1] < 95.0),
        "no earlier two in a row: {checks:?}"
    );

    let never = TrainConfig {
        val_problems: 20,
        val_every: 2,
        ..tiny_run(&[("stage0", 1.0)])
    };
    let mut never = never;
    never.stages[0].until_val = Some(100.0);
    let dir = tempfile::tempdir().unwrap();
    let report = train_fresh(&never, dir.path()).unwrap();
    let record = &report.progress.finished[0];
    assert_eq!(record.ended, "schedule complete after 6 steps");
    assert_eq!(record.steps, 6);
}

/// A CPU-engine-only setting of the latent stages (`with` on, `without` off, the same run
/// otherwise, stages 0 and 2): training with it finishes and repeats bit for bit, stage 0 is
/// what it is without it, stage 2 is not, and the candle path refuses it with `refusal`.
fn check_latent_stage_setting(with: TrainConfig, without: TrainConfig, refusal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let report = train_fresh(&with, dir.path()).unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    let again = tempfile::tempdir().unwrap();
    train_fresh(&with, again.path()).unwrap();
    assert_eq!(
        weight_bits(dir.path(), "stage2"),
        weight_bits(again.path(), "stage2")
    );
    let off = tempfile::tempdir().unwrap();
    train_fresh(&without, off.path()).unwrap();
    assert_eq!(
        weight_bits(dir.path(), "stage0"),
        weight_bits(off.path(), "stage0")
    );
    assert_ne!(
        weight_bits(dir.path(), "stage2"),
        weight_bits(off.path(), "stage2")
    );
    let candle = TrainConfig {
        engine: coconut_trainer::Engine::Candle,
        ..with
    };
    let refused = tempfile::tempdir().unwrap();
    let e = match train_fresh(&candle, refused.path()) {
        Ok(_) => panic!("the candle path must refuse it"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains(refusal), "{e}");
}

#[test]
fn data_mixing_trains_and_is_refused_without_the_cpu_engine() {
    // Mixing changes what stage 2 trains on; stage 0 has no earlier stage to mix in.
    let with = TrainConfig {
        mix: 0.5,
        ..tiny_run(&[("stage0", 1.0), ("stage2", 1.0)])
    };
    let without = TrainConfig {
        mix: 0.0,
        ..with.clone()
    };
    check_latent_stage_setting(with, without, "mix (data mixing) needs the CPU engine");
}

#[test]
fn thought_noise_trains_only_the_fed_back_stages_and_is_refused_without_the_cpu_engine() {
    // Stage 0 feeds no thought back, so the noise leaves it as it was; stage 2 trains through it.
    let with = TrainConfig {
        thought_noise: 0.3,
        ..tiny_run(&[("stage0", 1.0), ("stage2", 1.0)])
    };
    let without = TrainConfig {
        thought_noise: 0.0,
        ..with.clone()
    };
    check_latent_stage_setting(with, without, "thought_noise needs the CPU engine");
}

#[test]
fn a_stages_own_thought_noise_overrides_the_runs() {
    // The run adds noise, stage 2 sets its own to none: it trains as a run without noise does.
    let plain = tiny_run(&[("stage0", 1.0), ("stage2", 1.0)]);
    let mut quiet = TrainConfig {
        thought_noise: 0.3,
        ..plain.clone()
    };
    quiet.stages[1].thought_noise = Some(0.0);
    let noisy = TrainConfig {
        thought_noise: 0.3,
        ..plain.clone()
    };
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    for (config, dir) in [&plain, &quiet, &noisy].into_iter().zip(&dirs) {
        train_fresh(config, dir.path()).unwrap();
    }
    let stage2 = |i: usize| weight_bits(dirs[i].path(), "stage2");
    assert_eq!(stage2(0), stage2(1));
    assert_ne!(stage2(0), stage2(2));
}

#[test]
fn a_stages_dropout_trains_only_that_stage_and_is_refused_without_the_cpu_engine() {
    // Dropout set for stage 2 alone leaves stage 0 as it was.
    let without = tiny_run(&[("stage0", 1.0), ("stage2", 1.0)]);
    let mut with = without.clone();
    with.stages[1].dropout = Some(0.1);
    check_latent_stage_setting(with, without, "dropout needs the CPU engine");
}

#[test]
fn latent_stages_and_baselines_train() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_run(&[
        ("stage0", 1.0),
        ("stage2", 1.0),
        ("stage3", 1.0),
        ("pause", 0.5),
        ("nocot", 0.5),
    ]);
    let report = train_fresh(&config, dir.path()).unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    let run = RunDir(dir.path().to_path_buf());
    for (plan, record) in config.stages.iter().zip(&report.progress.finished) {
        assert_eq!(record.id, plan.stage);
        assert!(record.final_loss.is_finite() && record.final_loss > 0.0);
        let bytes = std::fs::read(run.stage_weights(&plan.stage)).unwrap();
        ModelWeights::from_safetensors(&bytes, &plan.stage, Some(&config.model)).unwrap();
    }
    // 96 problems in batches of 16: 6 steps per epoch.
    assert_eq!(report.progress.global_step, 6 + 6 + 6 + 3 + 3);
    let metrics = std::fs::read_to_string(run.metrics()).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["stage"] == "stage3" && l["tokens_per_s"].as_f64().unwrap() > 0.0));
}

#[test]
fn a_branch_equals_the_run_trained_from_scratch() {
    // The parent trains stages 0-2; the branch keeps stages 0-1 and trains stage 2 longer.
    let parent_config = tiny_run(&[("stage0", 2.0), ("stage1", 1.0), ("stage2", 1.0)]);
    let parent = tempfile::tempdir().unwrap();
    let named = |command: &str| RunInfo {
        command: command.into(),
        ..RunInfo::default()
    };
    let parent_options = TrainOptions {
        run_info: Some(named("parent")),
        ..TrainOptions::default()
    };
    train(
        &parent_config,
        parent.path(),
        &Device::Cpu,
        &parent_options,
        &mut Silent,
    )
    .unwrap();
    let config = tiny_run(&[("stage0", 2.0), ("stage1", 1.0), ("stage2", 2.0)]);
    let scratch = tempfile::tempdir().unwrap();
    let whole = train_fresh(&config, scratch.path()).unwrap();

    let branch = |at: &str| TrainOptions {
        branch: Some(Branch {
            from: parent.path().to_path_buf(),
            at_stage: at.into(),
        }),
        run_info: Some(named("branch")),
        ..TrainOptions::default()
    };
    let branched = tempfile::tempdir().unwrap();
    let report = train(
        &config,
        branched.path(),
        &Device::Cpu,
        &branch("stage2"),
        &mut Silent,
    )
    .unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    assert_eq!(report.progress.global_step, whole.progress.global_step);
    for stage in ["stage0", "stage1", "stage2"] {
        let (a, b) = (
            weight_bits(scratch.path(), stage),
            weight_bits(branched.path(), stage),
        );
        assert!(a == b, "{stage} weights differ");
    }
    // The inherited stages keep their records; the branch point is in the metrics.
    assert_eq!(
        report.progress.finished[..2],
        checkpoint::read_progress(&RunDir(parent.path().to_path_buf()).checkpoint())
            .unwrap()
            .finished[..2]
    );
    let metrics = std::fs::read_to_string(RunDir(branched.path().to_path_buf()).metrics()).unwrap();
    assert!(metrics.contains(r#""event":"branch""#), "{metrics}");
    // Each stage's provenance is the run that trained it.
    let info = RunInfo::load(branched.path()).unwrap().unwrap();
    assert_eq!(info.for_stage("stage0").command, "parent");
    assert_eq!(info.for_stage("stage1").command, "parent");
    assert_eq!(info.for_stage("stage2").command, "branch");

    // Refused: a stage not in the run, the first stage, and earlier stages planned differently.
    let refused = |config: &TrainConfig, at: &str| {
        let dir = tempfile::tempdir().unwrap();
        train(config, dir.path(), &Device::Cpu, &branch(at), &mut Silent)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    };
    assert!(refused(&config, "stage5").contains("not a stage of this run"));
    assert!(refused(&config, "stage0").contains("nothing before it"));
    let earlier_changed = tiny_run(&[("stage0", 3.0), ("stage1", 1.0), ("stage2", 2.0)]);
    assert!(refused(&earlier_changed, "stage2").contains("planned differently"));
    let other_lr = TrainConfig {
        lr: 0.5,
        ..config.clone()
    };
    assert!(refused(&other_lr, "stage2").contains("beyond the stages"));
    // Thoughts per step may change only where no inherited stage has thoughts.
    let two_per_step = TrainConfig {
        thoughts_per_step: 2,
        ..config.clone()
    };
    assert!(refused(&two_per_step, "stage2").contains("beyond the stages"));
    assert_eq!(refused(&two_per_step, "stage1"), "");
}

#[test]
fn a_stage_learning_rate_mixing_or_seed_changes_that_stage_only() {
    let base = tiny_run(&[("stage0", 1.0), ("stage1", 1.0)]);
    let mut tuned = base.clone();
    tuned.stages[1].lr = Some(0.01);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    train_fresh(&base, a.path()).unwrap();
    train_fresh(&tuned, b.path()).unwrap();
    assert!(weight_bits(a.path(), "stage0") == weight_bits(b.path(), "stage0"));
    assert!(weight_bits(a.path(), "stage1") != weight_bits(b.path(), "stage1"));
    // The schedule of stage 1 peaks at its own rate.
    let metrics = std::fs::read_to_string(RunDir(b.path().to_path_buf()).metrics()).unwrap();
    let peak = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["stage"] == "stage1")
        .filter_map(|l| l["lr"].as_f64())
        .fold(0.0, f64::max);
    assert!((peak - 0.01).abs() < 1e-12, "stage1 peaked at {peak}");
    // So does a stage's own data mixing.
    let mut mixed = base.clone();
    mixed.stages[1].mix = Some(0.5);
    let c = tempfile::tempdir().unwrap();
    train_fresh(&mixed, c.path()).unwrap();
    assert!(weight_bits(a.path(), "stage0") == weight_bits(c.path(), "stage0"));
    assert!(weight_bits(a.path(), "stage1") != weight_bits(c.path(), "stage1"));
    // And its own seed: other draws, unless it names the run's seed.
    for (seed, same) in [(base.seed, true), (base.seed + 1, false)] {
        let mut seeded = base.clone();
        seeded.stages[1].seed = Some(seed);
        let d = tempfile::tempdir().unwrap();
        train_fresh(&seeded, d.path()).unwrap();
        assert!(weight_bits(a.path(), "stage0") == weight_bits(d.path(), "stage0"));
        assert_eq!(
            weight_bits(a.path(), "stage1") == weight_bits(d.path(), "stage1"),
            same,
            "stage1 with seed {seed}"
        );
    }
    let mut refused = base.clone();
    refused.stages[0].lr = Some(0.0);
    let err = train_fresh(&refused, tempfile::tempdir().unwrap().path())
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(err.contains("learning rate must be positive"), "{err}");
}

/// Every tensor of `weights`, flat, in the model's tensor order.
fn flat(weights: &ModelWeights) -> Vec<f32> {
    coconut_core::skeleton::tensor_specs(&weights.config)
        .iter()
        .flat_map(|spec| weights.f32(&spec.name))
        .collect()
}

#[test]
fn a_weight_average_is_each_stages_weights_and_resumes_bit_for_bit() {
    // Two stages of 12 steps; the average's decay 0.9.
    let plain = TrainConfig {
        checkpoint_every: 1,
        ..tiny_run(&[("stage0", 2.0), ("stage1", 2.0)])
    };
    let averaged = TrainConfig {
        ema_decay: Some(0.9),
        checkpoint_every: 4,
        ..plain.clone()
    };
    let run = tempfile::tempdir().unwrap();
    train_fresh(&averaged, run.path()).unwrap();
    let stage = |dir: &std::path::Path, id: &str| {
        let bytes = std::fs::read(RunDir(dir.to_path_buf()).stage_weights(id)).unwrap();
        flat(&ModelWeights::from_safetensors(&bytes, id, None).unwrap())
    };

    // The average recomputed here from the raw weights after each step of stage 0, read from
    // a run without one (the raw steps are the same: the average never feeds back within a
    // stage) checkpointed every step and stopped one step later.
    let mut expected = flat(&coconut_trainer::model::init_weights(
        &plain.model,
        plain.seed,
    ));
    let rate = (1.0f64 - 0.9) as f32;
    for step in 1..=12u64 {
        let dir = tempfile::tempdir().unwrap();
        let raw = if step < 12 {
            let stop = TrainOptions {
                stop_at_step: Some(step + 1),
                ..TrainOptions::default()
            };
            train(&plain, dir.path(), &Device::Cpu, &stop, &mut Silent).unwrap();
            let (snapshot, progress) =
                checkpoint::load(&RunDir(dir.path().to_path_buf()).checkpoint(), &plain.model)
                    .unwrap();
            assert_eq!(progress.global_step, step);
            snapshot
                .tensors
                .iter()
                .flat_map(|t| t.param.clone())
                .collect()
        } else {
            let stop = TrainOptions {
                stop_at_step: Some(13),
                ..TrainOptions::default()
            };
            train(&plain, dir.path(), &Device::Cpu, &stop, &mut Silent).unwrap();
            stage(dir.path(), "stage0") // the plain stage's last raw weights
        };
        for (a, w) in expected.iter_mut().zip(&raw) {
            *a += rate * (w - *a);
        }
    }
    let got = stage(run.path(), "stage0");
    let worst = got
        .iter()
        .zip(&expected)
        .map(|(g, e)| (g - e).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-6,
        "stage 0 is not the average of its steps: {worst}"
    );
    let plain_run = tempfile::tempdir().unwrap();
    train_fresh(&plain, plain_run.path()).unwrap();
    assert_ne!(got, stage(plain_run.path(), "stage0"));

    // Killed mid-stage 0 (after step 6, checkpoint at 4) and mid-stage 1 (after 19, at 16),
    // resumed: the same weights, bit for bit.
    let killed = tempfile::tempdir().unwrap();
    let options = |resume, stop| TrainOptions {
        resume,
        stop_at_step: stop,
        ..TrainOptions::default()
    };
    for (resume, stop) in [(false, Some(6)), (true, Some(19)), (true, None)] {
        train(
            &averaged,
            killed.path(),
            &Device::Cpu,
            &options(resume, stop),
            &mut Silent,
        )
        .unwrap();
    }
    for id in ["stage0", "stage1"] {
        assert!(
            weight_bits(run.path(), id) == weight_bits(killed.path(), id),
            "{id} differs after a resume"
        );
    }
    // A decay outside (0, 1) is refused before anything is written.
    for bad in [0.0, 1.0, f64::NAN] {
        let config = TrainConfig {
            ema_decay: Some(bad),
            ..averaged.clone()
        };
        let e = train_fresh(&config, tempfile::tempdir().unwrap().path())
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(e.contains("ema_decay"), "{bad}: {e}");
    }
}

#[test]
fn a_killed_run_resumes_to_identical_weights() {
    // Two stages of 12 steps, checkpoints every 4: kills land mid-stage 0 (after step 6, last
    // checkpoint at 4) and mid-stage 1 (after step 19, last checkpoint at 16).
    let config = tiny_run(&[("stage0", 2.0), ("stage1", 2.0)]);
    let whole = tempfile::tempdir().unwrap();
    train_fresh(&config, whole.path()).unwrap();

    let killed = tempfile::tempdir().unwrap();
    let stop = |step| TrainOptions {
        stop_at_step: Some(step),
        ..TrainOptions::default()
    };
    let first = train(&config, killed.path(), &Device::Cpu, &stop(6), &mut Silent).unwrap();
    assert_eq!(first.outcome, Outcome::Stopped);
    let resume = |step| TrainOptions {
        resume: true,
        stop_at_step: step,
        ..TrainOptions::default()
    };
    let second = train(
        &config,
        killed.path(),
        &Device::Cpu,
        &resume(Some(19)),
        &mut Silent,
    )
    .unwrap();
    assert_eq!(second.outcome, Outcome::Stopped);
    let last = train(
        &config,
        killed.path(),
        &Device::Cpu,
        &resume(None),
        &mut Silent,
    )
    .unwrap();
    assert_eq!(last.outcome, Outcome::Finished);
    assert_eq!(last.progress.global_step, 24);
    // Each stage's recorded time includes what it spent before an interruption.
    let recorded: f64 = last.progress.finished.iter().map(|r| r.seconds).sum();
    assert!(
        (recorded - last.progress.seconds).abs() < 1e-9,
        "stage records sum to {recorded} s of the run's {} s",
        last.progress.seconds
    );
    for plan in &config.stages {
        let (a, b) = (
            weight_bits(whole.path(), &plan.stage),
            weight_bits(killed.path(), &plan.stage),
        );
        assert!(a == b, "{} weights differ", plan.stage);
    }

    // A fresh start in a used directory is refused; a different config cannot resume it.
    assert!(train_fresh(&config, killed.path()).is_err());
    let other = TrainConfig {
        seed: 99,
        ..config.clone()
    };
    assert!(train(
        &other,
        killed.path(),
        &Device::Cpu,
        &resume(None),
        &mut Silent
    )
    .is_err());
}

#[test]
fn a_diverging_run_stops_with_a_clear_error_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        lr: 1e4,
        checkpoint_every: 1,
        ..tiny_run(&[("stage0", 3.0)])
    };
    let err = match train_fresh(&config, dir.path()) {
        Ok(_) => panic!("a learning rate of 1e4 must diverge"),
        Err(e) => e.to_string(),
    };
    eprintln!("{err}");
    assert!(err.contains("diverged at stage stage0, step"), "{err}");
    // The checkpoint on disk is loadable and finite.
    let (snapshot, progress) = checkpoint::load(
        &RunDir(dir.path().to_path_buf()).checkpoint(),
        &config.model,
    )
    .unwrap();
    assert!(progress.global_step >= 1);
    assert!(snapshot.tensors.iter().all(|t| t
        .param
        .iter()
        .chain(&t.adam_m)
        .all(|v| v.is_finite())));
}

#[test]
fn a_time_budget_stops_with_a_checkpoint_and_resume_finishes() {
    let config = TrainConfig {
        time_budget_s: Some(0.0),
        ..tiny_run(&[("stage0", 1.0), ("stage1", 1.0)])
    };
    let dir = tempfile::tempdir().unwrap();
    let resume = TrainOptions {
        resume: true,
        ..TrainOptions::default()
    };
    // A budget of zero seconds: one step per call, each one checkpointed.
    let first = train_fresh(&config, dir.path()).unwrap();
    assert_eq!(
        (first.outcome, first.progress.global_step),
        (Outcome::OutOfTime, 1)
    );
    let mut calls = 1;
    loop {
        let report = train(&config, dir.path(), &Device::Cpu, &resume, &mut Silent).unwrap();
        calls += 1;
        if report.outcome == Outcome::Finished {
            assert_eq!(report.progress.global_step, 12);
            break;
        }
        assert!(calls < 20, "the run never finished");
    }
    // The same weights as a run without a budget.
    let whole = tempfile::tempdir().unwrap();
    let unbounded = TrainConfig {
        time_budget_s: None,
        ..config.clone()
    };
    train_fresh(&unbounded, whole.path()).unwrap();
    assert!(weight_bits(dir.path(), "stage1") == weight_bits(whole.path(), "stage1"));

    // Resuming a run killed before its first checkpoint starts it over.
    let early = tempfile::tempdir().unwrap();
    let stop = TrainOptions {
        stop_at_step: Some(1),
        ..TrainOptions::default()
    };
    train(&unbounded, early.path(), &Device::Cpu, &stop, &mut Silent).unwrap();
    let report = train(&unbounded, early.path(), &Device::Cpu, &resume, &mut Silent).unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    assert!(weight_bits(early.path(), "stage1") == weight_bits(whole.path(), "stage1"));
}

#[test]
fn a_checkpoint_with_impossible_progress_is_refused_on_resume() {
    let config = TrainConfig {
        time_budget_s: Some(0.0),
        ..tiny_run(&[("stage0", 1.0)])
    };
    let dir = tempfile::tempdir().unwrap();
    let first = train_fresh(&config, dir.path()).unwrap();
    assert_eq!(first.outcome, Outcome::OutOfTime);
    let path = RunDir(dir.path().to_path_buf()).checkpoint();
    let (snapshot, good) = checkpoint::load(&path, &config.model).unwrap();
    let resume = TrainOptions {
        resume: true,
        ..TrainOptions::default()
    };
    // Saved through `save`, so the checksum is right and only the numbers are wrong: before
    // they were checked, both runs ended "finished" with exit 0.
    let cases = [
        (
            Progress {
                stage_index: 99,
                ..good.clone()
            },
            "stage_index 99 is out of range: the run has 1 stages",
        ),
        (
            Progress {
                stage_step: 1_000_000_000_000,
                global_step: 1_000_000_000_000,
                ..good.clone()
            },
            "stage_step 1000000000000 is beyond stage0's 6 steps",
        ),
    ];
    for (bad, expected) in cases {
        checkpoint::save(&path, &snapshot, &bad).unwrap();
        let e = match train(&config, dir.path(), &Device::Cpu, &resume, &mut Silent) {
            Ok(r) => panic!("resumed to {:?}", r.outcome),
            Err(e) => e.to_string(),
        };
        assert_eq!(e, format!("{}: {expected}", path.display()));
    }
}
