//! The run directory: which file of a run lives where, under which name, and how it is written.
//!
//! - `config.json`: the run's settings, written once when the run starts ([`RunDir::write_config`]);
//! - `checkpoint.safetensors`: weights, AdamW's moments and progress ([`crate::checkpoint`],
//!   written atomically);
//! - `metrics.jsonl`: one JSON line per step or event, appended and flushed ([`MetricsLog`]);
//! - `stages/<stage_id>.safetensors`: each finished stage's f32 weights, written atomically;
//! - `run.json`: where the run came from ([`crate::provenance`]);
//! - `lock`: one writer at a time ([`crate::run_lock`]).
//!
//! The training loop ([`crate::train`]), branching ([`crate::branch`]), checkpoints and resume
//! all find their files here.

use crate::checkpoint::write_atomic;
use crate::config::TrainConfig;
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.json";
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const STAGES_DIR: &str = "stages";
pub const RUN_INFO_FILE: &str = "run.json";
pub const LOCK_FILE: &str = "lock";

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

    /// Creates the directory and its `stages/`.
    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(self.0.join(STAGES_DIR))
            .with_context(|| format!("creating {}", self.0.display()))
    }

    /// Writes `config.json` (atomically).
    pub fn write_config(&self, config: &TrainConfig) -> Result<()> {
        write_atomic(
            &self.config(),
            serde_json::to_string_pretty(config)?.as_bytes(),
        )
    }

    /// Writes a finished stage's weights (safetensors bytes, atomically).
    pub fn write_stage_weights(&self, stage_id: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.stage_weights(stage_id), bytes)
    }
}

/// Reads a run directory's `config.json`.
pub fn load_run_config(run_dir: &Path) -> Result<TrainConfig> {
    let path = RunDir(run_dir.to_path_buf()).config();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Appends JSON lines to `metrics.jsonl`.
pub(crate) struct MetricsLog(std::fs::File, PathBuf);

impl MetricsLog {
    /// Opens the log for appending; `fresh` empties it first (a run starting from step 0: the
    /// lines of an attempt that left no checkpoint describe nothing that remains).
    pub(crate) fn open(path: &Path, fresh: bool) -> Result<MetricsLog> {
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

    pub(crate) fn write(&mut self, value: &impl Serialize) -> Result<()> {
        writeln!(self.0, "{}", serde_json::to_string(value)?)
            .and_then(|_| self.0.flush())
            .with_context(|| format!("writing {}", self.1.display()))
    }
}
