//! Fine-tuning an imported GPT-2 (`coconut train --init DIR --recipe seed|coconut-lab`): the
//! seed's curriculum, as docs/seed-format.md (section 7) states it, run by this trainer's
//! engines, or this project's on the same model and data.
//!
//! The recipe: stage 0 (every step written) from the folder's model, then stages 1-3 (the last
//! one, two, all steps as thoughts), each from the previous stage's weights with a new AdamW
//! (betas 0.9 / 0.999, eps 1e-8, decay 0.01 on every parameter), a linear warmup over 5% of the
//! stage's steps then a half cosine to 0 (transformers' `get_cosine_schedule_with_warmup`),
//! gradients clipped to norm 1; stage 0 on all 100,000 training problems, 3 epochs of 32
//! (16 x 2 accumulated) at 5e-5, loss over every token; stages 1-3 on the first 20,000, 3 epochs
//! of 16 single-example steps at 1e-5, loss on the answer tokens plus 0.001 x the mean
//! thought-output norm ([`crate::objective`]). The seed's 16 accumulated single-example steps
//! are one batch of 16 here, averaged per example: the same gradient in one pass.
//!
//! Not reproduced: dropout (0.1 in the seed; the candle path has none, and the CPU engine's,
//! `TrainConfig::dropout`, drops no attention probabilities, so the presets leave it off) and
//! fp16 autocast (f32 here, or bf16 products with `precision`); the data order (PyTorch's
//! `randperm`) is this trainer's own seeded shuffle.
//!
//! `coconut-lab` changes three things and keeps the rest, so that a difference in the result
//! is one of them: the *first* `k` steps are thoughts ([`LatentOrder::First`]); the loss is on
//! what follows the thoughts (the written steps, `<eot>` and the answer) with no thought-norm
//! term; and a stage ends once greedy free runs answer `until`% of held-out validation problems
//! ([`EarlyStop`]), checked every `every` steps, instead of after its epochs.
//!
//! A run directory holds `recipe.json`, `checkpoint.safetensors` (weights, moments, progress,
//! written every `checkpoint_every` steps and at each stage's end), `metrics.jsonl`; each
//! finished stage is written into the output weights folder (seed family) as `stage{k}`, which
//! every command reads (`coconut eval`, `solve`, `intervene`, the page).

use crate::checkpoint::{self, Progress, StageRecord};
use crate::draws::epoch_order;
use crate::learner::{CandleSettings, Learner};
use crate::objective::Objective;
use crate::optim::{clip_scale, AdamWConfig};
use crate::run_dir::MetricsLog;
use crate::run_lock::RunLock;
use crate::train::{Observer, Outcome, StepMetrics};
use anyhow::{bail, ensure, Context, Result};
use candle_core::Device;
use coconut_core::decoding::AnswerTokens;
use coconut_core::family::LayoutFamily;
use coconut_core::layout::Layout;
use coconut_core::manifest::WeightsDir;
use coconut_core::seed::decode::{answer, answer_tokens, decoder};
use coconut_core::seed::layout::{LatentOrder, SeedLayout, SeedStage, ThoughtCount};
use coconut_core::seed::problems::{split, SeedSplit, TrainingSet};
use coconut_core::seed::vocab::Gpt2Vocab;
use coconut_core::weights::WeightDtype;
use coconut_core::Problem;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub const RECIPE_FILE: &str = "recipe.json";

/// One stage of a fine-tuning recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneStage {
    /// The seed's stage (0-3).
    pub stage: u8,
    /// The first `problems` of the seed's training split.
    pub problems: usize,
    /// Examples per optimizer step.
    pub batch: usize,
    /// Examples per averaged group (the seed's micro-batch: 16 at stage 0, 1 after).
    pub group: usize,
    pub epochs: u32,
    /// Peak learning rate.
    pub lr: f64,
    /// Optimizer steps of the stage, instead of `epochs` over the problems (a short run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Examples computed at once, their gradients summed over the batch (the same step; the
    /// activations of this many examples at a time). `None`: the whole batch at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_batch: Option<usize>,
}

impl FinetuneStage {
    pub fn id(&self) -> String {
        format!("stage{}", self.stage)
    }

    fn steps_per_epoch(&self) -> u64 {
        (self.problems / self.batch).max(1) as u64
    }

    /// The stage's optimizer steps: its `steps`, or `epochs` over its problems (a last partial
    /// batch is dropped, as the seed's step counts do).
    pub fn total_steps(&self) -> u64 {
        self.steps
            .unwrap_or(self.epochs as u64 * self.steps_per_epoch())
    }
}

/// How a stage ends before its epochs: greedy free runs (thoughts counted from the operands, as
/// `coconut solve` counts them) on the seed's validation problems that are not training
/// problems (`coconut eval`'s held-out set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStop {
    /// Checked every this many optimizer steps of a stage.
    pub every: u64,
    /// The first this many held-out validation problems.
    pub problems: usize,
    /// The stage ends once the greedy accuracy (percent) reaches this.
    pub until: f64,
}

/// The seed's order, the default of a recipe.json written before the order was recorded.
fn seed_order() -> LatentOrder {
    LatentOrder::Last
}

/// How a GPT-2 is fine-tuned: the stages in order and the settings they share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneRecipe {
    /// `seed` or `coconut-lab` (module doc).
    pub name: String,
    pub stages: Vec<FinetuneStage>,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub adam_eps: f64,
    /// Warmup steps as a fraction of each stage's steps (rounded down).
    pub warmup_fraction: f64,
    /// Gradients are clipped to this global norm.
    pub clip_norm: f64,
    /// lambda of the thought-norm term in stages 1-3.
    pub thought_norm: f64,
    /// The data order's seed.
    pub seed: u64,
    pub checkpoint_every: u64,
    /// Which steps the thoughts replace; the layouts' targets follow from it
    /// ([`SeedLayout::loss_mask`]).
    #[serde(default = "seed_order")]
    pub order: LatentOrder,
    /// `None`: every stage runs its epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<EarlyStop>,
    /// The candle model's precision and activation checkpointing (files hold their fields
    /// `precision` and `activation_checkpointing` beside the others; absent: f32, off).
    #[serde(flatten)]
    pub candle: CandleSettings,
}

impl FinetuneRecipe {
    /// The seed's recipe (module doc).
    pub fn seed() -> FinetuneRecipe {
        let stage = |stage: u8| FinetuneStage {
            stage,
            problems: if stage == 0 { 100_000 } else { 20_000 },
            batch: if stage == 0 { 32 } else { 16 },
            group: if stage == 0 { 16 } else { 1 },
            epochs: 3,
            lr: if stage == 0 { 5e-5 } else { 1e-5 },
            steps: None,
            micro_batch: None,
        };
        FinetuneRecipe {
            name: "seed".into(),
            stages: (0..=3).map(stage).collect(),
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            warmup_fraction: 0.05,
            clip_norm: 1.0,
            thought_norm: 0.001,
            seed: 42,
            checkpoint_every: 200,
            order: LatentOrder::Last,
            early_stop: None,
            candle: CandleSettings::default(),
        }
    }

    /// This project's recipe on the seed's model and data (module doc): the seed's stages,
    /// data, optimizer and schedule, the first steps latent, the loss on what follows the
    /// thoughts, and each stage ended once 1,000 held-out problems are answered 99.9% right
    /// (checked every 500 steps).
    pub fn coconut_lab() -> FinetuneRecipe {
        FinetuneRecipe {
            name: "coconut-lab".into(),
            thought_norm: 0.0,
            order: LatentOrder::First,
            early_stop: Some(EarlyStop {
                every: 500,
                problems: 1000,
                until: 99.9,
            }),
            ..FinetuneRecipe::seed()
        }
    }

    /// The recipe called `name`.
    pub fn named(name: &str) -> Result<FinetuneRecipe> {
        match name {
            "seed" => Ok(FinetuneRecipe::seed()),
            "coconut-lab" => Ok(FinetuneRecipe::coconut_lab()),
            other => bail!("--recipe {other}: the recipes are seed and coconut-lab"),
        }
    }

    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.adam_eps,
            weight_decay: self.weight_decay,
            decay_all: true,
        }
    }

    /// Refuses settings that cannot train.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.name == "seed" || self.name == "coconut-lab",
            "recipe {}: the recipes are seed and coconut-lab",
            self.name
        );
        if let Some(stop) = &self.early_stop {
            let held_out = held_out_validation().len();
            ensure!(stop.every >= 1, "early stop: validation every 0 steps");
            ensure!(
                (1..=held_out).contains(&stop.problems),
                "early stop: {} validation problems (1 to {held_out} are held out)",
                stop.problems
            );
            ensure!(
                stop.until.is_finite() && stop.until > 0.0 && stop.until <= 100.0,
                "early stop: until {}% (a percentage in (0, 100])",
                stop.until
            );
        }
        ensure!(!self.stages.is_empty(), "the recipe has no stage");
        let train = SeedSplit::Train.count();
        for s in &self.stages {
            let id = s.id();
            ensure!(
                SeedStage::new(s.stage).is_some(),
                "{id}: the seed's stages are 0 to 3"
            );
            ensure!(
                (1..=train).contains(&s.problems),
                "{id}: {} training problems (the seed's split holds {train})",
                s.problems
            );
            ensure!(
                s.batch >= 1 && s.batch <= s.problems,
                "{id}: a batch of {} from {} problems",
                s.batch,
                s.problems
            );
            ensure!(s.group >= 1, "{id}: groups of 0 examples");
            ensure!(
                s.micro_batch.is_none_or(|m| m >= 1),
                "{id}: micro-batches of 0 examples"
            );
            ensure!(
                s.lr.is_finite() && s.lr > 0.0,
                "{id}: learning rate {}",
                s.lr
            );
            ensure!(s.total_steps() >= 1, "{id}: no step to train");
        }
        let unit = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        ensure!(
            unit(self.weight_decay),
            "weight decay {}",
            self.weight_decay
        );
        ensure!(
            unit(self.warmup_fraction),
            "warmup fraction {}",
            self.warmup_fraction
        );
        ensure!(
            self.clip_norm.is_finite() && self.clip_norm > 0.0,
            "clip norm {}",
            self.clip_norm
        );
        ensure!(
            self.thought_norm.is_finite() && self.thought_norm >= 0.0,
            "thought-norm weight {}",
            self.thought_norm
        );
        ensure!(self.checkpoint_every >= 1, "checkpoint every 0 steps");
        Ok(())
    }
}

/// The learning rate at `step` (0-based) of `total`: `step / warmup` of the peak during the
/// warmup, then a half cosine from the peak to 0 (transformers' `get_cosine_schedule_with_warmup`,
/// whose first step runs at 0 when there is a warmup).
pub fn cosine_with_warmup(step: u64, total: u64, warmup: u64, peak: f64) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64;
    peak * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
}

/// How a fine-tuning run starts.
#[derive(Clone, Debug)]
pub enum FinetuneStart {
    /// A new run of `recipe` from stage `init_stage` (`None`: the first) of the weights folder
    /// `init` (seed family), its finished stages written to the weights folder `out` in
    /// `dtype`.
    New {
        init: PathBuf,
        init_stage: Option<String>,
        recipe: Box<FinetuneRecipe>,
        out: PathBuf,
        dtype: WeightDtype,
    },
    /// The run in the run directory, continued from its checkpoint with its own recipe.json.
    Resume,
}

/// What `coconut train --init` (or `--resume` of such a run) was asked to do.
#[derive(Clone, Debug)]
pub struct FinetuneRequest {
    pub start: FinetuneStart,
    pub run_dir: PathBuf,
    /// The CPU engine with this many shards; `None`: the candle model on `device`.
    pub cpu_shards: Option<usize>,
    /// Stop once the run reaches this many steps, writing nothing more (the state a kill
    /// leaves; for tests).
    pub stop_at_step: Option<u64>,
    /// Stop, checkpointed, after this many seconds.
    pub time_budget: Option<f64>,
}

/// What `recipe.json` holds: the recipe and where the run started from.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RecipeFile {
    recipe: FinetuneRecipe,
    init: PathBuf,
    init_stage: String,
    /// The starting weights file's sha256 (a resume refuses other weights).
    init_sha256: String,
    out: PathBuf,
    dtype: WeightDtype,
}

/// Why [`finetune`] returned, and where the run stands.
pub struct FinetuneReport {
    pub outcome: Outcome,
    pub progress: Progress,
}

/// Runs (or resumes) a fine-tuning run; each step's metrics go to `metrics.jsonl` and the
/// observer.
pub fn finetune(
    request: &FinetuneRequest,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<FinetuneReport> {
    let mut run = FinetuneRun::open(request, device)?;
    let recipe = run.file.recipe.clone();
    while let Some(plan) = recipe.stages.get(run.progress.stage_index) {
        let stage = StageRun::begin(&run, plan)?;
        if run.progress.stage_step == 0 {
            run.learner.reset_optimizer()?; // a new stage: a new optimizer and schedule
        }
        observer.stage_started(&plan.id(), stage.total, run.progress.stage_step);
        let (mut last_loss, mut ended) = (f64::NAN, "schedule".to_string());
        while run.progress.stage_step < stage.total {
            last_loss = run.step(&stage, observer)?;
            if request.stop_at_step == Some(run.progress.global_step) {
                return Ok(run.report(Outcome::Stopped));
            }
            // Checked before the step's checkpoint, so a resumed run decides the same.
            if let Some(why) = run.check_learned(&stage, observer)? {
                ended = why;
                break;
            }
            if run.checkpoint_when_due(&stage)? {
                return Ok(run.report(Outcome::OutOfTime));
            }
        }
        run.end_stage(&stage, last_loss, ended, observer)?;
    }
    Ok(run.report(Outcome::Finished))
}

/// A fine-tuning run as it trains: its files, the model and optimizer, where it stands.
struct FinetuneRun<'a> {
    request: &'a FinetuneRequest,
    file: RecipeFile,
    _lock: RunLock,
    tokenizer: Gpt2Vocab,
    learner: Learner,
    n_positions: usize,
    progress: Progress,
    metrics: MetricsLog,
    /// The seed's training problems, in order.
    train: Vec<Problem>,
    validation: Validation,
    /// When this process started, and the run's seconds before then.
    started: Instant,
    seconds_before: f64,
}

/// One stage as the loop trains it.
struct StageRun<'a> {
    plan: &'a FinetuneStage,
    stage: SeedStage,
    /// Its training problems' layouts.
    layouts: Vec<Layout>,
    objective: Objective,
    total: u64,
    warmup: u64,
}

impl<'a> StageRun<'a> {
    fn begin(run: &FinetuneRun, plan: &'a FinetuneStage) -> Result<StageRun<'a>> {
        let recipe = &run.file.recipe;
        let stage = SeedStage::new(plan.stage)
            .expect("validated")
            .with_order(recipe.order);
        let layouts: Vec<Layout> = run.train[..plan.problems]
            .iter()
            .map(|p| SeedLayout::new(&run.tokenizer, p, stage).training_layout())
            .collect();
        if let Some(long) = layouts.iter().find(|l| l.ids.len() > run.n_positions) {
            bail!(
                "a {} sequence of {} positions exceeds the model's {}",
                plan.id(),
                long.ids.len(),
                run.n_positions
            );
        }
        let total = plan.total_steps();
        Ok(StageRun {
            objective: Objective {
                group: Some(plan.group),
                thought_norm: if plan.stage == 0 {
                    0.0
                } else {
                    recipe.thought_norm
                },
            },
            warmup: (recipe.warmup_fraction * total as f64) as u64,
            total,
            plan,
            stage,
            layouts,
        })
    }
}

impl<'a> FinetuneRun<'a> {
    /// Locks the run directory, reads (or writes, for a new run) its recipe.json, checks the
    /// starting weights and the output folder, and loads the model with the checkpoint's state.
    fn open(request: &'a FinetuneRequest, device: &Device) -> Result<FinetuneRun<'a>> {
        std::fs::create_dir_all(&request.run_dir)
            .with_context(|| format!("creating {}", request.run_dir.display()))?;
        let lock = RunLock::acquire(&request.run_dir)?;
        let file = recipe_file(request)?;
        file.recipe.validate()?;
        let dir = open_init(&file.init)?;
        let (entry, _, weights) = dir.stage(&file.init_stage)?;
        ensure!(
            entry.file.sha256 == file.init_sha256,
            "{}'s {} is not the model this run started from (sha256 {} in {}): the run needs it \
             unchanged",
            file.init.display(),
            file.init_stage,
            file.init_sha256,
            request.run_dir.join(RECIPE_FILE).display()
        );
        let weights = weights.convert(WeightDtype::F32);
        crate::import::check_trained_seed_target(&file.out, &weights.config)
            .with_context(|| format!("--out {}", file.out.display()))?;
        let adamw = file.recipe.adamw();
        let mut learner = Learner::from_weights(
            &weights,
            adamw,
            device,
            request.cpu_shards,
            file.recipe.candle,
        )?;
        let checkpoint = checkpoint_path(request);
        let mut progress = Progress::default();
        // A run killed before its first checkpoint resumes from the start.
        if matches!(request.start, FinetuneStart::Resume) && checkpoint.exists() {
            let (snapshot, saved) = checkpoint::load(&checkpoint, &weights.config)?;
            learner.restore(&snapshot)?;
            progress = saved;
        }
        let metrics = MetricsLog::open(
            &request.run_dir.join(crate::train::METRICS_FILE),
            progress.global_step == 0,
        )?;
        let tokenizer = dir.seed_vocab()?;
        Ok(FinetuneRun {
            request,
            validation: Validation::new(&tokenizer, file.recipe.early_stop.as_ref()),
            file,
            _lock: lock,
            tokenizer,
            learner,
            n_positions: weights.config.n_positions,
            seconds_before: progress.seconds,
            progress,
            metrics,
            train: split(SeedSplit::Train),
            started: Instant::now(),
        })
    }

    /// One optimizer step of `stage`, checked before the update; returns its loss.
    fn step(&mut self, stage: &StageRun, observer: &mut dyn Observer) -> Result<f64> {
        let (plan, step) = (stage.plan, self.progress.stage_step);
        let per_epoch = plan.steps_per_epoch();
        let order = epoch_order(
            plan.problems,
            self.file.recipe.seed,
            self.progress.stage_index,
            step / per_epoch,
        );
        let start = (step % per_epoch) as usize * plan.batch;
        let batch: Vec<&Layout> = order[start..start + plan.batch]
            .iter()
            .map(|&i| &stage.layouts[i])
            .collect();
        let tick = Instant::now();
        let feeds_back = plan.stage > 0;
        let stats = match plan.micro_batch {
            Some(micro) if micro < batch.len() => {
                self.learner
                    .compute_in_parts(&batch, feeds_back, &stage.objective, micro)?
            }
            _ => self
                .learner
                .compute_with(&batch, feeds_back, &stage.objective)?,
        };
        ensure!(
            stats.loss.is_finite() && stats.grad_norm.is_finite(),
            "{} step {step}: the loss is {} and the gradient norm {}; stopped before the \
             update, the last checkpoint ({}) is intact",
            plan.id(),
            stats.loss,
            stats.grad_norm,
            checkpoint_path(self.request).display()
        );
        let lr = cosine_with_warmup(step, stage.total, stage.warmup, plan.lr);
        let clip = clip_scale(stats.grad_norm, self.file.recipe.clip_norm);
        self.learner.apply(lr, clip)?;
        self.progress.stage_step += 1;
        self.progress.global_step += 1;
        let tokens: usize = batch.iter().map(|l| l.ids.len()).sum();
        let line = StepMetrics {
            step: self.progress.global_step,
            stage: plan.id(),
            stage_step: self.progress.stage_step,
            loss: stats.loss,
            lr,
            grad_norm: stats.grad_norm,
            tokens_per_s: tokens as f64 / tick.elapsed().as_secs_f64().max(1e-9),
        };
        self.metrics.write(&line)?;
        observer.step(&line);
        Ok(stats.loss)
    }

    /// With early stop, at its checks (never at a stage's last step): validates, and says why
    /// the stage ends if the accuracy reached its goal.
    fn check_learned(
        &mut self,
        stage: &StageRun,
        observer: &mut dyn Observer,
    ) -> Result<Option<String>> {
        let (id, step, total) = (stage.plan.id(), self.progress.stage_step, stage.total);
        let Some(stop) = self.file.recipe.early_stop.as_ref() else {
            return Ok(None);
        };
        if step >= total || !step.is_multiple_of(stop.every) {
            return Ok(None);
        }
        let accuracy = self.validation.accuracy(
            &self.tokenizer,
            &mut self.learner,
            stage.stage,
            self.n_positions,
        )?;
        let n = stop.problems;
        self.metrics.write(&serde_json::json!({"event": "val", "stage": id, "stage_step": step, "step": self.progress.global_step, "val_greedy": accuracy, "n_val": n}))?;
        observer.message(&format!(
            "{id} step {step}: validation greedy accuracy {accuracy:.2}% (n = {n})"
        ));
        Ok((accuracy >= stop.until).then(|| {
            format!(
                "validation {accuracy:.2}% >= {}% (n = {n}) at step {step} of {total}",
                stop.until
            )
        }))
    }

    /// Mid-stage: a checkpoint every `checkpoint_every` steps, and when the time budget is
    /// spent (then `true`: the run stops here).
    fn checkpoint_when_due(&mut self, stage: &StageRun) -> Result<bool> {
        let out_of_time = self
            .request
            .time_budget
            .is_some_and(|budget| self.started.elapsed().as_secs_f64() >= budget);
        if self.progress.stage_step >= stage.total {
            return Ok(false);
        }
        let every = self.file.recipe.checkpoint_every;
        if self.progress.global_step.is_multiple_of(every) || out_of_time {
            self.save_checkpoint()?;
        }
        Ok(out_of_time)
    }

    /// The stage is done: its weights into the output folder, its record, a checkpoint.
    fn end_stage(
        &mut self,
        stage: &StageRun,
        last_loss: f64,
        ended: String,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let id = stage.plan.id();
        // The stage's weights go out before the checkpoint says the stage is done: a kill in
        // between resumes from the last checkpoint and writes the same stage again.
        crate::import::write_trained_seed_stage(
            &self.file.out,
            &id,
            self.file.recipe.order,
            &self.learner.weights()?,
            self.file.dtype,
        )?;
        self.progress.seconds = self.seconds();
        let before: f64 = self.progress.finished.iter().map(|r| r.seconds).sum();
        observer.message(&format!(
            "{id}: {} steps ({ended}), final loss {last_loss:.5}, written to {}",
            self.progress.stage_step,
            self.file.out.display()
        ));
        self.progress.finished.push(StageRecord {
            id,
            steps: self.progress.stage_step,
            seconds: self.progress.seconds - before,
            final_loss: last_loss,
            ended,
        });
        self.progress.stage_index += 1;
        self.progress.stage_step = 0;
        self.save_checkpoint()
    }

    fn save_checkpoint(&mut self) -> Result<()> {
        self.progress.seconds = self.seconds();
        let snapshot = self.learner.snapshot()?;
        checkpoint::save(&checkpoint_path(self.request), &snapshot, &self.progress)
    }

    /// The run's training seconds, over every process.
    fn seconds(&self) -> f64 {
        self.seconds_before + self.started.elapsed().as_secs_f64()
    }

    fn report(self, outcome: Outcome) -> FinetuneReport {
        FinetuneReport {
            outcome,
            progress: self.progress,
        }
    }
}

fn checkpoint_path(request: &FinetuneRequest) -> PathBuf {
    request.run_dir.join(crate::train::CHECKPOINT_FILE)
}

/// The run's recipe.json: read back on resume; for a new run, checked (no run in the
/// directory, the recipe, the starting folder and stage, the output folder) and written.
fn recipe_file(request: &FinetuneRequest) -> Result<RecipeFile> {
    let recipe_path = request.run_dir.join(RECIPE_FILE);
    let (init, init_stage, recipe, out, dtype) = match &request.start {
        FinetuneStart::Resume => {
            let text = std::fs::read(&recipe_path)
                .with_context(|| format!("--resume: reading {}", recipe_path.display()))?;
            return serde_json::from_slice::<RecipeFile>(&text)
                .with_context(|| format!("parsing {}", recipe_path.display()));
        }
        FinetuneStart::New {
            init,
            init_stage,
            recipe,
            out,
            dtype,
        } => (init, init_stage, recipe, out, dtype),
    };
    ensure!(
        !checkpoint_path(request).exists() && !recipe_path.exists(),
        "{} already holds a run: continue it with --resume, or choose a new --run-dir",
        request.run_dir.display()
    );
    recipe.validate()?;
    recipe.candle.check(request.cpu_shards)?;
    let dir = open_init(init)?;
    let init_stage = match init_stage {
        Some(id) => dir.manifest.stage(id)?.id.clone(),
        None => dir.manifest.stages[0].id.clone(),
    };
    crate::import::check_trained_seed_target(out, &dir.manifest.model)
        .with_context(|| format!("--out {}", out.display()))?;
    let file = RecipeFile {
        recipe: (**recipe).clone(),
        init_sha256: dir.manifest.stage(&init_stage)?.file.sha256.clone(),
        init: init.clone(),
        init_stage,
        out: out.clone(),
        dtype: *dtype,
    };
    let json = serde_json::to_string_pretty(&file)?;
    checkpoint::write_atomic(&recipe_path, json.as_bytes())?;
    Ok(file)
}

/// The seed's validation problems that are not among its training problems, in order.
fn held_out_validation() -> Vec<Problem> {
    let training = TrainingSet::new();
    split(SeedSplit::Validation)
        .into_iter()
        .filter(|p| !training.contains(p))
        .collect()
}

/// What an early-stop check runs: the held-out problems and the decoding's answer tokens.
struct Validation {
    tokens: Arc<AnswerTokens>,
    problems: Vec<Problem>,
}

impl Validation {
    /// `stop`'s problems (none without early stop).
    fn new(tokenizer: &Gpt2Vocab, stop: Option<&EarlyStop>) -> Validation {
        let problems = match stop {
            Some(stop) => held_out_validation()
                .into_iter()
                .take(stop.problems)
                .collect(),
            None => Vec::new(),
        };
        Validation {
            tokens: answer_tokens(tokenizer),
            problems,
        }
    }

    /// The percentage of the problems the learner's current weights answer exactly, each
    /// decoded greedily at `stage` with thoughts counted from its operands.
    fn accuracy(
        &self,
        tokenizer: &Gpt2Vocab,
        learner: &mut Learner,
        stage: SeedStage,
        n_positions: usize,
    ) -> Result<f64> {
        let decoders = self
            .problems
            .iter()
            .map(|p| {
                decoder(
                    tokenizer,
                    &self.tokens,
                    p,
                    stage,
                    ThoughtCount::Columns,
                    n_positions,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let finished = learner.run_decoders(decoders)?;
        let right = finished
            .into_iter()
            .zip(&self.problems)
            .filter(|(d, p)| {
                let read = answer(tokenizer, d.ids(), d.plan().prompt_len);
                read == Some(p.answer().to_string())
            })
            .count();
        Ok(100.0 * right as f64 / self.problems.len().max(1) as f64)
    }
}

/// The weights folder a run starts from: a seed-family folder (`coconut import --layout seed`).
fn open_init(path: &Path) -> Result<WeightsDir> {
    let dir = WeightsDir::open(path).with_context(|| format!("--init {}", path.display()))?;
    if dir.manifest.family.layout != LayoutFamily::Seed {
        bail!(
            "--init {}: this project's own models train with `coconut train` (no --init); \
             --recipe seed fine-tunes a GPT-2 imported with `coconut import --layout seed`",
            path.display()
        );
    }
    ensure!(
        !dir.manifest.stages.is_empty(),
        "--init {}: the folder has no stage",
        path.display()
    );
    Ok(dir)
}
