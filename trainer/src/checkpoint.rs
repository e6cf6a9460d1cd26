//! Checkpoints: the weights, AdamW's moments and the progress through the curriculum, in one
//! safetensors file written atomically (a temporary file, synced, then renamed over the old one),
//! so a kill at any moment leaves either the previous checkpoint or the new one, never half.

use crate::model::{to_host, Gpt};
use crate::optim::AdamW;
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Where training stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Index into the config's stage list of the stage being trained (= len when all are done).
    pub stage_index: usize,
    /// Optimizer steps done in that stage.
    pub stage_step: u64,
    /// Optimizer steps done in the whole run.
    pub global_step: u64,
    /// Training seconds spent so far, over every process of the run.
    pub seconds: f64,
    /// Steps and seconds of each finished stage.
    pub finished: Vec<StageRecord>,
}

/// What one finished stage took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub id: String,
    pub steps: u64,
    pub seconds: f64,
    pub final_loss: f64,
}

const PROGRESS_KEY: &str = "coconut.progress";
const ADAM_T_KEY: &str = "coconut.adam_t";

/// Writes `bytes` to `path` atomically: `path.tmp`, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Saves the model, the optimizer and the progress to `path`.
pub fn save(path: &Path, model: &Gpt, optimizer: &AdamW, progress: &Progress) -> Result<()> {
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut push = |name: String, t: &Tensor| -> Result<()> {
        let values = to_host(t)?;
        buffers.push((name, t.dims().to_vec(), f32_bytes(&values)));
        Ok(())
    };
    for (name, var) in model.named_vars() {
        push(format!("param.{name}"), var.as_tensor())?;
    }
    for p in &optimizer.params {
        push(format!("adam_m.{}", p.name), &p.m)?;
        push(format!("adam_v.{}", p.name), &p.v)?;
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            Ok((
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([
        (PROGRESS_KEY.to_string(), serde_json::to_string(progress)?),
        (ADAM_T_KEY.to_string(), optimizer.t.to_string()),
    ]);
    let bytes = safetensors::tensor::serialize(views, Some(metadata))?;
    write_atomic(path, &bytes)
}

/// The key-value metadata of a checkpoint's header.
fn metadata(bytes: &[u8], path: &Path) -> Result<HashMap<String, String>> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .with_context(|| format!("{}: not a checkpoint", path.display()))?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// The progress record among a checkpoint's metadata.
fn progress_in(meta: &HashMap<String, String>, path: &Path) -> Result<Progress> {
    let json = meta
        .get(PROGRESS_KEY)
        .with_context(|| format!("{}: no progress record", path.display()))?;
    Ok(serde_json::from_str(json)?)
}

/// The progress of the checkpoint at `path` without loading its tensors.
pub fn read_progress(path: &Path) -> Result<Progress> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    progress_in(&metadata(&bytes, path)?, path)
}

/// Restores a checkpoint into `model` and `optimizer` (same config and parameter names) and
/// returns its progress.
pub fn load(path: &Path, model: &Gpt, optimizer: &mut AdamW) -> Result<Progress> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let meta = metadata(&bytes, path)?;
    let progress = progress_in(&meta, path)?;
    let st = SafeTensors::deserialize(&bytes)?;
    let read = |name: &str, like: &Tensor| -> Result<Tensor> {
        let view = st
            .tensor(name)
            .with_context(|| format!("{}: tensor {name} missing", path.display()))?;
        if view.shape() != like.dims() || view.dtype() != Dtype::F32 {
            bail!(
                "{}: tensor {name} has the wrong shape or dtype",
                path.display()
            );
        }
        let values = coconut_core::weights::le_f32(view.data());
        Ok(Tensor::from_vec(values, like.dims(), like.device())?)
    };
    for (name, var) in model.named_vars() {
        var.set(&read(&format!("param.{name}"), var.as_tensor())?)?;
    }
    for p in &mut optimizer.params {
        p.m = read(&format!("adam_m.{}", p.name), &p.m)?;
        p.v = read(&format!("adam_v.{}", p.name), &p.v)?;
    }
    optimizer.t = meta
        .get(ADAM_T_KEY)
        .context("no optimizer step count")?
        .parse()?;
    Ok(progress)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
