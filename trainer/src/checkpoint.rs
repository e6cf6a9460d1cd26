//! Checkpoints: the weights, AdamW's moments and the progress through the curriculum, in one
//! safetensors file written atomically (a temporary file, synced, then renamed over the old one),
//! so a kill at any moment leaves either the previous checkpoint or the new one, never half.

use anyhow::{bail, Context, Result};
use coconut_core::weights::tensor_specs;
use coconut_core::ModelConfig;
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

/// One parameter tensor and its AdamW moments, on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub param: Vec<f32>,
    pub adam_m: Vec<f32>,
    pub adam_v: Vec<f32>,
}

/// Everything of the model and optimizer a checkpoint holds, whichever engine wrote it.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub tensors: Vec<SnapshotTensor>,
    /// AdamW updates since its last reset.
    pub adam_t: u64,
}

/// Saves the model, the optimizer and the progress to `path`.
pub fn save(path: &Path, snapshot: &Snapshot, progress: &Progress) -> Result<()> {
    let mut buffers: Vec<(String, &[usize], Vec<u8>)> = Vec::new();
    for t in &snapshot.tensors {
        buffers.push((format!("param.{}", t.name), &t.shape, f32_bytes(&t.param)));
    }
    for t in &snapshot.tensors {
        buffers.push((format!("adam_m.{}", t.name), &t.shape, f32_bytes(&t.adam_m)));
        buffers.push((format!("adam_v.{}", t.name), &t.shape, f32_bytes(&t.adam_v)));
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            Ok((
                name.clone(),
                TensorView::new(Dtype::F32, shape.to_vec(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([
        (PROGRESS_KEY.to_string(), serde_json::to_string(progress)?),
        (ADAM_T_KEY.to_string(), snapshot.adam_t.to_string()),
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

/// Reads the checkpoint at `path` of a model with `config`: its snapshot and progress.
pub fn load(path: &Path, config: &ModelConfig) -> Result<(Snapshot, Progress)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let meta = metadata(&bytes, path)?;
    let progress = progress_in(&meta, path)?;
    let st = SafeTensors::deserialize(&bytes)?;
    let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let view = st
            .tensor(name)
            .with_context(|| format!("{}: tensor {name} missing", path.display()))?;
        if view.shape() != shape || view.dtype() != Dtype::F32 {
            bail!(
                "{}: tensor {name} has the wrong shape or dtype",
                path.display()
            );
        }
        Ok(coconut_core::weights::le_f32(view.data()))
    };
    let tensors = tensor_specs(config)
        .into_iter()
        .map(|spec| {
            Ok(SnapshotTensor {
                param: read(&format!("param.{}", spec.name), &spec.shape)?,
                adam_m: read(&format!("adam_m.{}", spec.name), &spec.shape)?,
                adam_v: read(&format!("adam_v.{}", spec.name), &spec.shape)?,
                name: spec.name,
                shape: spec.shape,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let adam_t = meta
        .get(ADAM_T_KEY)
        .with_context(|| format!("{}: no optimizer step count", path.display()))?
        .parse()
        .with_context(|| format!("{}: the optimizer step count", path.display()))?;
    Ok((Snapshot { tensors, adam_t }, progress))
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
