//! Where a run came from: the command, the build's git commit and the hardware, recorded in the
//! run directory as `run.json` once training has started (after the settings are checked, so a
//! refused attempt leaves nothing) and copied into the manifest on export. A fresh start
//! rewrites it; each resume adds itself to it.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

pub use crate::run_dir::RUN_INFO_FILE;

/// The commit this binary was built from, found by `build.rs` (`-dirty` when the work tree had
/// changes; `unknown` when built outside git). The build, not the directory `coconut` runs in,
/// is what produced the weights.
pub const GIT_COMMIT: &str = env!("COCONUT_GIT_COMMIT");

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The command line that started the run.
    pub command: String,
    /// The commit `coconut` was built from ([`GIT_COMMIT`]).
    pub git_commit: String,
    pub hardware: String,
    /// Every later `--resume` of the run, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumes: Vec<Invocation>,
    /// For a branch (`--branch-from`): the stages it took from another run, and that run's
    /// provenance, which is theirs.
    pub branched_from: Option<Branched>,
}

/// The stages a branch inherited and where they were trained.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Branched {
    /// The run directory they came from.
    pub run_dir: String,
    pub stages: Vec<String>,
    pub parent: Box<RunInfo>,
}

/// One process that trained part of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    pub command: String,
    pub git_commit: String,
    pub hardware: String,
}

impl RunInfo {
    /// Describes this process on this machine; `device` is `cpu` or `cuda[:N]`.
    pub fn current(device: &str) -> RunInfo {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        RunInfo {
            command,
            git_commit: GIT_COMMIT.to_string(),
            hardware: hardware(device),
            resumes: Vec::new(),
            branched_from: None,
        }
    }

    /// Writes `run.json` for a run that has just started (replacing whatever an earlier attempt
    /// left), or adds this process to it for a run that has just resumed.
    pub fn record(&self, run_dir: &Path, resumed: bool) -> Result<()> {
        let path = run_dir.join(RUN_INFO_FILE);
        let info = match RunInfo::load(run_dir)? {
            Some(mut first) if resumed => {
                first.resumes.push(Invocation {
                    command: self.command.clone(),
                    git_commit: self.git_commit.clone(),
                    hardware: self.hardware.clone(),
                });
                first
            }
            _ => self.clone(),
        };
        crate::checkpoint::write_atomic(&path, serde_json::to_string_pretty(&info)?.as_bytes())
    }

    pub fn load(run_dir: &Path) -> Result<Option<RunInfo>> {
        let path = run_dir.join(RUN_INFO_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        ))
    }

    /// The provenance of the processes that trained `stage`: the parent run's for a stage a
    /// branch inherited, this run's otherwise.
    pub fn for_stage(&self, stage: &str) -> &RunInfo {
        match &self.branched_from {
            Some(b) if b.stages.iter().any(|s| s == stage) => b.parent.for_stage(stage),
            _ => self,
        }
    }

    /// The commits that trained the run, the first one first, each once.
    pub fn git_commits(&self) -> String {
        self.distinct(&self.git_commit, |r| &r.git_commit)
            .join(", resumed with ")
    }

    /// The hardware that trained the run, the first first, each once.
    pub fn hardwares(&self) -> String {
        self.distinct(&self.hardware, |r| &r.hardware)
            .join("; resumed on ")
    }

    /// `first`, then that field of each resume, in order, each value once.
    fn distinct<'a>(&'a self, first: &'a str, field: fn(&Invocation) -> &String) -> Vec<&'a str> {
        let mut all = vec![first];
        for value in self.resumes.iter().map(|r| field(r).as_str()) {
            if !all.contains(&value) {
                all.push(value);
            }
        }
        all
    }
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
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
    fn a_start_replaces_and_a_resume_adds() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunInfo::load(dir.path()).unwrap(), None);
        let info = RunInfo::current("cpu");
        assert!(info.hardware.starts_with("CPU: "));
        assert_eq!(info.git_commit, GIT_COMMIT);
        let stale = RunInfo {
            command: "coconut train --batch-size 8".into(),
            ..info.clone()
        };
        stale.record(dir.path(), false).unwrap();
        info.record(dir.path(), false).unwrap();
        assert_eq!(RunInfo::load(dir.path()).unwrap().as_ref(), Some(&info));
        let later = RunInfo {
            command: "coconut train --resume".into(),
            git_commit: "abc".into(),
            ..info.clone()
        };
        later.record(dir.path(), true).unwrap();
        let back = RunInfo::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.command, info.command);
        assert_eq!(back.resumes.len(), 1);
        assert_eq!(back.resumes[0].command, "coconut train --resume");
        assert_eq!(
            back.git_commits(),
            format!("{GIT_COMMIT}, resumed with abc")
        );
        assert_eq!(back.hardwares(), info.hardware);
    }

    #[test]
    fn the_commit_is_the_builds() {
        // build.rs asks git for HEAD (and whether the tree is dirty), or says `unknown`.
        let hex = GIT_COMMIT.trim_end_matches("-dirty");
        assert!(
            GIT_COMMIT == "unknown"
                || (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit())),
            "{GIT_COMMIT}"
        );
    }
}
