//! The curriculum driver: every stage of the curriculum in order, each with a fresh AdamW and
//! its own warmup + cosine schedule, checkpoints every N steps and after each stage, resumable.
//! (One optimizer step on either engine is [`crate::learner`]; the CPU engine itself is
//! [`crate::cpu`]; each step's batch is drawn by [`crate::draws`]; the files are
//! [`crate::run_dir`]'s.)
//!
//! A run directory holds `config.json`, `checkpoint.safetensors` (weights, moments, progress),
//! `metrics.jsonl` and `stages/<stage_id>.safetensors` (each finished stage's f32 weights).
//! The data order is a pure function of (seed, stage, epoch), and the checkpoint holds all other
//! state, so on the CPU a resumed run ends with the same weights, bit for bit, as one that never
//! stopped.

use crate::average::WeightAverage;
use crate::branch::Branch;
use crate::checkpoint::{self, Progress, StageRecord};
use crate::config::{StagePlan, TrainConfig};
use crate::cpu::noise::StepNoise;
use crate::draws::StageDraws;
use crate::learner::Learner;
use crate::model::Gpt;
use crate::optim::{clip_scale, lr_at};
use crate::provenance::{Branched, RunInfo};
use crate::run_dir::MetricsLog;
use crate::run_lock::RunLock;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use coconut_core::data::Splits;
use coconut_core::layout::Layout;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::{Problem, Stage};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

pub use crate::draws::epoch_order;
pub use crate::run_dir::{
    load_run_config, RunDir, CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, STAGES_DIR,
};

/// How a call to [`train`] behaves beyond the config.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Continue from the run directory's checkpoint (refused without one).
    pub resume: bool,
    /// Stop abruptly once the run reaches this many steps, writing nothing more: the state a
    /// kill leaves behind (for tests).
    pub stop_at_step: Option<u64>,
    /// Where the run came from, written to `run.json` once the run has started (or resumed).
    pub run_info: Option<crate::provenance::RunInfo>,
    /// Start a new run at a stage boundary of another run (ignored with `resume`).
    pub branch: Option<crate::branch::Branch>,
}

/// Why [`train`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every stage is trained.
    Finished,
    /// The time budget ran out; a checkpoint was written.
    OutOfTime,
    /// `stop_at_step` was reached.
    Stopped,
}

pub struct TrainReport {
    pub outcome: Outcome,
    pub progress: Progress,
    pub model: Gpt,
}

/// One metrics line.
#[derive(Clone, Debug, Serialize)]
pub struct StepMetrics {
    pub step: u64,
    pub stage: String,
    pub stage_step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
}

/// Receives progress, e.g. for progress bars.
pub trait Observer {
    fn stage_started(&mut self, _stage: &str, _total_steps: u64, _done: u64) {}
    fn step(&mut self, _metrics: &StepMetrics) {}
    fn message(&mut self, _text: &str) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// Trains `config`'s stages in `run_dir` on `device`; see the module documentation.
pub fn train(
    config: &TrainConfig,
    run_dir: &Path,
    device: &Device,
    options: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<TrainReport> {
    check_engine(config, device)?;
    crate::ops::keep_freed_memory();
    let mut run = Run::open(config, run_dir, device, options, observer)?;
    while run.progress.stage_index < config.stages.len() {
        let mut stage = StageRun::begin(config, &run.tokenizer, &run.splits.train, &run.progress)?;
        if run.progress.stage_step == 0 {
            // A new stage: the optimizer, its schedule and the weight average start over.
            run.learner.reset_optimizer()?;
            run.start_average()?;
        }
        observer.stage_started(&stage.id, stage.total, run.progress.stage_step);
        let mut end = StageEnd {
            why: format!("schedule complete after {} steps", stage.total),
            val: None,
        };
        while run.progress.stage_step < stage.total {
            // A stage that ends when learned checks before its step, so that a run resumed at
            // this step makes the same decision.
            if let Some(learned) = run.check_learned(&stage, observer)? {
                end = learned;
                break;
            }
            let tick = Instant::now();
            let draw = stage.draws.draw(
                config,
                stage.plan,
                &stage.stage,
                &run.tokenizer,
                &run.splits.train,
                run.progress.stage_step,
            )?;
            let members = draw.members(&stage.layouts, &stage.stage);
            let members: Vec<&Layout> = members.iter().map(|l| l.as_ref()).collect();
            let metrics = run.step(&stage, &members, draw.noise, tick)?;
            stage.last_loss = metrics.loss;
            observer.step(&metrics);
            if let Some(outcome) = run.log_and_checkpoint(&stage, &metrics, options, observer)? {
                return run.report(outcome, device);
            }
        }
        run.end_stage(&stage, end, observer)?;
    }
    run.report(Outcome::Finished, device)
}

/// Refuses settings the engine `config` chooses for `device` cannot train.
fn check_engine(config: &TrainConfig, device: &Device) -> Result<()> {
    config.validate()?;
    if config.stages.iter().any(|p| p.mixing(config) > 0.0) && !config.uses_cpu_engine(device) {
        bail!("mix (data mixing) needs the CPU engine: batches of the candle path hold one stage");
    }
    if config
        .stages
        .iter()
        .any(|p| p.thought_noise_std(config) > 0.0)
        && !config.uses_cpu_engine(device)
    {
        bail!("thought_noise needs the CPU engine: the candle path feeds thoughts unchanged");
    }
    if config.stages.iter().any(|p| p.dropout_rate(config) > 0.0) && !config.uses_cpu_engine(device)
    {
        bail!("dropout needs the CPU engine: the candle model has none");
    }
    Ok(())
}

/// A run as it trains: its directory (locked), the data, the learner and where it stands.
struct Run<'a> {
    config: &'a TrainConfig,
    dir: RunDir,
    _lock: RunLock,
    tokenizer: Tokenizer,
    splits: Splits,
    learner: Learner,
    /// The stage's moving average of the weights, with `ema_decay`.
    average: Option<WeightAverage>,
    progress: Progress,
    metrics: MetricsLog,
    /// Validation problems checked at the end of each stage (and by `until_val`).
    n_val: usize,
    /// When this process started training, and the run's seconds before then.
    started: Instant,
    seconds_before: f64,
}

/// One stage of the curriculum as the loop trains it.
struct StageRun<'a> {
    plan: &'a StagePlan,
    stage: Stage,
    id: String,
    /// Every training problem's layout at this stage.
    layouts: Vec<Layout>,
    draws: StageDraws,
    /// The stage's steps by its schedule.
    total: u64,
    /// The run's seconds when the stage started.
    started_at: f64,
    /// The loss of the last step this process trained.
    last_loss: f64,
}

/// Why a stage ended, and the validation accuracy that ended it, if one did.
struct StageEnd {
    why: String,
    val: Option<f64>,
}

impl<'a> Run<'a> {
    /// Opens `run_dir` for a run: locks it, then starts the run (fresh or branched) or resumes
    /// it, records its provenance and opens its metrics log.
    fn open(
        config: &'a TrainConfig,
        run_dir: &Path,
        device: &Device,
        options: &TrainOptions,
        observer: &mut dyn Observer,
    ) -> Result<Run<'a>> {
        let dir = RunDir(run_dir.to_path_buf());
        dir.create()?;
        let lock = RunLock::acquire(run_dir)?; // held until train returns
        let tokenizer = Tokenizer::new();
        let splits: Splits = config.data.generate()?;
        let mut learner = Learner::new(config, device)?;
        let (progress, average) = if options.resume {
            resume(config, &dir, splits.train.len(), &mut learner, observer)?
        } else {
            let progress = start(
                config,
                &dir,
                options.branch.as_ref(),
                &mut learner,
                observer,
            )?;
            (progress, None)
        };
        record_provenance(run_dir, options, &progress)?;
        let mut metrics = MetricsLog::open(&dir.metrics(), progress.global_step == 0)?;
        metrics.write(&serde_json::json!({"event": if options.resume { "resume" } else { "start" }, "step": progress.global_step}))?;
        Ok(Run {
            config,
            dir,
            _lock: lock,
            tokenizer,
            n_val: config.val_problems.min(splits.val.len()),
            splits,
            learner,
            average,
            seconds_before: progress.seconds,
            progress,
            metrics,
            started: Instant::now(),
        })
    }

    /// For a stage that ends when learned, at its validation steps: validates, and ends the
    /// stage if the accuracy reached its goal.
    fn check_learned(
        &mut self,
        stage: &StageRun,
        observer: &mut dyn Observer,
    ) -> Result<Option<StageEnd>> {
        let (step, n_val, id) = (self.progress.stage_step, self.n_val, &stage.id);
        let Some(goal) = stage.plan.until_val else {
            return Ok(None);
        };
        if step == 0 || step % self.config.val_every != 0 {
            return Ok(None);
        }
        let (problems, tokenizer) = (&self.splits.val[..n_val], &self.tokenizer);
        let accuracy = on_average(&mut self.learner, self.average.as_ref(), |learner| {
            validate(learner, tokenizer, problems, &stage.stage)
        })?;
        observer.message(&format!(
            "{id} step {step}: validation greedy accuracy {accuracy:.2}% (n = {n_val})"
        ));
        self.metrics.write(&serde_json::json!({"event": "val", "stage": id, "stage_step": step, "step": self.progress.global_step, "val_greedy": accuracy, "n_val": n_val}))?;
        if accuracy < goal {
            self.progress.val_streak = 0;
            return Ok(None);
        }
        self.progress.val_streak += 1;
        let (streak, confirm) = (self.progress.val_streak, self.config.val_confirm);
        if streak < confirm {
            return Ok(None);
        }
        let in_a_row = if confirm > 1 {
            format!(", {streak} checks in a row")
        } else {
            String::new()
        };
        Ok(Some(StageEnd {
            why: format!(
                "validation {accuracy:.2}% >= {goal}% (n = {n_val}) at step {step} of {}{in_a_row}",
                stage.total
            ),
            val: Some(accuracy),
        }))
    }

    /// One optimizer step on `members`: forward, checked before anything changes, then clip
    /// and update. `tick`: when the step began (for its tokens per second).
    fn step(
        &mut self,
        stage: &StageRun,
        members: &[&Layout],
        noise: StepNoise,
        tick: Instant,
    ) -> Result<StepMetrics> {
        let config = self.config;
        let batch_tokens: usize = members.iter().map(|l| l.ids.len()).sum();
        let lr = lr_at(
            self.progress.stage_step,
            stage.total,
            stage.plan.peak_lr(config),
            config.warmup_steps,
            config.min_lr_ratio,
        );
        let stats = self.learner.compute(members, &stage.stage, noise)?;
        let (loss, grad_norm) = (stats.loss, stats.grad_norm);
        if !loss.is_finite() || loss > config.max_loss {
            bail!(self.diverged(stage, &format!("loss {loss}")));
        }
        if !grad_norm.is_finite() {
            bail!(self.diverged(stage, &format!("gradient norm {grad_norm}")));
        }
        self.learner
            .apply(lr, clip_scale(grad_norm, config.grad_clip))?;
        if let Some(average) = &mut self.average {
            average.update(&self.learner.flat_params()?);
        }
        self.progress.stage_step += 1;
        self.progress.global_step += 1;
        self.progress.seconds = self.seconds_before + self.started.elapsed().as_secs_f64();
        Ok(StepMetrics {
            step: self.progress.global_step,
            stage: stage.id.clone(),
            stage_step: self.progress.stage_step,
            loss,
            lr,
            grad_norm,
            tokens_per_s: batch_tokens as f64 / tick.elapsed().as_secs_f64(),
        })
    }

    /// After a step: its metrics line and a checkpoint when due. `Some` ends the run here:
    /// `stop_at_step` was reached (nothing more written) or the time budget is spent
    /// (checkpointed).
    fn log_and_checkpoint(
        &mut self,
        stage: &StageRun,
        metrics: &StepMetrics,
        options: &TrainOptions,
        observer: &mut dyn Observer,
    ) -> Result<Option<Outcome>> {
        let (config, stage_step) = (self.config, self.progress.stage_step);
        if stage_step % config.log_every == 0 || stage_step == stage.total {
            self.metrics.write(metrics)?;
        }
        if options.stop_at_step == Some(self.progress.global_step) {
            return Ok(Some(Outcome::Stopped));
        }
        let mid_stage = stage_step < stage.total;
        if stage_step % config.checkpoint_every == 0 && mid_stage {
            self.save_checkpoint()?;
        }
        let out_of_time = config
            .time_budget_s
            .is_some_and(|b| self.started.elapsed().as_secs_f64() >= b);
        if !(out_of_time && mid_stage) {
            return Ok(None);
        }
        self.save_checkpoint()?;
        observer.message(&format!(
            "time budget spent at {} step {stage_step}; resume with --resume",
            stage.id
        ));
        self.metrics.write(
            &serde_json::json!({"event": "out_of_time", "step": self.progress.global_step}),
        )?;
        Ok(Some(Outcome::OutOfTime))
    }

    /// The stage is done: its weights, a validation number, and a checkpoint at the boundary.
    fn end_stage(
        &mut self,
        stage: &StageRun,
        end: StageEnd,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let (id, n_val) = (&stage.id, self.n_val);
        // With a moving average, the stage is its average: its weights, its validation and the
        // next stage's start.
        if let Some(average) = self.average.take() {
            self.learner.set_flat_params(average.values())?;
        }
        let weights = self.learner.weights()?;
        self.dir
            .write_stage_weights(id, &weights.to_safetensors())?;
        observer.message(&format!("{id}: {}", end.why));
        let record = StageRecord {
            id: id.clone(),
            steps: self.progress.stage_step,
            seconds: self.progress.seconds - stage.started_at,
            final_loss: stage.last_loss,
            ended: end.why,
        };
        let step = self.progress.global_step;
        if n_val > 0 {
            let accuracy = match end.val {
                Some(accuracy) => accuracy, // the same weights were just validated
                None => {
                    let problems = &self.splits.val[..n_val];
                    validate(&mut self.learner, &self.tokenizer, problems, &stage.stage)?
                }
            };
            observer.message(&format!(
                "{id}: validation greedy accuracy {accuracy:.2}% (n = {n_val})"
            ));
            self.metrics.write(&serde_json::json!({"event": "stage_done", "stage": id, "step": step, "val_greedy": accuracy, "n_val": n_val}))?;
        } else {
            self.metrics
                .write(&serde_json::json!({"event": "stage_done", "stage": id, "step": step}))?;
        }
        self.progress.finished.push(record);
        self.progress.stage_index += 1;
        self.progress.stage_step = 0;
        self.progress.val_streak = 0;
        self.save_checkpoint()
    }

    fn save_checkpoint(&mut self) -> Result<()> {
        let mut snapshot = self.learner.snapshot()?;
        if let Some(average) = &self.average {
            let mut values = average.values();
            for t in &mut snapshot.tensors {
                let (this, rest) = values.split_at(t.param.len());
                t.average = Some(this.to_vec());
                values = rest;
            }
        }
        checkpoint::save(&self.dir.checkpoint(), &snapshot, &self.progress)
    }

    /// A new stage's average, at the weights it starts from (with `ema_decay`).
    fn start_average(&mut self) -> Result<()> {
        self.average = match self.config.ema_decay {
            Some(decay) => Some(WeightAverage::start(decay, self.learner.flat_params()?)),
            None => None,
        };
        Ok(())
    }

    /// The message of a run that diverged at its current step.
    fn diverged(&self, stage: &StageRun, what: &str) -> String {
        let p = &self.progress;
        diverged(&stage.id, p.stage_step, p.global_step, what, &self.dir)
    }

    fn report(self, outcome: Outcome, device: &Device) -> Result<TrainReport> {
        let model = self.learner.model(device)?;
        Ok(TrainReport {
            outcome,
            progress: self.progress,
            model,
        })
    }
}

impl<'a> StageRun<'a> {
    /// The stage the run is at (`progress.stage_index`), from its first step or mid-way.
    fn begin(
        config: &'a TrainConfig,
        tokenizer: &Tokenizer,
        train: &[Problem],
        progress: &Progress,
    ) -> Result<StageRun<'a>> {
        let plan = &config.stages[progress.stage_index];
        let stage = config.stage(plan)?;
        let layouts = train
            .iter()
            .map(|p| Layout::new(tokenizer, p, &stage))
            .collect::<Result<Vec<_>, _>>()?;
        let draws = StageDraws::new(config, plan, progress.stage_index, train);
        Ok(StageRun {
            id: stage.id(),
            total: config.total_steps(plan, draws.epoch_len()),
            plan,
            stage,
            layouts,
            draws,
            // When the stage resumes mid-way, its time so far is the run's time less the
            // finished stages' (not the time at the resume: that would drop the part before
            // the checkpoint).
            started_at: progress.finished.iter().map(|r| r.seconds).sum(),
            last_loss: f64::NAN,
        })
    }
}

/// Picks up where the checkpoint left off (or starts over, for a run killed before its first),
/// with the stage's weight average if the run keeps one.
fn resume(
    config: &TrainConfig,
    dir: &RunDir,
    n_train: usize,
    learner: &mut Learner,
    observer: &mut dyn Observer,
) -> Result<(Progress, Option<WeightAverage>)> {
    let saved = load_run_config(&dir.0)?;
    if &saved != config {
        bail!(
            "{} differs from the given settings: resume with the run's own config",
            dir.config().display()
        );
    }
    if !dir.checkpoint().exists() {
        // Killed before its first checkpoint: start over with the run's settings.
        observer.message("no checkpoint yet: starting the run from the beginning");
        return Ok((Progress::default(), None));
    }
    let (snapshot, p) = checkpoint::load(&dir.checkpoint(), &config.model)?;
    checkpoint::check_progress(&p, config, n_train, &dir.checkpoint())?;
    learner.restore(&snapshot)?;
    // Mid-stage, a run with a moving average saved it; at a stage boundary the next stage
    // starts a new one.
    let average = match (config.ema_decay, p.stage_step) {
        (Some(decay), step) if step > 0 => {
            let mut values = Vec::new();
            for t in &snapshot.tensors {
                let average = t.average.as_ref().with_context(|| {
                    format!(
                        "{}: the run keeps a weight average (ema_decay) and the checkpoint has none",
                        dir.checkpoint().display()
                    )
                })?;
                values.extend_from_slice(average);
            }
            Some(WeightAverage::start(decay, values))
        }
        _ => None,
    };
    observer.message(&format!(
        "resumed at step {} (stage index {}, step {})",
        p.global_step, p.stage_index, p.stage_step
    ));
    Ok((p, average))
}

/// Starts a new run in `dir` (refused where one is): writes its settings and, for a branch,
/// takes the other run's first stages.
fn start(
    config: &TrainConfig,
    dir: &RunDir,
    branch: Option<&Branch>,
    learner: &mut Learner,
    observer: &mut dyn Observer,
) -> Result<Progress> {
    if dir.checkpoint().exists() {
        bail!(
            "{} already holds a run: resume it or choose another directory",
            dir.0.display()
        );
    }
    dir.write_config(config)?;
    let Some(branch) = branch else {
        return Ok(Progress::default());
    };
    let start = crate::branch::start(config, dir, branch)?;
    learner.restore(&crate::branch::fresh_snapshot(&start.weights))?;
    checkpoint::save(&dir.checkpoint(), &learner.snapshot()?, &start.progress)?;
    observer.message(&format!(
        "branched from {} at {} (step {})",
        branch.from.display(),
        branch.at_stage,
        start.progress.global_step
    ));
    Ok(start.progress)
}

/// Writes `run.json` for a run that has started (a branch names the stages it took and their
/// provenance), or adds this process to it for a run that has resumed.
fn record_provenance(run_dir: &Path, options: &TrainOptions, progress: &Progress) -> Result<()> {
    let Some(info) = &options.run_info else {
        return Ok(());
    };
    let mut info = info.clone();
    if let (Some(branch), false) = (&options.branch, options.resume) {
        info.branched_from = Some(Branched {
            run_dir: branch.from.display().to_string(),
            stages: progress.finished.iter().map(|r| r.id.clone()).collect(),
            parent: Box::new(RunInfo::load(&branch.from)?.unwrap_or_default()),
        });
    }
    info.record(run_dir, options.resume)
}

/// `work` on the averaged weights when the run keeps an average (the raw weights back
/// afterwards), else on the weights as they are.
fn on_average<T>(
    learner: &mut Learner,
    average: Option<&WeightAverage>,
    work: impl FnOnce(&mut Learner) -> Result<T>,
) -> Result<T> {
    let Some(average) = average else {
        return work(learner);
    };
    let raw = learner.flat_params()?;
    learner.set_flat_params(average.values())?;
    let result = work(learner);
    learner.set_flat_params(&raw)?;
    result
}

/// Greedy exact-match accuracy (percent) on `problems`.
fn validate(
    learner: &mut Learner,
    tokenizer: &Tokenizer,
    problems: &[coconut_core::Problem],
    stage: &coconut_core::Stage,
) -> Result<f64> {
    let correct = learner.greedy_correct(tokenizer, problems, stage)?;
    Ok(100.0 * correct.iter().filter(|&&c| c).count() as f64 / problems.len().max(1) as f64)
}

/// The message of a run that diverged.
fn diverged(stage: &str, stage_step: u64, global_step: u64, what: &str, run: &RunDir) -> String {
    let kept = if run.checkpoint().exists() {
        format!(
            "the last good checkpoint is kept at {}",
            run.checkpoint().display()
        )
    } else {
        "no checkpoint had been written yet".to_string()
    };
    format!(
        "training diverged at stage {stage}, step {stage_step} (run step {global_step}): {what}; \
         stopped before updating the weights; {kept}"
    )
}
