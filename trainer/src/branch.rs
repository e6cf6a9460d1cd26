//! Branching a run at a stage boundary: a new run that takes the first stages of a finished (or
//! further) run as they are and trains the rest with its own plans.
//!
//! Every stage starts with a fresh optimizer and schedule, and the data order is a pure function
//! of (seed, stage, epoch), so the state at a stage boundary is the model's weights alone. A
//! branch therefore ends with the same weights, bit for bit on the CPU, as a run trained from
//! scratch with the branch's config: trying a new recipe for the late stages costs only those
//! stages.

use crate::checkpoint::{self, Progress, SnapshotTensor};
use crate::config::TrainConfig;
use crate::run_dir::{load_run_config, RunDir};
use anyhow::{bail, ensure, Context, Result};
use coconut_core::weights::ModelWeights;

/// Where a branch starts: the run it takes its first stages from, and the first stage it trains.
#[derive(Clone, Debug)]
pub struct Branch {
    pub from: std::path::PathBuf,
    /// The stage id (as in `stages/<id>.safetensors`, e.g. `stage4`) the branch trains first.
    pub at_stage: String,
}

/// What a branch starts from: the progress of its inherited stages and their last weights.
pub struct BranchStart {
    pub progress: Progress,
    pub weights: ModelWeights,
}

/// Checks that `config` may branch from `branch.from` (everything but the plans from
/// `at_stage` on is the same), and copies the inherited stages' weights and metrics into `run`.
pub fn start(config: &TrainConfig, run: &RunDir, branch: &Branch) -> Result<BranchStart> {
    let from = RunDir(branch.from.clone());
    let parent = load_run_config(&from.0)?;
    let (ids, at) = branch_point(config, branch)?;
    ensure!(
        parent.stages.len() >= at && parent.stages[..at] == config.stages[..at],
        "{}: its stages before {} are planned differently from this run's",
        from.config().display(),
        branch.at_stage
    );
    ensure!(
        same_settings(config, &parent, at)?,
        "{} differs from this run's settings beyond the stages from {} on: a branch may change \
         only those stages' plans (and the time budget)",
        from.config().display(),
        branch.at_stage
    );
    let parent_progress = checkpoint::read_progress(&from.checkpoint())?;
    ensure!(
        parent_progress.finished.len() >= at,
        "{}: has finished {} stage(s), and the branch needs the {at} before {}",
        from.0.display(),
        parent_progress.finished.len(),
        branch.at_stage
    );
    let finished = parent_progress.finished[..at].to_vec();
    let weights = copy_inherited_weights(config, &from, run, &ids[..at])?;
    let progress = Progress {
        stage_index: at,
        stage_step: 0,
        global_step: finished.iter().map(|r| r.steps).sum(),
        seconds: finished.iter().map(|r| r.seconds).sum(),
        finished,
        val_streak: 0,
    };
    let mut kept = inherited_metrics(&from, &ids[at - 1])?;
    kept.push_str(
        &serde_json::json!({"event": "branch", "from": from.0.display().to_string(), "at_stage": branch.at_stage, "step": progress.global_step})
            .to_string(),
    );
    kept.push('\n');
    checkpoint::write_atomic(&run.metrics(), kept.as_bytes())?;
    Ok(BranchStart { progress, weights })
}

/// This run's stage ids and the index of the stage the branch trains first (not the first).
fn branch_point(config: &TrainConfig, branch: &Branch) -> Result<(Vec<String>, usize)> {
    let ids = config
        .stages
        .iter()
        .map(|plan| Ok(config.stage(plan)?.id()))
        .collect::<Result<Vec<_>>>()?;
    let at = ids
        .iter()
        .position(|id| *id == branch.at_stage)
        .with_context(|| {
            format!(
                "--branch-at {}: not a stage of this run ({})",
                branch.at_stage,
                ids.join(", ")
            )
        })?;
    ensure!(
        at > 0,
        "--branch-at {}: the first stage has nothing before it to take; train from scratch",
        branch.at_stage
    );
    Ok((ids, at))
}

/// Whether everything but the plans of the stages from `at` on and the time budget matches:
/// otherwise the inherited stages would not be the ones this config trains.
fn same_settings(config: &TrainConfig, parent: &TrainConfig, at: usize) -> Result<bool> {
    let mut same = config.clone();
    same.stages = parent.stages.clone();
    same.time_budget_s = parent.time_budget_s;
    // Thoughts per step (c) and the latent order shape only stages that have thoughts: a
    // branch whose inherited stages have none (stage 0) may try another of either.
    let inherited_thoughts = config.stages[..at]
        .iter()
        .map(|plan| Ok(config.stage(plan)?.thoughts()))
        .sum::<Result<usize>>()?;
    if inherited_thoughts == 0 {
        same.thoughts_per_step = parent.thoughts_per_step;
        same.latent_order = parent.latent_order;
    }
    Ok(same == *parent)
}

/// Copies the inherited stages' weights (`ids`) so the branch's folder is complete on its own,
/// and returns the last one's: where the branch starts.
fn copy_inherited_weights(
    config: &TrainConfig,
    from: &RunDir,
    run: &RunDir,
    ids: &[String],
) -> Result<ModelWeights> {
    for id in ids {
        let bytes = coconut_core::files::read_regular(&from.stage_weights(id), u64::MAX)
            .with_context(|| format!("reading {}", from.stage_weights(id).display()))?;
        run.write_stage_weights(id, &bytes)?;
    }
    let last = ids.last().expect("a branch inherits a stage");
    let bytes = std::fs::read(run.stage_weights(last))?;
    Ok(ModelWeights::from_safetensors(
        &bytes,
        last,
        Some(&config.model),
    )?)
}

/// The parent's metrics lines up to the end of stage `last`.
fn inherited_metrics(from: &RunDir, last: &str) -> Result<String> {
    let text = std::fs::read_to_string(from.metrics())
        .with_context(|| format!("reading {}", from.metrics().display()))?;
    let mut kept = String::new();
    for line in text.lines() {
        kept.push_str(line);
        kept.push('\n');
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        if value["event"] == "stage_done" && value["stage"] == last {
            return Ok(kept);
        }
    }
    bail!("{}: no end of stage {last} in it", from.metrics().display())
}

/// A checkpoint snapshot of `weights` with an optimizer that has not started.
pub fn fresh_snapshot(weights: &ModelWeights) -> checkpoint::Snapshot {
    let tensors = coconut_core::skeleton::tensor_specs(&weights.config)
        .into_iter()
        .map(|spec| {
            let param = weights.f32(&spec.name);
            let zeros = vec![0.0; param.len()];
            SnapshotTensor {
                name: spec.name,
                shape: spec.shape,
                param,
                adam_m: zeros.clone(),
                adam_v: zeros,
                average: None,
            }
        })
        .collect();
    checkpoint::Snapshot { tensors, adam_t: 0 }
}
