//! The training loop: every stage of the curriculum in order, each with a fresh AdamW and its own
//! warmup + cosine schedule, checkpoints every N steps and after each stage, resumable.
//!
//! A run directory holds `config.json`, `checkpoint.safetensors` (weights, moments, progress),
//! `metrics.jsonl` and `stages/<stage_id>.safetensors` (each finished stage's f32 weights).
//! The data order is a pure function of (seed, stage, epoch), and the checkpoint holds all other
//! state, so on the CPU a resumed run ends with the same weights, bit for bit, as one that never
//! stopped.

use crate::checkpoint::{self, write_atomic, Progress, StageRecord};
use crate::config::TrainConfig;
use crate::cpu::plan::ThoughtNoise;
use crate::learner::Learner;
use crate::model::Gpt;
use crate::optim::{clip_scale, lr_at};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use coconut_core::data::Splits;
use coconut_core::layout::Layout;
use coconut_core::tokenizer::Tokenizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const CONFIG_FILE: &str = "config.json";
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const STAGES_DIR: &str = "stages";

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

/// Paths inside a run directory.
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub fn config(&self) -> PathBuf {
        self.0.join(CONFIG_FILE)
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.0.join(CHECKPOINT_FILE)
    }
    pub fn metrics(&self) -> PathBuf {
        self.0.join(METRICS_FILE)
    }
    pub fn stage_weights(&self, stage_id: &str) -> PathBuf {
        self.0
            .join(STAGES_DIR)
            .join(format!("{stage_id}.safetensors"))
    }
}

/// Reads a run directory's `config.json`.
pub fn load_run_config(run_dir: &Path) -> Result<TrainConfig> {
    let path = RunDir(run_dir.to_path_buf()).config();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The training set's order in one epoch of one stage: a pure function of its arguments.
pub fn epoch_order(n: usize, seed: u64, stage_index: usize, epoch: u64) -> Vec<usize> {
    let key = seed
        ^ (stage_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ epoch.wrapping_mul(0xC2B2_AE3D_27D4_EB4F).rotate_left(17);
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    order
}

/// Appends JSON lines to `metrics.jsonl`.
struct MetricsLog(std::fs::File, PathBuf);

impl MetricsLog {
    /// Opens the log for appending; `fresh` empties it first (a run starting from step 0: the
    /// lines of an attempt that left no checkpoint describe nothing that remains).
    fn open(path: &Path, fresh: bool) -> Result<MetricsLog> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|f| {
                if fresh {
                    f.set_len(0).map(|_| f)
                } else {
                    Ok(f)
                }
            })
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(MetricsLog(f, path.to_path_buf()))
    }

    fn write(&mut self, value: &impl Serialize) -> Result<()> {
        writeln!(self.0, "{}", serde_json::to_string(value)?)
            .and_then(|_| self.0.flush())
            .with_context(|| format!("writing {}", self.1.display()))
    }
}

/// Trains `config`'s stages in `run_dir` on `device`; see the module documentation.
pub fn train(
    config: &TrainConfig,
    run_dir: &Path,
    device: &Device,
    options: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<TrainReport> {
    config.validate()?;
    if config.stages.iter().any(|p| p.mixing(config) > 0.0) && !config.uses_cpu_engine(device) {
        bail!("mix (data mixing) needs the CPU engine: batches of the candle path hold one stage");
    }
    if config.thought_noise > 0.0 && !config.uses_cpu_engine(device) {
        bail!("thought_noise needs the CPU engine: the candle path feeds thoughts unchanged");
    }
    crate::ops::keep_freed_memory();
    let run = RunDir(run_dir.to_path_buf());
    std::fs::create_dir_all(run.0.join(STAGES_DIR))
        .with_context(|| format!("creating {}", run.0.display()))?;
    let _lock = crate::run_lock::RunLock::acquire(run_dir)?; // held until train returns
    let tokenizer = Tokenizer::new();
    let splits: Splits = config.data.generate()?;
    let mut learner = Learner::new(config, device)?;

    // Start fresh, or pick up where the checkpoint left off.
    let mut progress = if options.resume {
        let saved = load_run_config(run_dir)?;
        if &saved != config {
            bail!(
                "{} differs from the given settings: resume with the run's own config",
                run.config().display()
            );
        }
        if run.checkpoint().exists() {
            let (snapshot, p) = checkpoint::load(&run.checkpoint(), &config.model)?;
            checkpoint::check_progress(&p, config, splits.train.len(), &run.checkpoint())?;
            learner.restore(&snapshot)?;
            observer.message(&format!(
                "resumed at step {} (stage index {}, step {})",
                p.global_step, p.stage_index, p.stage_step
            ));
            p
        } else {
            // Killed before its first checkpoint: start over with the run's settings.
            observer.message("no checkpoint yet: starting the run from the beginning");
            Progress::default()
        }
    } else {
        if run.checkpoint().exists() {
            bail!(
                "{} already holds a run: resume it or choose another directory",
                run.0.display()
            );
        }
        write_atomic(
            &run.config(),
            serde_json::to_string_pretty(config)?.as_bytes(),
        )?;
        match &options.branch {
            Some(branch) => {
                let start = crate::branch::start(config, &run, branch)?;
                learner.restore(&crate::branch::fresh_snapshot(&start.weights))?;
                checkpoint::save(&run.checkpoint(), &learner.snapshot()?, &start.progress)?;
                observer.message(&format!(
                    "branched from {} at {} (step {})",
                    branch.from.display(),
                    branch.at_stage,
                    start.progress.global_step
                ));
                start.progress
            }
            None => Progress::default(),
        }
    };
    if let Some(info) = &options.run_info {
        let mut info = info.clone();
        if let (Some(branch), false) = (&options.branch, options.resume) {
            info.branched_from = Some(crate::provenance::Branched {
                run_dir: branch.from.display().to_string(),
                stages: progress.finished.iter().map(|r| r.id.clone()).collect(),
                parent: Box::new(
                    crate::provenance::RunInfo::load(&branch.from)?.unwrap_or_default(),
                ),
            });
        }
        info.record(run_dir, options.resume)?;
    }
    let mut metrics = MetricsLog::open(&run.metrics(), progress.global_step == 0)?;
    metrics.write(&serde_json::json!({"event": if options.resume { "resume" } else { "start" }, "step": progress.global_step}))?;
    let started = Instant::now();
    let seconds_before = progress.seconds;

    while progress.stage_index < config.stages.len() {
        let plan = &config.stages[progress.stage_index];
        let stage = config.stage(plan)?;
        let id = stage.id();
        let layouts = splits
            .train
            .iter()
            .map(|p| Layout::new(&tokenizer, p, &stage))
            .collect::<Result<Vec<_>, _>>()?;
        // One epoch: every training problem, plus the stage's extra copies of the hard ones.
        let pool = plan.epoch_pool(&splits.train);
        let seed = plan.draw_seed(config);
        let steps_per_epoch = pool.len().div_ceil(config.batch_size) as u64;
        let total = config.total_steps(plan, pool.len());
        if progress.stage_step == 0 {
            // A new stage: the optimizer and its schedule start over.
            learner.reset_optimizer()?;
        }
        observer.stage_started(&id, total, progress.stage_step);
        // When the stage resumes mid-way, its time so far is the run's time less the finished
        // stages' (not the time at the resume: that would drop the part before the checkpoint).
        let stage_started: f64 = progress.finished.iter().map(|r| r.seconds).sum();
        let mut order = (u64::MAX, Vec::new());
        let mut last_loss = f64::NAN;
        let n_val = config.val_problems.min(splits.val.len());
        let mut ended = format!("schedule complete after {total} steps");
        let mut ended_at_val = None; // the accuracy that ended the stage, if validation did

        while progress.stage_step < total {
            let step = progress.stage_step;
            // A stage that ends when learned checks before its step, so that a run resumed at
            // this step makes the same decision.
            if let Some(goal) = plan.until_val {
                if step > 0 && step % config.val_every == 0 {
                    let accuracy =
                        validate(&mut learner, &tokenizer, &splits.val[..n_val], &stage)?;
                    observer.message(&format!(
                        "{id} step {step}: validation greedy accuracy {accuracy:.2}% (n = {n_val})"
                    ));
                    metrics.write(&serde_json::json!({"event": "val", "stage": id, "stage_step": step, "step": progress.global_step, "val_greedy": accuracy, "n_val": n_val}))?;
                    if accuracy >= goal {
                        ended = format!(
                            "validation {accuracy:.2}% >= {goal}% (n = {n_val}) at step {step} of {total}"
                        );
                        ended_at_val = Some(accuracy);
                        break;
                    }
                }
            }
            let tick = Instant::now();

            // The batch: a slice of this epoch's order.
            let (epoch, index) = (step / steps_per_epoch, (step % steps_per_epoch) as usize);
            let stage_index = progress.stage_index;
            let key = move |stream| stream_key(stream, seed, stage_index, step);
            if order.0 != epoch {
                let shuffled = epoch_order(pool.len(), seed, progress.stage_index, epoch);
                order = (epoch, shuffled.into_iter().map(|j| pool[j]).collect());
            }
            let start = index * config.batch_size;
            let end = (start + config.batch_size).min(pool.len());
            let picked = mixed_in(
                plan.mixing(config),
                key(Stream::Mixing),
                &stage,
                &tokenizer,
                &splits.train,
                &order.1[start..end],
            )?;
            let offsets = per_example_draws(
                config.max_position_offset,
                key(Stream::Offsets),
                end - start,
            );
            let gaps = per_column_draws(
                config.max_column_gap,
                key(Stream::Gaps),
                end - start,
                config.data.max_digits + 1,
            );
            let extra = per_column_draws(
                config.max_extra_thoughts,
                key(Stream::ExtraThoughts),
                end - start,
                config.data.max_digits + 1,
            );
            let pads =
                per_example_draws(config.max_answer_pad, key(Stream::AnswerPad), end - start);
            // A member with a padded answer, extra thoughts, an offset or gaps is a copy (with
            // its answer or thoughts lengthened, its column ids moved); the rest are borrowed.
            let members: Vec<Cow<Layout>> = order.1[start..end]
                .iter()
                .zip(&picked)
                .zip(offsets.iter().zip(&gaps).zip(extra.iter().zip(&pads)))
                .map(|((&i, earlier), ((&o, g), (x, &pad)))| {
                    let layout = earlier.as_ref().unwrap_or(&layouts[i]);
                    // A mixed-in layout is another stage's, whose written steps the padding
                    // would number as this stage's: only the stage's own answers are padded.
                    let padded = if pad == 0 || earlier.is_some() {
                        Cow::Borrowed(layout)
                    } else {
                        Cow::Owned(layout.with_answer_pad(&stage, pad))
                    };
                    let lengthened = if x.iter().all(|&x| x == 0) {
                        padded
                    } else {
                        Cow::Owned(padded.with_extra_thoughts(&stage, x))
                    };
                    if o == 0 && g.iter().all(|&g| g == 0) {
                        lengthened
                    } else {
                        Cow::Owned(lengthened.spread(o, g))
                    }
                })
                .collect();
            let members: Vec<&Layout> = members.iter().map(|l| l.as_ref()).collect();
            let batch_tokens: usize = members.iter().map(|l| l.ids.len()).sum();

            // Forward, checked before anything changes.
            let lr = lr_at(
                step,
                total,
                plan.peak_lr(config),
                config.warmup_steps,
                config.min_lr_ratio,
            );
            let noise = (config.thought_noise > 0.0).then(|| ThoughtNoise {
                std: config.thought_noise as f32,
                key: key(Stream::Noise),
            });
            let stats = learner.compute(&members, &stage, noise)?;
            let (loss_v, grad_norm) = (stats.loss, stats.grad_norm);
            if !loss_v.is_finite() || loss_v > config.max_loss {
                bail!(diverged(
                    &id,
                    step,
                    progress.global_step,
                    &format!("loss {loss_v}"),
                    &run
                ));
            }

            // Clip, update.
            if !grad_norm.is_finite() {
                bail!(diverged(
                    &id,
                    step,
                    progress.global_step,
                    &format!("gradient norm {grad_norm}"),
                    &run
                ));
            }
            learner.apply(lr, clip_scale(grad_norm, config.grad_clip))?;
            progress.stage_step += 1;
            progress.global_step += 1;
            progress.seconds = seconds_before + started.elapsed().as_secs_f64();
            last_loss = loss_v;

            let m = StepMetrics {
                step: progress.global_step,
                stage: id.clone(),
                stage_step: progress.stage_step,
                loss: loss_v,
                lr,
                grad_norm,
                tokens_per_s: batch_tokens as f64 / tick.elapsed().as_secs_f64(),
            };
            observer.step(&m);
            if progress.stage_step % config.log_every == 0 || progress.stage_step == total {
                metrics.write(&m)?;
            }
            if options.stop_at_step == Some(progress.global_step) {
                return Ok(TrainReport {
                    outcome: Outcome::Stopped,
                    progress,
                    model: learner.model(device)?,
                });
            }
            if progress.stage_step % config.checkpoint_every == 0 && progress.stage_step < total {
                checkpoint::save(&run.checkpoint(), &learner.snapshot()?, &progress)?;
            }
            let out_of_time = config
                .time_budget_s
                .is_some_and(|b| started.elapsed().as_secs_f64() >= b);
            if out_of_time && progress.stage_step < total {
                checkpoint::save(&run.checkpoint(), &learner.snapshot()?, &progress)?;
                observer.message(&format!(
                    "time budget spent at {id} step {}; resume with --resume",
                    progress.stage_step
                ));
                metrics.write(
                    &serde_json::json!({"event": "out_of_time", "step": progress.global_step}),
                )?;
                return Ok(TrainReport {
                    outcome: Outcome::OutOfTime,
                    progress,
                    model: learner.model(device)?,
                });
            }
        }

        // The stage is done: its weights, a validation number, and a checkpoint at the boundary.
        let weights = learner.weights()?;
        write_atomic(&run.stage_weights(&id), &weights.to_safetensors())?;
        observer.message(&format!("{id}: {ended}"));
        let record = StageRecord {
            id: id.clone(),
            steps: progress.stage_step,
            seconds: progress.seconds - stage_started,
            final_loss: last_loss,
            ended,
        };
        if n_val > 0 {
            let accuracy = match ended_at_val {
                Some(accuracy) => accuracy, // the same weights were just validated
                None => validate(&mut learner, &tokenizer, &splits.val[..n_val], &stage)?,
            };
            observer.message(&format!(
                "{id}: validation greedy accuracy {accuracy:.2}% (n = {n_val})"
            ));
            metrics.write(&serde_json::json!({"event": "stage_done", "stage": id, "step": progress.global_step, "val_greedy": accuracy, "n_val": n_val}))?;
        } else {
            metrics.write(&serde_json::json!({"event": "stage_done", "stage": id, "step": progress.global_step}))?;
        }
        progress.finished.push(record);
        progress.stage_index += 1;
        progress.stage_step = 0;
        checkpoint::save(&run.checkpoint(), &learner.snapshot()?, &progress)?;
    }
    Ok(TrainReport {
        outcome: Outcome::Finished,
        progress,
        model: learner.model(device)?,
    })
}

/// Coconut's data mixing: for each problem of a batch of latent stage k >= 1, with probability
/// `mix`, its layout at a uniformly drawn earlier stage (None: the stage's own). A pure function
/// of `key` ([`stream_key`]: seed, stage, step), like the data order.
fn mixed_in(
    mix: f64,
    key: u64,
    stage: &coconut_core::Stage,
    tokenizer: &Tokenizer,
    train: &[coconut_core::Problem],
    batch: &[usize],
) -> Result<Vec<Option<Layout>>> {
    let coconut_core::StageKind::Latent { k } = stage.kind else {
        return Ok(vec![None; batch.len()]);
    };
    if mix <= 0.0 || k == 0 {
        return Ok(vec![None; batch.len()]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    batch
        .iter()
        .map(|&i| {
            if rng.random::<f64>() >= mix {
                return Ok(None);
            }
            // The stage's own settings (ids, orders) with fewer latent steps.
            let earlier = stage.with_kind(coconut_core::StageKind::Latent {
                k: rng.random_range(0..k),
            });
            Ok(Some(Layout::new(tokenizer, &train[i], &earlier)?))
        })
        .collect()
}

/// One draw per batch member, uniform in `0..=max`: its column-id offset or its answer's
/// padding (none drawn when `max` is 0, so runs without them keep their random streams).
fn per_example_draws(max: usize, key: u64, n: usize) -> Vec<usize> {
    if max == 0 {
        return vec![0; n];
    }
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    (0..n).map(|_| rng.random_range(0..=max)).collect()
}

/// For each of `n` examples, `columns` draws from `0..=max` (none when `max` is 0): the gaps
/// between its column ids, or its columns' extra thoughts.
fn per_column_draws(max: usize, key: u64, n: usize, columns: usize) -> Vec<Vec<u32>> {
    if max == 0 {
        return vec![Vec::new(); n];
    }
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    (0..n)
        .map(|_| {
            (0..columns)
                .map(|_| rng.random_range(0..=max as u32))
                .collect()
        })
        .collect()
}

/// The independent random streams of a training step, each tagged by a constant (ASCII of its
/// name) so that no two draw the same numbers.
#[derive(Clone, Copy)]
#[repr(u64)]
enum Stream {
    Mixing = 0x6D69_7869_6E67,
    Offsets = 0x6F66_6673_6574,
    Gaps = 0x6761_7073,
    ExtraThoughts = 0x0065_7874_7261,
    AnswerPad = 0x7061_6464,
    Noise = 0x006E_6F69_7365,
}

/// The seed of `stream` at a step: a pure function of the stage's seed, the stage and the step,
/// like the data order.
fn stream_key(stream: Stream, seed: u64, stage_index: usize, step: u64) -> u64 {
    seed ^ stream as u64 ^ ((stage_index as u64) << 48) ^ step
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_column_draws_are_a_pure_function_of_the_key_and_cover_their_range() {
        assert_eq!(per_column_draws(0, 7, 3, 5), vec![Vec::<u32>::new(); 3]);
        let gaps = per_column_draws(3, 7, 64, 5);
        assert_eq!(gaps, per_column_draws(3, 7, 64, 5));
        assert_ne!(gaps, per_column_draws(3, 8, 64, 5));
        assert!(gaps.iter().all(|g| g.len() == 5));
        let drawn: std::collections::BTreeSet<u32> = gaps.iter().flatten().copied().collect();
        assert_eq!(drawn.into_iter().collect::<Vec<_>>(), [0, 1, 2, 3]);
    }
}
