//! `manifest.json`: what a weights folder holds, how it was made and how well it does.

use crate::config::ModelConfig;
use crate::stage::{Stage, StageKind};
use crate::tokenizer::Tokenizer;
use crate::weights::{ModelWeights, WeightDtype, WeightsError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const FORMAT_VERSION: u32 = 1;

/// The whole manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub model: ModelConfig,
    pub tokenizer: FileEntry,
    /// Operand digits the model was trained on (1..=max_digits).
    pub max_digits: usize,
    /// Continuous thoughts per replaced step (c).
    pub thoughts_per_step: usize,
    pub stages: Vec<StageEntry>,
}

/// A file of the folder with its size and checksum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

impl FileEntry {
    /// Describes `bytes` stored as `file`.
    pub fn describe(file: &str, bytes: &[u8]) -> FileEntry {
        FileEntry {
            file: file.to_string(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }
    }

    /// Checks that `bytes` are this entry's file: size first (a cheap, clear message for a
    /// truncated download), then sha256.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), WeightsError> {
        if bytes.len() as u64 != self.bytes {
            return Err(WeightsError::Size {
                file: self.file.clone(),
                bytes: bytes.len() as u64,
                expected: self.bytes,
            });
        }
        let actual = sha256_hex(bytes);
        if actual != self.sha256 {
            return Err(WeightsError::Checksum {
                file: self.file.clone(),
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// One stage's weight file and what is known about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageEntry {
    /// `stage0` … `stageK`, `nocot`, `pause`.
    pub id: String,
    pub kind: StageKind,
    /// Thought slots after `<bot>`.
    pub thoughts: usize,
    /// Whether thoughts are fed-back hidden states (false for `pause`).
    pub feeds_back: bool,
    pub dtype: WeightDtype,
    #[serde(flatten)]
    pub file: FileEntry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Accuracy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingFacts>,
}

/// Measured accuracy of a stage, one entry per evaluated set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub sets: Vec<SetAccuracy>,
}

/// Accuracy on one problem set (`test`, `ood`), overall and by digit count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetAccuracy {
    pub set: String,
    pub n: usize,
    /// Exact match of the greedily generated answer, in percent.
    pub greedy: f64,
    /// Every target token predicted right with the gold prefix, in percent.
    pub teacher_forced: f64,
    pub by_digits: Vec<DigitAccuracy>,
}

/// Accuracy on the problems whose longer operand has `digits` digits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigitAccuracy {
    pub digits: usize,
    pub n: usize,
    pub greedy: f64,
    pub teacher_forced: f64,
}

/// How a stage was trained.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingFacts {
    pub command: String,
    pub git_commit: String,
    pub seed: u64,
    pub hardware: String,
    pub steps: u64,
    pub seconds: f64,
}

/// Lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a manifest or a file it names could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: cannot read: {reason}")]
    Io { file: String, reason: String },
    #[error("{file}: not a valid manifest: {reason}")]
    Parse { file: String, reason: String },
    #[error("manifest has no stage '{0}' (it has: {1})")]
    NoStage(String, String),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
}

impl Manifest {
    pub fn from_json(json: &str) -> Result<Manifest, ManifestError> {
        let parse = |reason: String| ManifestError::Parse {
            file: MANIFEST_FILE.into(),
            reason,
        };
        let m: Manifest = serde_json::from_str(json).map_err(|e| parse(e.to_string()))?;
        if m.format_version != FORMAT_VERSION {
            return Err(parse(format!(
                "format_version {} is not supported (expected {FORMAT_VERSION})",
                m.format_version
            )));
        }
        m.model.validate().map_err(|e| parse(e.to_string()))?;
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serializes")
    }

    pub fn stage(&self, id: &str) -> Result<&StageEntry, ManifestError> {
        let wanted = id.parse::<StageKind>().map(|k| k.to_string());
        self.stages
            .iter()
            .find(|s| s.id == id || wanted.as_ref().is_ok_and(|w| *w == s.id))
            .ok_or_else(|| {
                let ids: Vec<&str> = self.stages.iter().map(|s| s.id.as_str()).collect();
                ManifestError::NoStage(id.to_string(), ids.join(", "))
            })
    }

    /// The curriculum stage an entry describes.
    pub fn stage_of(&self, entry: &StageEntry) -> Stage {
        Stage {
            kind: entry.kind,
            thoughts_per_step: self.thoughts_per_step,
            max_steps: crate::problem::max_steps(self.max_digits),
        }
    }

    /// Verifies a stage file's bytes against the manifest and parses them.
    pub fn stage_weights(
        &self,
        entry: &StageEntry,
        bytes: &[u8],
    ) -> Result<ModelWeights, ManifestError> {
        entry.file.verify(bytes)?;
        Ok(ModelWeights::from_safetensors(
            bytes,
            &entry.file.file,
            Some(&self.model),
        )?)
    }

    /// Verifies and parses the tokenizer file.
    pub fn tokenizer(&self, bytes: &[u8]) -> Result<Tokenizer, ManifestError> {
        self.tokenizer.verify(bytes)?;
        Ok(Tokenizer::from_json(bytes)?)
    }
}

/// A weights folder on disk: the manifest and the files it names.
#[derive(Clone, Debug)]
pub struct WeightsDir {
    pub dir: std::path::PathBuf,
    pub manifest: Manifest,
}

impl WeightsDir {
    pub fn open(dir: impl AsRef<Path>) -> Result<WeightsDir, ManifestError> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join(MANIFEST_FILE);
        let json = std::fs::read_to_string(&path).map_err(|e| ManifestError::Io {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(WeightsDir {
            manifest: Manifest::from_json(&json)?,
            dir,
        })
    }

    fn read(&self, file: &str) -> Result<Vec<u8>, ManifestError> {
        let path = self.dir.join(file);
        std::fs::read(&path).map_err(|e| ManifestError::Io {
            file: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    pub fn tokenizer(&self) -> Result<Tokenizer, ManifestError> {
        self.manifest
            .tokenizer(&self.read(&self.manifest.tokenizer.file)?)
    }

    /// Loads a stage by id (`stage3`, `3`, `pause`): its entry, its stage and verified weights.
    pub fn stage(&self, id: &str) -> Result<(StageEntry, Stage, ModelWeights), ManifestError> {
        let entry = self.manifest.stage(id)?.clone();
        let weights = self
            .manifest
            .stage_weights(&entry, &self.read(&entry.file.file)?)?;
        let stage = self.manifest.stage_of(&entry);
        Ok((entry, stage, weights))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::random_weights;

    fn tiny() -> ModelConfig {
        ModelConfig {
            vocab_size: 22,
            n_positions: 64,
            n_embd: 8,
            n_layer: 1,
            n_head: 2,
            layer_norm_epsilon: 1e-5,
        }
    }

    fn manifest_with(bytes: &[u8]) -> Manifest {
        let tok = Tokenizer::new().to_json();
        Manifest {
            format_version: FORMAT_VERSION,
            model: tiny(),
            tokenizer: FileEntry::describe("tokenizer.json", tok.as_bytes()),
            max_digits: 4,
            thoughts_per_step: 1,
            stages: vec![StageEntry {
                id: "stage2".into(),
                kind: StageKind::Latent { k: 2 },
                thoughts: 2,
                feeds_back: true,
                dtype: WeightDtype::Int8,
                file: FileEntry::describe("stage2.safetensors", bytes),
                accuracy: None,
                training: None,
            }],
        }
    }

    #[test]
    fn json_round_trip_and_stage_lookup() {
        let bytes = random_weights(&tiny(), 1)
            .convert(WeightDtype::Int8)
            .to_safetensors();
        let m = manifest_with(&bytes);
        let back = Manifest::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
        assert_eq!(m.stage("2").unwrap().id, "stage2");
        assert_eq!(m.stage("stage2").unwrap().id, "stage2");
        let e = m.stage("pause").unwrap_err().to_string();
        assert_eq!(e, "manifest has no stage 'pause' (it has: stage2)");
        assert_eq!(m.stage_of(&m.stages[0]).thoughts(), 2);
    }

    #[test]
    fn verifies_size_and_checksum() {
        let bytes = random_weights(&tiny(), 1)
            .convert(WeightDtype::Int8)
            .to_safetensors();
        let m = manifest_with(&bytes);
        let entry = &m.stages[0];
        m.stage_weights(entry, &bytes).unwrap();

        let e = m
            .stage_weights(entry, &bytes[..bytes.len() - 10])
            .unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");

        // A flipped bit in the int8 data still parses as safetensors: only the checksum sees it.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 100;
        flipped[last] ^= 0x01;
        let e = m.stage_weights(entry, &flipped).unwrap_err().to_string();
        assert!(e.starts_with("stage2.safetensors: sha256 is"), "{e}");

        let tok = Tokenizer::new().to_json();
        m.tokenizer(tok.as_bytes()).unwrap();
        assert!(m.tokenizer(b"{}").is_err());
    }

    #[test]
    fn refuses_a_broken_manifest() {
        let bytes = random_weights(&tiny(), 1).to_safetensors();
        let mut m = manifest_with(&bytes);
        assert!(Manifest::from_json("{").is_err());
        m.format_version = 99;
        let e = Manifest::from_json(&m.to_json()).unwrap_err().to_string();
        assert!(e.contains("format_version 99"), "{e}");
        m.format_version = FORMAT_VERSION;
        m.model.n_head = 3;
        assert!(Manifest::from_json(&m.to_json()).is_err());
    }

    #[test]
    fn opens_a_folder_on_disk() {
        let dir = std::env::temp_dir().join(format!("coconut-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = random_weights(&tiny(), 7)
            .convert(WeightDtype::Int8)
            .to_safetensors();
        let m = manifest_with(&bytes);
        std::fs::write(dir.join("stage2.safetensors"), &bytes).unwrap();
        std::fs::write(dir.join("tokenizer.json"), Tokenizer::new().to_json()).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), m.to_json()).unwrap();
        let w = WeightsDir::open(&dir).unwrap();
        w.tokenizer().unwrap();
        let (entry, stage, weights) = w.stage("stage2").unwrap();
        assert_eq!((entry.thoughts, stage.thoughts()), (2, 2));
        assert_eq!(weights.dtype(), WeightDtype::Int8);
        std::fs::remove_file(dir.join("stage2.safetensors")).unwrap();
        let e = w.stage("stage2").unwrap_err().to_string();
        assert!(e.contains("stage2.safetensors: cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
