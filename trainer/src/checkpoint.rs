//! Checkpoints: the weights, AdamW's moments and the progress through the curriculum, in one
//! safetensors file written atomically (a temporary file, synced, then renamed over the old one),
//! so a kill at any moment leaves either the previous checkpoint or the new one, never half.
//! A sha256 over every tensor and the progress, kept in the header, is verified on load.

use crate::config::TrainConfig;
use anyhow::{bail, ensure, Context, Result};
use coconut_core::skeleton::tensor_specs;
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
    /// Validation checks in a row, up to the last, that reached the stage's `until_val`
    /// (`val_confirm`); 0 at a stage's start.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub val_streak: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What one finished stage took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub id: String,
    pub steps: u64,
    pub seconds: f64,
    pub final_loss: f64,
    /// Why the stage ended: its schedule ran out, or validation reached its goal (and where).
    #[serde(default)]
    pub ended: String,
}

const PROGRESS_KEY: &str = "coconut.progress";
const ADAM_T_KEY: &str = "coconut.adam_t";
const SHA256_KEY: &str = "coconut.sha256";

/// Writes `bytes` to `path` atomically: `path.tmp`, fsync, rename. Every run file, export and
/// picture is written this way. A failed write (a full disk) names the file and removes the
/// temporary file, leaving whatever `path` held before.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()));
    }
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
    /// The tensor's moving average, in a run that keeps one ([`crate::average`]).
    pub average: Option<Vec<f32>>,
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
        if let Some(average) = &t.average {
            buffers.push((format!("average.{}", t.name), &t.shape, f32_bytes(average)));
        }
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
    let mut metadata = HashMap::from([
        (PROGRESS_KEY.to_string(), serde_json::to_string(progress)?),
        (ADAM_T_KEY.to_string(), snapshot.adam_t.to_string()),
    ]);
    let sha = content_sha256(
        &metadata,
        buffers.iter().map(|(n, _, b)| (n.as_str(), b.as_slice())),
    );
    metadata.insert(SHA256_KEY.to_string(), sha);
    let bytes = safetensors::tensor::serialize(views, Some(metadata))?;
    write_atomic(path, &bytes)
}

/// The key-value metadata of a checkpoint's header.
fn metadata(bytes: &[u8], path: &Path) -> Result<HashMap<String, String>> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .with_context(|| format!("{}: not a checkpoint", path.display()))?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// The sha256 of a checkpoint's content: every metadata entry but the checksum itself, then
/// every tensor's name and bytes, both in name order, each length-prefixed. It does not depend
/// on how safetensors lays the file out, only on what it holds.
fn content_sha256<'a>(
    metadata: &HashMap<String, String>,
    tensors: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let mut put = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    let mut entries: Vec<(&String, &String)> =
        metadata.iter().filter(|(k, _)| *k != SHA256_KEY).collect();
    entries.sort();
    for (key, value) in entries {
        put(key.as_bytes());
        put(value.as_bytes());
    }
    let mut tensors: Vec<(&str, &[u8])> = tensors.collect();
    tensors.sort();
    for (name, bytes) in tensors {
        put(name.as_bytes());
        put(bytes);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks the checksum a checkpoint holds against its content. Checkpoints written before the
/// checksum existed have none and are taken as they are.
fn verify_sha256(st: &SafeTensors, meta: &HashMap<String, String>, path: &Path) -> Result<()> {
    let Some(expected) = meta.get(SHA256_KEY) else {
        return Ok(());
    };
    let tensors = st.tensors();
    let actual = content_sha256(meta, tensors.iter().map(|(n, v)| (n.as_str(), v.data())));
    ensure!(
        actual == *expected,
        "{}: the checksum of its content is {actual}, the file says {expected}: the checkpoint \
         is corrupt",
        path.display()
    );
    Ok(())
}

/// Refuses progress that the run's settings cannot have produced: a stage index past the end of
/// the stage list, a step at or past the stage's end (a finished stage is recorded as the next
/// stage's step 0), finished-stage records that do not match the stages before it.
pub fn check_progress(
    progress: &Progress,
    config: &TrainConfig,
    n_train: usize,
    path: &Path,
) -> Result<()> {
    let file = path.display();
    let stages = config.stages.len();
    ensure!(
        progress.stage_index <= stages,
        "{file}: stage_index {} is out of range: the run has {stages} stages",
        progress.stage_index
    );
    let finished: Vec<&str> = progress.finished.iter().map(|r| r.id.as_str()).collect();
    let expected: Vec<String> = config.stages[..progress.stage_index]
        .iter()
        .map(|plan| config.stage(plan).map(|s| s.id()))
        .collect::<Result<_>>()?;
    ensure!(
        finished == expected,
        "{file}: finished lists {finished:?}, but stage_index {} follows {expected:?}",
        progress.stage_index
    );
    if let Some(plan) = config.stages.get(progress.stage_index) {
        let total = config.total_steps(plan, n_train);
        ensure!(
            progress.stage_step < total,
            "{file}: stage_step {} is beyond {}'s {total} steps",
            progress.stage_step,
            plan.stage
        );
    } else {
        ensure!(
            progress.stage_step == 0,
            "{file}: stage_step {} after the last stage",
            progress.stage_step
        );
    }
    let done: u64 = progress.finished.iter().map(|r| r.steps).sum();
    ensure!(
        progress.global_step == done + progress.stage_step,
        "{file}: global_step {} is not the finished stages' {done} steps plus stage_step {}",
        progress.global_step,
        progress.stage_step
    );
    ensure!(
        progress.seconds.is_finite() && progress.seconds >= 0.0,
        "{file}: seconds is {}",
        progress.seconds
    );
    Ok(())
}

/// The progress record among a checkpoint's metadata.
fn progress_in(meta: &HashMap<String, String>, path: &Path) -> Result<Progress> {
    let json = meta
        .get(PROGRESS_KEY)
        .with_context(|| format!("{}: no progress record", path.display()))?;
    serde_json::from_str(json)
        .with_context(|| format!("{}: progress record {PROGRESS_KEY}", path.display()))
}

/// A checkpoint's bytes: a regular file, read whole.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    coconut_core::files::read_regular(path, u64::MAX)
        .with_context(|| format!("reading {}", path.display()))
}

/// The progress of the checkpoint at `path` without loading its tensors (checksum verified).
pub fn read_progress(path: &Path) -> Result<Progress> {
    let bytes = read_file(path)?;
    let meta = metadata(&bytes, path)?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a checkpoint", path.display()))?;
    verify_sha256(&st, &meta, path)?;
    progress_in(&meta, path)
}

/// Reads the checkpoint at `path` of a model with `config`: its snapshot and progress.
pub fn load(path: &Path, config: &ModelConfig) -> Result<(Snapshot, Progress)> {
    let bytes = read_file(path)?;
    let meta = metadata(&bytes, path)?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a checkpoint", path.display()))?;
    verify_sha256(&st, &meta, path)?;
    let progress = progress_in(&meta, path)?;
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
    // A run that keeps a moving average saves one for every tensor.
    let averaged = st.names().iter().any(|n| n.starts_with("average."));
    let tensors = tensor_specs(config)
        .into_iter()
        .map(|spec| {
            Ok(SnapshotTensor {
                param: read(&format!("param.{}", spec.name), &spec.shape)?,
                adam_m: read(&format!("adam_m.{}", spec.name), &spec.shape)?,
                adam_v: read(&format!("adam_v.{}", spec.name), &spec.shape)?,
                average: match averaged {
                    true => Some(read(&format!("average.{}", spec.name), &spec.shape)?),
                    false => None,
                },
                name: spec.name,
                shape: spec.shape,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let adam_t = meta
        .get(ADAM_T_KEY)
        .with_context(|| format!("{}: no optimizer step count", path.display()))?
        .parse()
        .with_context(|| format!("{}: optimizer step count {ADAM_T_KEY}", path.display()))?;
    Ok((Snapshot { tensors, adam_t }, progress))
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::Learner;
    use crate::StagePlan;
    use candle_core::Device;

    fn tiny() -> TrainConfig {
        let mut c = TrainConfig {
            model: coconut_core::ModelConfig {
                n_positions: 32,
                n_embd: 8,
                n_layer: 1,
                ..coconut_core::ModelConfig::tiny()
            },
            stages: vec![StagePlan::new("stage0", 1.0), StagePlan::new("stage1", 2.0)],
            batch_size: 10,
            ..TrainConfig::default()
        };
        c.data.max_digits = 2;
        c
    }

    fn saved(progress: &Progress) -> (tempfile::TempDir, std::path::PathBuf) {
        let config = tiny();
        let learner = Learner::new(&config, &Device::Cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.safetensors");
        save(&path, &learner.snapshot().unwrap(), progress).unwrap();
        (dir, path)
    }

    fn load_into_fresh(path: &Path) -> Result<Progress> {
        let (snapshot, progress) = load(path, &tiny().model)?;
        let mut learner = Learner::new(&tiny(), &Device::Cpu).unwrap();
        learner.restore(&snapshot)?;
        Ok(progress)
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_content_is_caught() {
        let progress = Progress {
            stage_index: 1,
            stage_step: 3,
            global_step: 13,
            seconds: 1.5,
            finished: vec![StageRecord {
                id: "stage0".into(),
                steps: 10,
                seconds: 1.0,
                final_loss: 0.5,
                ended: "schedule complete after 10 steps".into(),
            }],
            // Two validation checks in a row reached the stage's goal: kept across a resume.
            val_streak: 2,
        };
        let (_dir, path) = saved(&progress);
        assert_eq!(load_into_fresh(&path).unwrap(), progress);
        assert_eq!(read_progress(&path).unwrap(), progress);
        let bytes = std::fs::read(&path).unwrap();
        // The last byte is tensor data: still a valid file, only the checksum sees the change.
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 0x01;
        std::fs::write(&path, &flipped).unwrap();
        let e = load_into_fresh(&path).unwrap_err().to_string();
        assert!(e.contains("the checkpoint is corrupt"), "{e}");
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        assert!(read_progress(&path).is_err());
        // So is a changed progress record of the same length.
        // (The progress is JSON inside the header's JSON, its quotes escaped.)
        let needle = br#"stage_step\":3"#;
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
        let mut edited = bytes.clone();
        edited[at + needle.len() - 1] = b'4';
        std::fs::write(&path, &edited).unwrap();
        assert!(read_progress(&path)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
    }

    #[test]
    fn impossible_progress_is_refused_naming_file_and_field() {
        let config = tiny();
        // 95 problems in batches of 10: 10 steps per epoch; stage1 runs 2 epochs.
        let n_train = 95;
        let path = Path::new("run/checkpoint.safetensors");
        let stage0 = StageRecord {
            id: "stage0".into(),
            steps: 10,
            seconds: 1.0,
            final_loss: 0.1,
            ended: String::new(),
        };
        let good = Progress {
            stage_index: 1,
            stage_step: 19,
            global_step: 29,
            seconds: 2.0,
            finished: vec![stage0.clone()],
            val_streak: 0,
        };
        check_progress(&good, &config, n_train, path).unwrap();
        let refused = |p: Progress, expected: &str| {
            let e = check_progress(&p, &config, n_train, path)
                .unwrap_err()
                .to_string();
            assert_eq!(e, format!("run/checkpoint.safetensors: {expected}"));
        };
        refused(
            Progress {
                stage_index: 99,
                ..good.clone()
            },
            "stage_index 99 is out of range: the run has 2 stages",
        );
        refused(
            Progress {
                stage_step: 1_000_000_000_000,
                ..good.clone()
            },
            "stage_step 1000000000000 is beyond stage1's 20 steps",
        );
        refused(
            Progress {
                global_step: 7,
                ..good.clone()
            },
            "global_step 7 is not the finished stages' 10 steps plus stage_step 19",
        );
        refused(
            Progress {
                finished: vec![],
                ..good.clone()
            },
            "finished lists [], but stage_index 1 follows [\"stage0\"]",
        );
        refused(
            Progress {
                seconds: f64::NAN,
                ..good.clone()
            },
            "seconds is NaN",
        );
    }
}
