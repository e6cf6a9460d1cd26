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
//! Not reproduced: dropout (0.1 in the seed; the engines have none) and fp16 autocast (f32
//! here); the data order (PyTorch's `randperm`) is this trainer's own seeded shuffle.
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
use crate::learner::Learner;
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
    let started = Instant::now();
    std::fs::create_dir_all(&request.run_dir)
        .with_context(|| format!("creating {}", request.run_dir.display()))?;
    let _lock = RunLock::acquire(&request.run_dir)?;
    let recipe_path = request.run_dir.join(RECIPE_FILE);
    let checkpoint_path = request.run_dir.join(crate::train::CHECKPOINT_FILE);
    let resume = matches!(request.start, FinetuneStart::Resume);
    let file = match &request.start {
        FinetuneStart::Resume => {
            let text = std::fs::read(&recipe_path)
                .with_context(|| format!("--resume: reading {}", recipe_path.display()))?;
            serde_json::from_slice::<RecipeFile>(&text)
                .with_context(|| format!("parsing {}", recipe_path.display()))?
        }
        FinetuneStart::New {
            init,
            init_stage,
            recipe,
            out,
            dtype,
        } => {
            ensure!(
                !checkpoint_path.exists() && !recipe_path.exists(),
                "{} already holds a run: continue it with --resume, or choose a new --run-dir",
                request.run_dir.display()
            );
            recipe.validate()?;
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
            file
        }
    };
    let recipe = &file.recipe;
    recipe.validate()?;
    let dir = open_init(&file.init)?;
    let (entry, _, weights) = dir.stage(&file.init_stage)?;
    ensure!(
        entry.file.sha256 == file.init_sha256,
        "{}'s {} is not the model this run started from (sha256 {} in {}): the run needs it \
         unchanged",
        file.init.display(),
        file.init_stage,
        file.init_sha256,
        recipe_path.display()
    );
    let weights = weights.convert(WeightDtype::F32);
    let tokenizer = dir.seed_vocab()?;
    crate::import::check_trained_seed_target(&file.out, &weights.config)
        .with_context(|| format!("--out {}", file.out.display()))?;

    let mut learner = Learner::from_weights(&weights, recipe.adamw(), device, request.cpu_shards)?;
    let n_positions = weights.config.n_positions;
    let mut progress = Progress::default();
    // A run killed before its first checkpoint resumes from the start.
    if resume && checkpoint_path.exists() {
        let (snapshot, saved) = checkpoint::load(&checkpoint_path, &weights.config)?;
        learner.restore(&snapshot)?;
        progress = saved;
    }
    let mut metrics = MetricsLog::open(
        &request.run_dir.join(crate::train::METRICS_FILE),
        progress.global_step == 0,
    )?;
    let train = split(SeedSplit::Train);
    let validation = Validation::new(&tokenizer, recipe.early_stop.as_ref());
    let seconds_before = progress.seconds;
    let elapsed = |started: &Instant| seconds_before + started.elapsed().as_secs_f64();

    while let Some(plan) = recipe.stages.get(progress.stage_index) {
        let stage = SeedStage::new(plan.stage)
            .expect("validated")
            .with_order(recipe.order);
        let layouts: Vec<Layout> = train[..plan.problems]
            .iter()
            .map(|p| SeedLayout::new(&tokenizer, p, stage).training_layout())
            .collect();
        for layout in &layouts {
            ensure!(
                layout.ids.len() <= weights.config.n_positions,
                "a {} sequence of {} positions exceeds the model's {}",
                plan.id(),
                layout.ids.len(),
                weights.config.n_positions
            );
        }
        let objective = Objective {
            group: Some(plan.group),
            thought_norm: if plan.stage == 0 {
                0.0
            } else {
                recipe.thought_norm
            },
        };
        let total = plan.total_steps();
        let warmup = (recipe.warmup_fraction * total as f64) as u64;
        if progress.stage_step == 0 {
            learner.reset_optimizer()?;
        }
        observer.stage_started(&plan.id(), total, progress.stage_step);
        let mut last_loss = f64::NAN;
        let mut ended = "schedule".to_string();
        while progress.stage_step < total {
            let step = progress.stage_step;
            let per_epoch = plan.steps_per_epoch();
            let order = epoch_order(
                plan.problems,
                recipe.seed,
                progress.stage_index,
                step / per_epoch,
            );
            let start = (step % per_epoch) as usize * plan.batch;
            let batch: Vec<&Layout> = order[start..start + plan.batch]
                .iter()
                .map(|&i| &layouts[i])
                .collect();
            let tick = Instant::now();
            let feeds_back = plan.stage > 0;
            let stats = match plan.micro_batch {
                Some(micro) if micro < batch.len() => {
                    learner.compute_in_parts(&batch, feeds_back, &objective, micro)?
                }
                _ => learner.compute_with(&batch, feeds_back, &objective)?,
            };
            ensure!(
                stats.loss.is_finite() && stats.grad_norm.is_finite(),
                "{} step {step}: the loss is {} and the gradient norm {}; stopped before the \
                 update, the last checkpoint ({}) is intact",
                plan.id(),
                stats.loss,
                stats.grad_norm,
                checkpoint_path.display()
            );
            let lr = cosine_with_warmup(step, total, warmup, plan.lr);
            learner.apply(lr, clip_scale(stats.grad_norm, recipe.clip_norm))?;
            last_loss = stats.loss;
            progress.stage_step += 1;
            progress.global_step += 1;
            let tokens: usize = batch.iter().map(|l| l.ids.len()).sum();
            let line = StepMetrics {
                step: progress.global_step,
                stage: plan.id(),
                stage_step: progress.stage_step,
                loss: stats.loss,
                lr,
                grad_norm: stats.grad_norm,
                tokens_per_s: tokens as f64 / tick.elapsed().as_secs_f64().max(1e-9),
            };
            metrics.write(&line)?;
            observer.step(&line);
            if request.stop_at_step == Some(progress.global_step) {
                return Ok(FinetuneReport {
                    outcome: Outcome::Stopped,
                    progress,
                });
            }
            if let Some(stop) = recipe
                .early_stop
                .as_ref()
                .filter(|s| progress.stage_step < total && progress.stage_step % s.every == 0)
            {
                let accuracy = validation.accuracy(&mut learner, stage, n_positions)?;
                let n = stop.problems;
                metrics.write(&serde_json::json!({"event": "val", "stage": plan.id(), "stage_step": progress.stage_step, "step": progress.global_step, "val_greedy": accuracy, "n_val": n}))?;
                observer.message(&format!(
                    "{} step {}: validation greedy accuracy {accuracy:.2}% (n = {n})",
                    plan.id(),
                    progress.stage_step
                ));
                if accuracy >= stop.until {
                    ended = format!(
                        "validation {accuracy:.2}% >= {}% (n = {n}) at step {} of {total}",
                        stop.until, progress.stage_step
                    );
                    break;
                }
            }
            let out_of_time = request
                .time_budget
                .is_some_and(|budget| started.elapsed().as_secs_f64() >= budget);
            if progress.stage_step < total
                && (progress.global_step % recipe.checkpoint_every == 0 || out_of_time)
            {
                progress.seconds = elapsed(&started);
                checkpoint::save(&checkpoint_path, &learner.snapshot()?, &progress)?;
            }
            if out_of_time && progress.stage_step < total {
                return Ok(FinetuneReport {
                    outcome: Outcome::OutOfTime,
                    progress,
                });
            }
        }
        // The stage's weights go out before the checkpoint says the stage is done: a kill in
        // between resumes from the last checkpoint and writes the same stage again.
        crate::import::write_trained_seed_stage(
            &file.out,
            &plan.id(),
            recipe.order,
            &learner.weights()?,
            file.dtype,
        )?;
        progress.seconds = elapsed(&started);
        let stage_seconds =
            progress.seconds - progress.finished.iter().map(|r| r.seconds).sum::<f64>();
        progress.finished.push(StageRecord {
            id: plan.id(),
            steps: progress.stage_step,
            seconds: stage_seconds,
            final_loss: last_loss,
            ended: ended.clone(),
        });
        observer.message(&format!(
            "{}: {} steps ({ended}), final loss {last_loss:.5}, written to {}",
            plan.id(),
            progress.stage_step,
            file.out.display()
        ));
        progress.stage_index += 1;
        progress.stage_step = 0;
        checkpoint::save(&checkpoint_path, &learner.snapshot()?, &progress)?;
    }
    Ok(FinetuneReport {
        outcome: Outcome::Finished,
        progress,
    })
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
struct Validation<'a> {
    tokenizer: &'a Gpt2Vocab,
    tokens: Arc<AnswerTokens>,
    problems: Vec<Problem>,
}

impl<'a> Validation<'a> {
    /// `stop`'s problems (none without early stop).
    fn new(tokenizer: &'a Gpt2Vocab, stop: Option<&EarlyStop>) -> Validation<'a> {
        let problems = match stop {
            Some(stop) => held_out_validation()
                .into_iter()
                .take(stop.problems)
                .collect(),
            None => Vec::new(),
        };
        Validation {
            tokens: answer_tokens(tokenizer),
            tokenizer,
            problems,
        }
    }

    /// The percentage of the problems the learner's current weights answer exactly, each
    /// decoded greedily at `stage` with thoughts counted from its operands.
    fn accuracy(&self, learner: &mut Learner, stage: SeedStage, n_positions: usize) -> Result<f64> {
        let decoders = self
            .problems
            .iter()
            .map(|p| {
                decoder(
                    self.tokenizer,
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
                let prompt_len = d.plan().prompt_len;
                let read = answer(self.tokenizer, d.ids(), prompt_len);
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
