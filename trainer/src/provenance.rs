//! Where a run came from: the command, the git commit and the hardware, recorded in the run
//! directory as `run.json` when training starts and copied into the manifest on export.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

pub const RUN_INFO_FILE: &str = "run.json";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The command line that trained (the first invocation of the run).
    pub command: String,
    /// `git rev-parse HEAD`, with `-dirty` when the work tree had changes; `unknown` outside git.
    pub git_commit: String,
    pub hardware: String,
}

impl RunInfo {
    /// Describes this process on this machine; `device` is `cpu` or `cuda[:N]`.
    pub fn current(device: &str) -> RunInfo {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        RunInfo {
            command,
            git_commit: git_commit(),
            hardware: hardware(device),
        }
    }

    /// Writes `run.json` unless the run already has one (a resumed run keeps its origin).
    pub fn record(&self, run_dir: &Path) -> Result<()> {
        let path = run_dir.join(RUN_INFO_FILE);
        if path.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(run_dir)?;
        crate::checkpoint::write_atomic(&path, serde_json::to_string_pretty(self)?.as_bytes())
    }

    pub fn load(run_dir: &Path) -> Result<Option<RunInfo>> {
        let path = run_dir.join(RUN_INFO_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)?;
        Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        ))
    }
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn git_commit() -> String {
    match run("git", &["rev-parse", "HEAD"]) {
        Some(commit) => {
            let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"]).is_some();
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        None => "unknown".into(),
    }
}

fn hardware(device: &str) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    if device.starts_with("cuda") {
        let gpu = run("nvidia-smi", &["--query-gpu=name", "--format=csv,noheader"])
            .map(|s| s.lines().next().unwrap_or_default().to_string())
            .unwrap_or_else(|| "unknown NVIDIA GPU".into());
        format!("{gpu} (CUDA), host {cpu}, {cores} cores")
    } else {
        format!("CPU: {cpu}, {cores} cores")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunInfo::load(dir.path()).unwrap(), None);
        let info = RunInfo::current("cpu");
        assert!(info.hardware.starts_with("CPU: "));
        info.record(dir.path()).unwrap();
        let later = RunInfo {
            command: "coconut train --resume".into(),
            ..info.clone()
        };
        later.record(dir.path()).unwrap();
        assert_eq!(RunInfo::load(dir.path()).unwrap(), Some(info));
    }
}
