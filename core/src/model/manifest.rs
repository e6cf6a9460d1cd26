//! `manifest.json`: what a weights folder holds, how it was made and how well it does.

use crate::config::ModelConfig;
use crate::data::{DataConfig, SplitScheme};
use crate::family::{Family, LayoutFamily};
use crate::layout::Layout;
use crate::positions::{PositionIds, PositionScheme};
use crate::probes::{ProbesError, ThoughtProbes};
use crate::problem::{max_steps, Problem, MAX_DIGITS};
use crate::stage::{AnswerOrder, LatentOrder, Positions, Stage, StageKind};
use crate::tokenizer::Tokenizer;
use crate::weights::{ModelWeights, WeightDtype, WeightsError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const FORMAT_VERSION: u32 = 1;
/// The largest `manifest.json` read (the shipped one is under 20 KB).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// The longest file name a manifest may give.
pub const MAX_FILE_NAME: usize = 128;

/// Checks a file name taken from a manifest. It is joined to a folder on disk and to a folder URL
/// in the browser, so it must be a plain name inside that folder: ASCII letters, digits, `.`, `_`
/// and `-`, not starting with `.`, at most [`MAX_FILE_NAME`] bytes. Nothing in it may climb out
/// (`..`, `/`, `\`, `C:`) or change a URL's meaning (`?`, `#`, `%`).
pub fn check_file_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.starts_with(['/', '\\']) || name.get(1..2) == Some(":") {
        "is an absolute path"
    } else if name.split(['/', '\\']).any(|part| part == "..") {
        "climbs out of the weights folder ('..')"
    } else if name.contains(['/', '\\']) {
        "names a file in another folder"
    } else if name.len() > MAX_FILE_NAME {
        "is too long"
    } else if name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "holds characters other than letters, digits, '.', '_' and '-' (or starts with '.')"
    } else {
        return Ok(());
    };
    Err(format!(
        "{why}: it must be a plain file name inside the weights folder"
    ))
}

/// The whole manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub model: ModelConfig,
    pub tokenizer: FileEntry,
    /// Operand digits the model was trained on (1..=max_digits).
    pub max_digits: usize,
    /// How the data was split, so the figures' test set can be drawn again (manifests from
    /// before this field used the legacy scheme).
    #[serde(default = "SplitScheme::legacy")]
    pub data_splits: SplitScheme,
    /// Continuous thoughts per replaced step (c).
    pub thoughts_per_step: usize,
    /// The tokenizer and layouts the stages follow (absent: this project's own).
    #[serde(default, skip_serializing_if = "Family::is_coconut")]
    pub family: Family,
    pub stages: Vec<StageEntry>,
}

/// The largest piece a file of a weights folder is stored in: a browser fetches, checks and
/// caches pieces of at most this size (a GPT-2 stage of hundreds of MB is stored in several).
pub const MAX_SHARD_BYTES: u64 = 64 << 20;

/// A file of the folder with its size and checksum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    /// Where the file is stored in pieces: the pieces in order, each a file of the folder with
    /// its own size and sha256 (and no pieces of its own); the file is their concatenation, and
    /// `file` names it without being in the folder. Empty: `file` is in the folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<FileEntry>,
}

impl FileEntry {
    /// Describes `bytes` stored as `file`.
    pub fn describe(file: &str, bytes: &[u8]) -> FileEntry {
        FileEntry {
            file: file.to_string(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            shards: Vec::new(),
        }
    }

    /// Describes `bytes` as `file` stored in pieces of at most `shard_bytes` when it is larger
    /// (`stage3.safetensors` as `stage3-00001-of-00013.safetensors` ...), with the pieces to
    /// write, by name; one piece, `file` itself, when it is not.
    pub fn sharded<'a>(
        file: &str,
        bytes: &'a [u8],
        shard_bytes: u64,
    ) -> (FileEntry, Vec<(String, &'a [u8])>) {
        let mut entry = FileEntry::describe(file, bytes);
        if bytes.len() as u64 <= shard_bytes || shard_bytes == 0 {
            return (entry, vec![(file.to_string(), bytes)]);
        }
        let (stem, ext) = file.rsplit_once('.').unwrap_or((file, "bin"));
        let pieces: Vec<&[u8]> = bytes.chunks(shard_bytes as usize).collect();
        let n = pieces.len();
        let named: Vec<(String, &[u8])> = pieces
            .into_iter()
            .enumerate()
            .map(|(i, piece)| (format!("{stem}-{:05}-of-{n:05}.{ext}", i + 1), piece))
            .collect();
        entry.shards = named
            .iter()
            .map(|(name, piece)| FileEntry::describe(name, piece))
            .collect();
        (entry, named)
    }

    /// The names of the folder's files this entry stands for: its pieces, or the file itself.
    pub fn stored_files(&self) -> Vec<&str> {
        if self.shards.is_empty() {
            vec![self.file.as_str()]
        } else {
            self.shards.iter().map(|s| s.file.as_str()).collect()
        }
    }

    /// Checks the names and sizes of the pieces: plain names, none of them pieces of pieces,
    /// each of 1 to [`MAX_SHARD_BYTES`] bytes, together the file's size.
    fn check_shards(&self, field: &str) -> Result<(), String> {
        let mut total = 0u64;
        for (i, shard) in self.shards.iter().enumerate() {
            let field = format!("{field}.shards[{i}]");
            check_file_name(&shard.file).map_err(|e| format!("{field} {:?} {e}", shard.file))?;
            if !shard.shards.is_empty() {
                return Err(format!("{field}: a piece is not stored in pieces"));
            }
            if !(1..=MAX_SHARD_BYTES).contains(&shard.bytes) {
                return Err(format!(
                    "{field}: {} bytes; a piece holds 1 to {MAX_SHARD_BYTES}",
                    shard.bytes
                ));
            }
            total = total.saturating_add(shard.bytes);
        }
        if !self.shards.is_empty() && total != self.bytes {
            return Err(format!(
                "{field}: its pieces hold {total} bytes, the file {}",
                self.bytes
            ));
        }
        Ok(())
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
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageEntry {
    /// `stage0` … `stageK`, `nocot`, `pause`.
    pub id: String,
    pub kind: StageKind,
    /// Thought slots after `<bot>`.
    pub thoughts: usize,
    /// Whether thoughts are fed-back hidden states (false for `pause`).
    pub feeds_back: bool,
    /// Position ids ([`crate::positions`]) with their options, the flat fields `positions`
    /// (absolute when absent), `ids_ahead` (coupled ids whose positions take the column of what
    /// follows them; false when absent) and `operand_pad` (both operands written with the longer
    /// one's digits and this many more, leading zeros filling them; as typed when absent). An
    /// option of coupled ids with absolute ones is refused as the file is read.
    #[serde(flatten)]
    pub positions: PositionIds,
    /// The order of the answer's digits; most significant first when absent.
    #[serde(
        default,
        skip_serializing_if = "AnswerOrder::is_most_significant_first"
    )]
    pub answer_order: AnswerOrder,
    /// Which steps the thoughts replace; the family's own order when absent (the first steps
    /// for this project's models, the last for the seed's). Only the seed family's stages may
    /// say `first` (a model fine-tuned with `train --recipe coconut-lab`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_order: Option<LatentOrder>,
    pub dtype: WeightDtype,
    #[serde(flatten)]
    pub file: FileEntry,
    pub accuracy: Option<Accuracy>,
    pub training: Option<TrainingFacts>,
    /// Linear probes of this stage's thoughts with their held-out scores (`coconut probe
    /// --ship`), for stages with fed-back thoughts; see [`crate::probes`].
    pub probes: Option<FileEntry>,
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
    /// For each significance j of the answer (units = 0, through the carry column), how many
    /// greedy answers got that digit wrong: where a longer problem breaks (a wrong carry shows
    /// as a run of wrong digits above it). Empty in files written before it was counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wrong_by_significance: Vec<usize>,
    /// Greedy answers with no digit to compare: nothing readable written, or more digits than
    /// the problem's columns + 1.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unreadable: usize,
    /// By operand-length pair (first operand's digits, second's): the class a figure shown
    /// beside one problem must come from. Empty in files written before it was counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_pair: Vec<PairAccuracy>,
    /// By the problem's longest carry chain ([`Problem::carry_chain`]). Empty in files written
    /// before it was counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_carry_chain: Vec<ChainAccuracy>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Accuracy on the problems whose longer operand has `digits` digits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigitAccuracy {
    pub digits: usize,
    pub n: usize,
    pub greedy: f64,
    pub teacher_forced: f64,
}

/// Accuracy on the problems whose operands have `a_digits` and `b_digits` digits, in that order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairAccuracy {
    pub a_digits: usize,
    pub b_digits: usize,
    pub n: usize,
    pub greedy: f64,
    pub teacher_forced: f64,
}

/// Greedy accuracy on the problems whose longest run of carrying columns is `chain` long.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainAccuracy {
    pub chain: usize,
    pub n: usize,
    pub greedy: f64,
}

/// The measured figure for one kind of problem: its operand-length pair in one set, and, where
/// that set counted it, its carry-chain length.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassFigure {
    /// The set that measured the pair (the largest n where several did).
    pub set: String,
    pub a_digits: usize,
    pub b_digits: usize,
    pub n: usize,
    pub greedy: f64,
    /// The same set's figure for the problem's carry-chain length, when that set counted it.
    pub carry_chain: Option<ChainAccuracy>,
}

impl StageEntry {
    /// What the manifest measured for `problem`'s own class: its operand-length pair (never
    /// another pair's or a digit count's figure), or `None` when no set measured that pair.
    pub fn measured_for(&self, problem: &Problem) -> Option<ClassFigure> {
        let (da, db) = problem.digit_counts();
        let sets = self.accuracy.iter().flat_map(|a| &a.sets);
        let (set, pair) = sets
            .filter_map(|s| {
                let pair = s
                    .by_pair
                    .iter()
                    .find(|p| (p.a_digits, p.b_digits) == (da, db) && p.n > 0)?;
                Some((s, pair))
            })
            .max_by_key(|(_, pair)| pair.n)?;
        let chain = problem.carry_chain();
        Some(ClassFigure {
            set: set.set.clone(),
            a_digits: da,
            b_digits: db,
            n: pair.n,
            greedy: pair.greedy,
            carry_chain: set
                .by_carry_chain
                .iter()
                .find(|c| c.chain == chain && c.n > 0)
                .cloned(),
        })
    }

    /// Whether some set measured every operand-length pair up to `digits` digits each.
    fn measured_every_pair_up_to(&self, digits: usize) -> bool {
        let measured: std::collections::HashSet<(usize, usize)> = self
            .accuracy
            .iter()
            .flat_map(|a| &a.sets)
            .flat_map(|s| &s.by_pair)
            .filter(|p| p.n > 0)
            .map(|p| (p.a_digits, p.b_digits))
            .collect();
        (1..=digits).all(|a| (1..=digits).all(|b| measured.contains(&(a, b))))
    }

    fn counts_pairs(&self) -> bool {
        self.accuracy
            .iter()
            .flat_map(|a| &a.sets)
            .any(|s| !s.by_pair.is_empty())
    }
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
    #[error("{0}")]
    Family(String),
    #[error(transparent)]
    Probes(#[from] ProbesError),
}

impl Manifest {
    /// The data settings the accuracy figures' test set is drawn with: the default seed and set
    /// sizes (`scripts/cpu-train.sh` trains with them), this folder's digit range and split scheme.
    pub fn test_data(&self) -> DataConfig {
        DataConfig {
            max_digits: self.max_digits,
            splits: self.data_splits,
            ..DataConfig::default()
        }
    }

    pub fn from_json(json: &str) -> Result<Manifest, ManifestError> {
        Manifest::from_json_named(json, MANIFEST_FILE)
    }

    /// [`Manifest::from_json`], naming the manifest `file` in errors.
    pub fn from_json_named(json: &str, file: &str) -> Result<Manifest, ManifestError> {
        let parse = |reason: String| ManifestError::Parse {
            file: file.into(),
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
        m.check().map_err(parse)?;
        Ok(m)
    }

    /// Refuses names and numbers that the loaders cannot trust: every file name must be plain
    /// ([`check_file_name`]), and every number must agree with the model and the stages, so that
    /// no stage thinks more than its kind says or needs more positions than the model has.
    fn check(&self) -> Result<(), String> {
        let name = |field: String, file: &str| {
            check_file_name(file).map_err(|e| format!("{field} {file:?} {e}"))
        };
        name("tokenizer.file".into(), &self.tokenizer.file)?;
        self.tokenizer.check_shards("tokenizer")?;
        for (i, entry) in self.stages.iter().enumerate() {
            entry.file.check_shards(&format!("stages[{i}]"))?;
            if let Some(probes) = &entry.probes {
                probes.check_shards(&format!("stages[{i}].probes"))?;
            }
        }
        self.family
            .check(self.model.vocab_size)
            .map_err(|e| format!("family: {e}"))?;
        if !(1..=MAX_DIGITS).contains(&self.max_digits) {
            return Err(format!(
                "max_digits is {}: it must be 1 to {MAX_DIGITS}",
                self.max_digits
            ));
        }
        let n_positions = self.model.n_positions;
        if !(1..=n_positions).contains(&self.thoughts_per_step) {
            return Err(format!(
                "thoughts_per_step is {}: it must be 1 to the model's n_positions ({n_positions})",
                self.thoughts_per_step
            ));
        }
        if self.family.layout == LayoutFamily::Seed {
            return self.check_seed_stages();
        }
        // The longest sequence of any stage is that of the largest problem in range: every
        // column carries and the carry out of the last one adds a step.
        let nines = 10u64.pow(self.max_digits as u32) - 1;
        let longest = Problem::new(nines, nines);
        let tokenizer = Tokenizer::new();
        for (i, entry) in self.stages.iter().enumerate() {
            let field = |f: &str| format!("stages[{i}] ({}).{f}", entry.id);
            name(field("file"), &entry.file.file)?;
            if let Some(probes) = &entry.probes {
                name(field("probes.file"), &probes.file)?;
            }
            self.check_settings(entry, &field)?;
            self.check_length(entry, &tokenizer, &longest, &field)?;
        }
        Ok(())
    }

    /// One stage entry's settings: its id is its kind, the position settings go together
    /// (ahead ids and padded operands are coupled ids' variants), the order is this project's,
    /// the latent steps fit the problems in range, and the thought count and feedback are
    /// what its kind says.
    fn check_settings(
        &self,
        entry: &StageEntry,
        field: &dyn Fn(&str) -> String,
    ) -> Result<(), String> {
        let n_positions = self.model.n_positions;
        if entry.id != entry.kind.to_string() {
            return Err(format!(
                "{} does not match its kind {}",
                field("id"),
                entry.kind
            ));
        }
        if entry.latent_order.is_some_and(|o| o != LatentOrder::First) {
            return Err(format!(
                "{}: this project's stages think the first steps (the last-steps order is \
                 a research setting, never shipped)",
                field("latent_order")
            ));
        }
        if let Some(pad) = entry.positions.operand_pad() {
            if pad > n_positions {
                return Err(format!(
                    "{} is {pad}: more columns than the model's n_positions ({n_positions})",
                    field("operand_pad")
                ));
            }
        }
        let max_steps = max_steps(self.max_digits);
        if let StageKind::Latent { k } = entry.kind {
            if k > max_steps {
                return Err(format!(
                    "{}: {k} latent steps, but problems of at most {} digits have at most \
                     {max_steps} steps",
                    field("kind"),
                    self.max_digits
                ));
            }
        }
        // k <= max_steps <= 19 and thoughts_per_step <= n_positions (bounded by the model
        // config's validation): the thought count cannot overflow.
        let stage = self.stage_of(entry);
        if entry.thoughts != stage.thoughts() || entry.feeds_back != stage.feeds_back() {
            return Err(format!(
                "{} is {} and {} is {}, but {} with thoughts_per_step {} has {} thoughts \
                 and feeds_back {}",
                field("thoughts"),
                entry.thoughts,
                field("feeds_back"),
                entry.feeds_back,
                entry.id,
                self.thoughts_per_step,
                stage.thoughts(),
                stage.feeds_back()
            ));
        }
        Ok(())
    }

    /// The longest problem in range (`longest`) fits the model's positions at this stage.
    fn check_length(
        &self,
        entry: &StageEntry,
        tokenizer: &Tokenizer,
        longest: &Problem,
        field: &dyn Fn(&str) -> String,
    ) -> Result<(), String> {
        let n_positions = self.model.n_positions;
        let stage = self.stage_of(entry);
        let len = Layout::new(tokenizer, longest, &stage)
            .map_err(|e| format!("{}: {e}", field("kind")))?
            .ids
            .len();
        if len > n_positions {
            return Err(format!(
                "{}: the longest problem ({longest}) takes {len} positions with {} thoughts, \
                 more than the model's n_positions ({n_positions}): max_digits or \
                 thoughts_per_step is wrong",
                field("").trim_end_matches('.'),
                stage.thoughts()
            ));
        }
        Ok(())
    }

    /// The seed family's stages (docs/seed-format.md): `stage0` writes every step, `stageK`
    /// (K = 1, 2) thinks the last K steps, `stage3` every step, so its `thoughts` is the most a
    /// problem of `max_digits` digits takes; every thought is fed back at absolute positions.
    fn check_seed_stages(&self) -> Result<(), String> {
        for (i, entry) in self.stages.iter().enumerate() {
            let field = |f: &str| format!("stages[{i}] ({}).{f}", entry.id);
            check_file_name(&entry.file.file).map_err(|e| format!("{}: {e}", field("file")))?;
            if let Some(probes) = &entry.probes {
                check_file_name(&probes.file)
                    .map_err(|e| format!("{}: {e}", field("probes.file")))?;
            }
            let StageKind::Latent { k } = entry.kind else {
                return Err(format!(
                    "{}: the seed's stages are stage0 to stage3",
                    field("kind")
                ));
            };
            let thoughts = match k {
                0..=2 => k,
                3 => max_steps(self.max_digits),
                _ => {
                    return Err(format!(
                        "{}: the seed's stages are stage0 to stage3",
                        field("kind")
                    ))
                }
            };
            let expected = (
                entry.kind.to_string(),
                thoughts,
                true,
                PositionIds::Absolute,
            );
            let actual = (
                entry.id.clone(),
                entry.thoughts,
                entry.feeds_back,
                entry.positions,
            );
            if actual != expected || entry.answer_order != AnswerOrder::default() {
                return Err(format!(
                    "stages[{i}]: a seed stage {} has id {}, {thoughts} thoughts at most, fed \
                     back at absolute positions, answers most significant digit first",
                    entry.kind, expected.0
                ));
            }
        }
        Ok(())
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

    /// The most operand digits a stage answers: the trained `max_digits`, or for a stage with
    /// coupled position ids the longest length whose every operand-length pair its manifest
    /// figures measured (problems longer than that were never checked, so they are refused as
    /// before). A manifest written before pairs were counted: the longest digit count measured.
    pub fn accepted_digits(&self, entry: &StageEntry) -> usize {
        if !entry.positions.is_absolute() && entry.counts_pairs() {
            return (self.max_digits..=MAX_DIGITS)
                .take_while(|&d| d == self.max_digits || entry.measured_every_pair_up_to(d))
                .last()
                .unwrap_or(self.max_digits);
        }
        let measured = entry
            .accuracy
            .iter()
            .flat_map(|a| &a.sets)
            .flat_map(|s| &s.by_digits)
            .map(|d| d.digits);
        match entry.positions.scheme() {
            PositionScheme::Absolute => self.max_digits,
            PositionScheme::Coupled => measured.fold(self.max_digits, usize::max),
        }
    }

    /// The curriculum stage an entry describes.
    pub fn stage_of(&self, entry: &StageEntry) -> Stage {
        Stage {
            kind: entry.kind,
            thoughts_per_step: self.thoughts_per_step,
            max_steps: crate::problem::max_steps(self.max_digits),
            // This project's stages think the first steps (checked when the manifest is read).
            positions: Positions::first_steps(entry.positions),
            answer_order: entry.answer_order,
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

    /// Verifies a stage's probes file against the manifest, parses it and checks that it reads
    /// thoughts of this model's width at slots the stage has, for columns a sum can have.
    pub fn stage_probes(
        &self,
        entry: &StageEntry,
        bytes: &[u8],
    ) -> Result<Option<ThoughtProbes>, ManifestError> {
        let Some(file) = &entry.probes else {
            return Ok(None);
        };
        file.verify(bytes)?;
        let probes = ThoughtProbes::from_safetensors(&file.file, bytes)?;
        let refuse = |reason: String| ProbesError {
            file: file.file.clone(),
            reason,
        };
        probes.check_stage(&entry.id).map_err(refuse)?;
        if probes.width() != Some(self.model.n_embd) {
            return Err(refuse(format!(
                "its probes read thoughts of width {:?}, the model's is {}",
                probes.width(),
                self.model.n_embd
            ))
            .into());
        }
        // The most a trained problem has: with coupled ids its padded columns count too (a
        // padded all-latent stage thinks more than its `thoughts`, an unpadded one's steps).
        let slots = entry
            .thoughts
            .max(self.stage_of(entry).most_thoughts(self.max_digits));
        if probes.slots() > slots {
            return Err(refuse(format!(
                "probes for {} thought slots, stage {} has at most {slots}",
                probes.slots(),
                entry.id,
            ))
            .into());
        }
        if let Some(s) = probes.scores.iter().find(|s| s.column > self.max_digits) {
            return Err(refuse(format!(
                "a probe of column {}: sums of {}-digit numbers have {} columns",
                s.column,
                self.max_digits,
                self.max_digits + 1
            ))
            .into());
        }
        Ok(Some(probes))
    }

    /// Verifies and parses the tokenizer file.
    pub fn tokenizer(&self, bytes: &[u8]) -> Result<Tokenizer, ManifestError> {
        self.tokenizer.verify(bytes)?;
        Ok(Tokenizer::from_json(bytes)?)
    }

    /// Verifies and parses the tokenizer file of a seed-family folder: GPT-2's vocabulary with
    /// its four added tokens, checked against transformers' ids for a probe text.
    pub fn seed_vocab(&self, bytes: &[u8]) -> Result<crate::seed::vocab::Gpt2Vocab, ManifestError> {
        self.tokenizer.verify(bytes)?;
        crate::seed::vocab::Gpt2Vocab::from_json(bytes)
            .map_err(|e| ManifestError::Family(e.to_string()))
    }
}

/// A weights folder on disk: the manifest and the files it names.
#[derive(Clone, Debug)]
pub struct WeightsDir {
    pub dir: std::path::PathBuf,
    pub manifest: Manifest,
}

impl WeightsDir {
    /// Reads and checks `dir/manifest.json` (a regular file of at most [`MAX_MANIFEST_BYTES`]).
    pub fn open(dir: impl AsRef<Path>) -> Result<WeightsDir, ManifestError> {
        let dir = dir.as_ref().to_path_buf();
        // A stage file alone does not say how its stage runs: only its folder's manifest does.
        if std::fs::metadata(&dir).is_ok_and(|m| m.is_file()) {
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            return Err(ManifestError::Io {
                file: dir.display().to_string(),
                reason: format!(
                    "a file, not a weights folder: give the folder that holds it ({}), whose \
                     manifest says how its stages run",
                    parent.unwrap_or(std::path::Path::new(".")).display()
                ),
            });
        }
        let path = dir.join(MANIFEST_FILE);
        let io = |e: std::io::Error| ManifestError::Io {
            file: path.display().to_string(),
            reason: e.to_string(),
        };
        let (file, _) = crate::files::open_regular(&path, false).map_err(io)?;
        let bytes = crate::files::read_at_most(file, MAX_MANIFEST_BYTES).map_err(io)?;
        let json = String::from_utf8(bytes).map_err(|e| ManifestError::Parse {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(WeightsDir {
            manifest: Manifest::from_json_named(&json, &path.display().to_string())?,
            dir,
        })
    }

    /// Reads the file an entry names (`what` says whose it is, for errors): a plain name inside
    /// the folder, a regular file (no link, device, FIFO or folder), its size compared with the
    /// manifest's from the metadata before a byte is read, and no more than that read.
    fn read(&self, entry: &FileEntry, what: &str) -> Result<Vec<u8>, ManifestError> {
        if !entry.shards.is_empty() {
            // Each piece checked as a file of its own; the caller checks the whole.
            let mut bytes = Vec::with_capacity(entry.bytes as usize);
            for shard in &entry.shards {
                let piece = self.read(shard, what)?;
                shard.verify(&piece)?;
                bytes.extend_from_slice(&piece);
            }
            return Ok(bytes);
        }
        let path = self.dir.join(&entry.file);
        let io = |reason: String| ManifestError::Io {
            file: format!("{} ({what})", path.display()),
            reason,
        };
        // The manifest was checked when parsed, but its fields are public: check again here,
        // right where the name becomes a path.
        check_file_name(&entry.file).map_err(|e| io(format!("{:?} {e}", entry.file)))?;
        let (file, size) =
            crate::files::open_regular(&path, false).map_err(|e| io(e.to_string()))?;
        if size != entry.bytes {
            return Err(WeightsError::Size {
                file: entry.file.clone(),
                bytes: size,
                expected: entry.bytes,
            }
            .into());
        }
        crate::files::read_at_most(file, entry.bytes).map_err(|e| io(e.to_string()))
    }

    pub fn tokenizer(&self) -> Result<Tokenizer, ManifestError> {
        if self.manifest.family.layout == LayoutFamily::Seed {
            return Err(ManifestError::Family(format!(
                "{} holds the seed's GPT-2 (its BPE tokenizer and layouts): this command reads \
                 this project's own models only",
                self.dir.display()
            )));
        }
        self.manifest
            .tokenizer(&self.read(&self.manifest.tokenizer, "tokenizer.file")?)
    }

    /// The seed family's vocabulary (GPT-2's BPE and its four added tokens), verified
    /// ([`Manifest::seed_vocab`]).
    pub fn seed_vocab(&self) -> Result<crate::seed::vocab::Gpt2Vocab, ManifestError> {
        let bytes = self.read(&self.manifest.tokenizer, "tokenizer.file")?;
        self.manifest.seed_vocab(&bytes)
    }

    /// A stage's probes, verified and checked ([`Manifest::stage_probes`]); None when the
    /// manifest lists none for it.
    pub fn probes(&self, entry: &StageEntry) -> Result<Option<ThoughtProbes>, ManifestError> {
        match &entry.probes {
            Some(file) => {
                let bytes = self.read(file, &format!("probes of stage {}", entry.id))?;
                self.manifest.stage_probes(entry, &bytes)
            }
            None => Ok(None),
        }
    }

    /// Loads a stage by id (`stage3`, `3`, `pause`): its entry, its stage and verified weights.
    pub fn stage(&self, id: &str) -> Result<(StageEntry, Stage, ModelWeights), ManifestError> {
        let entry = self.manifest.stage(id)?.clone();
        let bytes = self.read(&entry.file, &format!("file of stage {}", entry.id))?;
        let weights = self.manifest.stage_weights(&entry, &bytes)?;
        let stage = self.manifest.stage_of(&entry);
        Ok((entry, stage, weights))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::ColumnIds;
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
            data_splits: SplitScheme::Stratified,
            thoughts_per_step: 1,
            family: Family::default(),
            stages: vec![StageEntry {
                id: "stage2".into(),
                kind: StageKind::Latent { k: 2 },
                thoughts: 2,
                feeds_back: true,
                positions: PositionIds::Absolute,
                answer_order: AnswerOrder::MostSignificantFirst,
                latent_order: None,
                dtype: WeightDtype::Int8,
                file: FileEntry::describe("stage2.safetensors", bytes),
                accuracy: None,
                training: None,
                probes: None,
            }],
        }
    }

    /// An int8 stage file and the manifest that lists it.
    fn int8_stage() -> (Vec<u8>, Manifest) {
        let bytes = random_weights(&tiny(), 1)
            .convert(WeightDtype::Int8)
            .to_safetensors();
        let manifest = manifest_with(&bytes);
        (bytes, manifest)
    }

    #[test]
    fn json_round_trip_and_stage_lookup() {
        let (_, m) = int8_stage();
        let back = Manifest::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
        assert_eq!(m.stage("2").unwrap().id, "stage2");
        assert_eq!(m.stage("stage2").unwrap().id, "stage2");
        let e = m.stage("pause").unwrap_err().to_string();
        assert_eq!(e, "manifest has no stage 'pause' (it has: stage2)");
        assert_eq!(m.stage_of(&m.stages[0]).thoughts(), 2);
    }

    #[test]
    fn a_coupled_stage_accepts_the_lengths_its_figures_measured() {
        let (_, mut m) = int8_stage();
        let digits = |d: usize, n: usize, greedy: f64| DigitAccuracy {
            digits: d,
            n,
            greedy,
            teacher_forced: greedy,
        };
        let set = |name: &str, by_digits: Vec<DigitAccuracy>| SetAccuracy {
            set: name.into(),
            n: by_digits.iter().map(|d| d.n).sum(),
            greedy: 0.0,
            teacher_forced: 0.0,
            by_digits,
            wrong_by_significance: Vec::new(),
            unreadable: 0,
            by_pair: Vec::new(),
            by_carry_chain: Vec::new(),
        };
        m.stages[0].accuracy = Some(Accuracy {
            sets: vec![
                set("test", vec![digits(4, 900, 100.0)]),
                set("ood", vec![digits(5, 100, 97.0)]),
                set("ood6", vec![digits(6, 1000, 96.5)]),
                set("ood5", vec![digits(5, 1000, 98.0)]),
            ],
        });
        let entry = m.stages[0].clone();
        assert_eq!(
            m.accepted_digits(&entry),
            4,
            "absolute ids: the trained range"
        );
        let coupled = StageEntry {
            positions: PositionIds::COUPLED,
            ..entry
        };
        assert_eq!(m.accepted_digits(&coupled), 6);
        assert_eq!(m.stage_of(&coupled).positions, Positions::COUPLED);
        let json = Manifest {
            stages: vec![coupled.clone()],
            ..m.clone()
        }
        .to_json();
        assert!(json.contains(r#""positions": "coupled""#));
        assert!(
            !m.to_json().contains(r#""positions":"#),
            "absolute is not written"
        );
        assert_eq!(Manifest::from_json(&json).unwrap().stages[0], coupled);
        assert!(
            !json.contains("answer_order"),
            "the usual order is not written"
        );
        let reversed = StageEntry {
            answer_order: AnswerOrder::LeastSignificantFirst,
            ..coupled.clone()
        };
        let json = Manifest {
            stages: vec![reversed.clone()],
            ..m.clone()
        }
        .to_json();
        assert!(json.contains(r#""answer_order": "least_significant_first""#));
        let read = Manifest::from_json(&json).unwrap();
        assert_eq!(
            read.stage_of(&read.stages[0]).answer_order,
            reversed.answer_order
        );

        // Ahead ids: written only when set, read back into the stage, refused without coupling.
        assert!(!json.contains("ids_ahead"));
        let ahead = StageEntry {
            positions: PositionIds::Coupled(ColumnIds {
                ahead: true,
                operand_pad: None,
            }),
            ..coupled
        };
        let with = |entry: StageEntry| {
            Manifest {
                stages: vec![entry],
                ..m.clone()
            }
            .to_json()
        };
        let json = with(ahead.clone());
        assert!(json.contains(r#""ids_ahead": true"#));
        let read = Manifest::from_json(&json).unwrap();
        assert!(read.stage_of(&read.stages[0]).positions.ahead());
        // A file that says ahead ids with absolute ones is refused as it is read.
        let absolute = |json: String| json.replace(r#""positions": "coupled","#, "");
        let err = Manifest::from_json(&absolute(json.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ahead ids are a variant of coupled"), "{err}");
        // Padded operands: written only when set, read back into the stage, refused without
        // coupling or beyond the position table.
        assert!(!json.contains("operand_pad"));
        let padded_by = |pad| StageEntry {
            positions: PositionIds::Coupled(ColumnIds {
                ahead: true,
                operand_pad: Some(pad),
            }),
            ..ahead.clone()
        };
        let json = with(padded_by(1));
        assert!(json.contains(r#""operand_pad": 1"#));
        let read = Manifest::from_json(&json).unwrap();
        assert_eq!(
            read.stage_of(&read.stages[0]).positions.operand_pad(),
            Some(1)
        );
        // The padding counts towards the longest problem's length: two columns more do not fit
        // this stage's 64 positions.
        let err = Manifest::from_json(&with(padded_by(2)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes 69 positions"), "{err}");
        for (bad, says) in [
            (
                absolute(json.replace(r#""ids_ahead": true,"#, "")),
                "padded operands are written with coupled positions",
            ),
            (
                with(padded_by(usize::MAX)),
                "more columns than the model's n_positions",
            ),
        ] {
            let err = Manifest::from_json(&bad).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn a_seed_folder_names_its_family_and_its_stages_follow_the_seeds_rules() {
        let (_, m) = int8_stage();
        let entry = |k: usize, thoughts: usize| StageEntry {
            id: format!("stage{k}"),
            kind: StageKind::Latent { k },
            thoughts,
            ..m.stages[0].clone()
        };
        let seed = Manifest {
            model: ModelConfig {
                vocab_size: 50261,
                ..tiny()
            },
            family: Family::seed(),
            stages: vec![entry(0, 0), entry(1, 1), entry(3, 5)],
            ..m.clone()
        };
        let json = seed.to_json();
        assert!(json.contains(r#""layout": "seed""#), "{json}");
        assert!(
            !json.contains("latent_order"),
            "the seed's own order is the default"
        );
        assert_eq!(Manifest::from_json(&json).unwrap(), seed);
        // A stage fine-tuned with this project's order says so, and reads back so.
        let mut first = seed.clone();
        first.stages[1].latent_order = Some(LatentOrder::First);
        let json = first.to_json();
        assert!(json.contains(r#""latent_order": "first""#), "{json}");
        let read = Manifest::from_json(&json).unwrap();
        let order = |m: &Manifest, i: usize| {
            crate::seed::layout::SeedStage::of_entry(&m.stages[i])
                .unwrap()
                .order()
        };
        assert_eq!(
            (order(&read, 0), order(&read, 1)),
            (LatentOrder::Last, LatentOrder::First)
        );
        // This project's stages think their first steps; a manifest saying otherwise is refused.
        let mut last = m.clone();
        last.stages[0].latent_order = Some(LatentOrder::Last);
        let err = Manifest::from_json(&last.to_json())
            .unwrap_err()
            .to_string();
        assert!(err.contains("latent_order"), "{err}");
        let mut ours_first = m.clone();
        ours_first.stages[0].latent_order = Some(LatentOrder::First);
        Manifest::from_json(&ours_first.to_json()).unwrap();
        // This project's manifests do not name a family; they read as this project's.
        assert!(!m.to_json().contains("family"));
        let refused = |m: Manifest| Manifest::from_json(&m.to_json()).unwrap_err().to_string();
        let wrong_thoughts = Manifest {
            stages: vec![entry(3, 3)],
            ..seed.clone()
        };
        assert!(refused(wrong_thoughts).contains("5 thoughts at most"));
        let stage4 = Manifest {
            stages: vec![entry(4, 4)],
            ..seed.clone()
        };
        assert!(refused(stage4).contains("stage0 to stage3"));
        let small_vocab = Manifest {
            model: tiny(),
            ..seed
        };
        assert!(refused(small_vocab).contains("family: special token"));
    }

    /// A set whose pairs are `(a, b, n, greedy)`, with one carry-chain class.
    fn pair_set(name: &str, pairs: &[(usize, usize, usize, f64)]) -> SetAccuracy {
        SetAccuracy {
            set: name.into(),
            n: pairs.iter().map(|p| p.2).sum(),
            greedy: 0.0,
            teacher_forced: 0.0,
            by_digits: Vec::new(),
            wrong_by_significance: Vec::new(),
            unreadable: 0,
            by_pair: pairs
                .iter()
                .map(|&(a_digits, b_digits, n, greedy)| PairAccuracy {
                    a_digits,
                    b_digits,
                    n,
                    greedy,
                    teacher_forced: greedy,
                })
                .collect(),
            by_carry_chain: vec![ChainAccuracy {
                chain: 6,
                n: 40,
                greedy: 55.0,
            }],
        }
    }

    #[test]
    fn the_figure_for_a_problem_is_its_own_length_pairs() {
        let (_, m) = int8_stage();
        let mut entry = StageEntry {
            positions: PositionIds::COUPLED,
            ..m.stages[0].clone()
        };
        let every_pair_up_to = |digits: usize, n: usize, greedy: f64| {
            (1..=digits)
                .flat_map(|a| (1..=digits).map(move |b| (a, b, n, greedy)))
                .collect::<Vec<_>>()
        };
        let mut longer = every_pair_up_to(6, 200, 99.0);
        longer.retain(|&(a, b, ..)| a.max(b) > 4);
        // 6 + 3 measured worse than 6 + 6; 7 + 7 alone measured, not 7 + 1.
        for p in longer.iter_mut().filter(|p| (p.0, p.1) == (6, 3)) {
            p.3 = 61.0;
        }
        longer.push((7, 7, 200, 98.0));
        entry.accuracy = Some(Accuracy {
            sets: vec![
                pair_set("test", &every_pair_up_to(4, 300, 100.0)),
                pair_set("small", &[(6, 3, 20, 10.0)]),
                pair_set("pairs", &longer),
            ],
        });
        let figure = entry.measured_for(&Problem::new(654_122, 299)).unwrap();
        assert_eq!(
            (figure.set.as_str(), figure.n, figure.greedy),
            ("pairs", 200, 61.0),
            "the largest set measuring the pair"
        );
        assert_eq!(figure.carry_chain, None, "its chain (2) was not counted");
        let chained = entry.measured_for(&Problem::new(999_999, 999_999)).unwrap();
        assert_eq!((chained.greedy, chained.carry_chain.unwrap().n), (99.0, 40));
        assert_eq!(
            entry.measured_for(&Problem::new(3, 21)).unwrap().set,
            "test"
        );
        assert!(entry.measured_for(&Problem::new(1_234_567, 89)).is_none());
        assert_eq!(
            entry
                .measured_for(&Problem::new(1_234_567, 1_234_567))
                .unwrap()
                .greedy,
            98.0
        );
        // Accepted: every pair up to 6 digits was measured; 7 + 1 never was.
        assert_eq!(m.accepted_digits(&entry), 6);
        let absolute = StageEntry {
            positions: PositionIds::Absolute,
            ..entry
        };
        assert_eq!(m.accepted_digits(&absolute), m.max_digits);
    }

    #[test]
    fn a_stage_s_probes_are_verified_and_must_fit_the_stage_and_the_model() {
        use crate::probes::{Probe, ProbeDtype, ProbeScore, Quantity};
        let (_, mut m) = int8_stage();
        let probes_of = |stage: &str, slots: usize, column: usize, width: usize| {
            let mut p = ThoughtProbes::default();
            for slot in 0..slots {
                p.scores.push(ProbeScore {
                    stage: stage.into(),
                    slot,
                    column,
                    quantity: Quantity::Carry,
                    accuracy: 99.0,
                    shuffled: 50.0,
                    majority: 60.0,
                    n_fit: 1,
                    n_test: 1,
                });
                let probe = Probe {
                    weight: vec![0.5; 2 * width],
                    bias: vec![0.0; 2],
                    classes: 2,
                };
                p.probes.push((slot, column, Quantity::Carry, probe));
            }
            p.to_safetensors(ProbeDtype::F16)
        };
        let probes = |slots, column, width| probes_of("stage2", slots, column, width);
        let with = |m: &mut Manifest, bytes: &[u8]| {
            let file = format!("{}.probes.safetensors", m.stages[0].id);
            m.stages[0].probes = Some(FileEntry::describe(&file, bytes));
            m.stage_probes(&m.stages[0], bytes)
                .map(|p| p.map(|p| p.slots()))
        };
        assert_eq!(
            m.stage_probes(&m.stages[0], b"").unwrap(),
            None,
            "none listed"
        );
        let c = m.model.n_embd;
        assert_eq!(with(&mut m, &probes(2, 4, c)).unwrap(), Some(2));
        let refused = |m: &mut Manifest, bytes: Vec<u8>| with(m, &bytes).unwrap_err().to_string();
        assert!(refused(&mut m, probes(3, 0, c))
            .contains("3 thought slots, stage stage2 has at most 2"));
        assert!(refused(&mut m, probes(1, 5, c)).contains("column 5"));
        assert!(refused(&mut m, probes(1, 0, c + 1)).contains("the model's is"));
        // An all-latent stage with padded operands thinks its padded columns too: a 4-digit
        // problem padded by 1 has 6 thoughts, one more than the stage's 5 steps.
        let mut padded = m.clone();
        padded.stages[0] = StageEntry {
            id: "stage5".into(),
            kind: StageKind::Latent { k: 5 },
            thoughts: 5,
            positions: PositionIds::Coupled(ColumnIds {
                ahead: true,
                operand_pad: Some(1),
            }),
            ..padded.stages[0].clone()
        };
        assert_eq!(
            with(&mut padded, &probes_of("stage5", 6, 0, c)).unwrap(),
            Some(6)
        );
        assert!(refused(&mut padded, probes_of("stage5", 7, 0, c))
            .contains("7 thought slots, stage stage5 has at most 6"));
        // The manifest's checksum is checked before parsing.
        let good = probes(1, 0, c);
        with(&mut m, &good).unwrap();
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let e = m
            .stage_probes(&m.stages[0], &flipped)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sha256"), "{e}");
        // And the file name like every other.
        m.stages[0].probes.as_mut().unwrap().file = "../p.safetensors".into();
        assert!(refusal(&m).contains("probes.file"));
    }

    #[test]
    fn verifies_size_and_checksum() {
        let (bytes, m) = int8_stage();
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
        assert!(
            e.contains("stage2.safetensors (file of stage stage2): cannot read"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The parse error of `m` as text, after a JSON round trip (what a file on disk gives).
    fn refusal(m: &Manifest) -> String {
        Manifest::from_json(&m.to_json()).unwrap_err().to_string()
    }

    #[test]
    fn file_names_stay_inside_the_folder() {
        for good in ["stage2.safetensors", "tokenizer.json", "a_b-c.1"] {
            check_file_name(good).unwrap();
        }
        let bytes = random_weights(&tiny(), 1).to_safetensors();
        let cases = [
            ("../../../etc/passwd", "climbs out of the weights folder"),
            ("/etc/passwd", "is an absolute path"),
            ("/dev/zero", "is an absolute path"),
            ("C:stage2.safetensors", "is an absolute path"),
            ("sub/stage2.safetensors", "names a file in another folder"),
            ("..", "climbs out"),
            ("", "is empty"),
            (".hidden", "holds characters other than"),
            ("stage2.safetensors?x=1", "holds characters other than"),
        ];
        for (name, why) in cases {
            let mut m = manifest_with(&bytes);
            m.stages[0].file.file = name.into();
            let e = refusal(&m);
            assert!(
                e.starts_with(&format!(
                    "manifest.json: not a valid manifest: stages[0] (stage2).file {name:?} {why}"
                )),
                "{name}: {e}"
            );
            let mut m = manifest_with(&bytes);
            m.tokenizer.file = name.into();
            assert!(refusal(&m).contains(&format!("tokenizer.file {name:?} {why}")));
        }
    }

    #[test]
    fn numbers_must_agree_with_the_model_and_the_stages() {
        let bytes = random_weights(&tiny(), 1).to_safetensors();
        let refused = |change: &dyn Fn(&mut Manifest), expected: &str| {
            let mut m = manifest_with(&bytes);
            change(&mut m);
            let e = refusal(&m);
            assert!(e.contains(expected), "expected {expected:?} in: {e}");
        };
        refused(
            &|m| m.thoughts_per_step = 0,
            "thoughts_per_step is 0: it must be 1 to the model's n_positions (64)",
        );
        refused(
            &|m| m.thoughts_per_step = 1_000_000_000,
            "thoughts_per_step is 1000000000",
        );
        // Within the context, but stage2's thoughts no longer fit with the longest problem.
        refused(
            &|m| {
                m.thoughts_per_step = 30;
                m.stages[0].thoughts = 60;
            },
            "stages[0] (stage2): the longest problem (9999 + 9999) takes",
        );
        refused(&|m| m.max_digits = 1 << 40, "max_digits is 1099511627776");
        refused(&|m| m.max_digits = 0, "max_digits is 0");
        refused(
            &|m| m.stages[0].thoughts = 7,
            "stages[0] (stage2).thoughts is 7 and stages[0] (stage2).feeds_back is true, \
             but stage2 with thoughts_per_step 1 has 2 thoughts",
        );
        refused(&|m| m.stages[0].feeds_back = false, "feeds_back is false");
        refused(
            &|m| {
                m.stages[0].kind = StageKind::Latent { k: 99 };
                m.stages[0].id = "stage99".into();
            },
            "stages[0] (stage99).kind: 99 latent steps, but problems of at most 4 digits",
        );
        refused(
            &|m| m.stages[0].id = "stage3".into(),
            "stages[0] (stage3).id does not match its kind stage2",
        );
        refused(&|m| m.model.n_positions = usize::MAX, "more than 65536");
    }

    #[test]
    fn a_stage_stored_in_pieces_reads_as_the_whole_and_a_bad_piece_is_named() {
        let dir = std::env::temp_dir().join(format!("coconut-shards-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = random_weights(&tiny(), 7).to_safetensors();
        let piece = bytes.len() as u64 / 3 + 1;
        let (entry, pieces) = FileEntry::sharded("stage2.safetensors", &bytes, piece);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[0].0, "stage2-00001-of-00003.safetensors");
        let joined: Vec<u8> = pieces.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        assert_eq!(joined, bytes);
        for (name, piece) in &pieces {
            std::fs::write(dir.join(name), piece).unwrap();
        }
        let mut m = manifest_with(&bytes);
        m.stages[0].file = entry.clone();
        let json = m.to_json();
        assert!(json.contains("\"shards\""));
        std::fs::write(dir.join(MANIFEST_FILE), &json).unwrap();
        let w = WeightsDir::open(&dir).unwrap();
        assert_eq!(w.stage("stage2").unwrap().2, random_weights(&tiny(), 7));
        // A small file stays one file, with no pieces listed.
        let (whole, one) = FileEntry::sharded("stage2.safetensors", &bytes, MAX_SHARD_BYTES);
        assert!(whole.shards.is_empty() && one.len() == 1);
        assert!(!Manifest::from_json(&manifest_with(&bytes).to_json())
            .unwrap()
            .to_json()
            .contains("shards"));
        // A piece changed on disk: refused, naming it.
        let mut bad = pieces[1].1.to_vec();
        bad[0] ^= 1;
        std::fs::write(dir.join(&pieces[1].0), &bad).unwrap();
        let e = w.stage("stage2").unwrap_err().to_string();
        assert!(e.contains("stage2-00002-of-00003.safetensors"), "{e}");
        std::fs::remove_file(dir.join(&pieces[2].0)).unwrap();
        let e = w.stage("stage2").unwrap_err().to_string();
        assert!(e.contains("stage2-0000"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        // Pieces that do not add up, pieces of pieces, an oversized or unsafe piece: refused.
        let refused = |edit: &dyn Fn(&mut FileEntry), want: &str| {
            let mut m = manifest_with(&bytes);
            m.stages[0].file = entry.clone();
            edit(&mut m.stages[0].file);
            let e = Manifest::from_json(&m.to_json()).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        };
        refused(&|f| f.shards[0].bytes -= 1, "its pieces hold");
        refused(
            &|f| f.shards[1].shards = vec![f.shards[0].clone()],
            "not stored in pieces",
        );
        refused(
            &|f| f.shards[0].bytes = MAX_SHARD_BYTES + 1,
            "a piece holds 1 to",
        );
        refused(&|f| f.shards[2].file = "../x".into(), "shards[2]");
    }

    /// A folder whose manifest names `stage2.safetensors`, with `make` putting something there.
    fn hostile_folder(tag: &str, make: impl FnOnce(&Path)) -> (std::path::PathBuf, WeightsDir) {
        let dir = std::env::temp_dir().join(format!("coconut-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = random_weights(&tiny(), 7).to_safetensors();
        std::fs::write(dir.join(MANIFEST_FILE), manifest_with(&bytes).to_json()).unwrap();
        make(&dir.join("stage2.safetensors"));
        let w = WeightsDir::open(&dir).unwrap();
        (dir, w)
    }

    /// Loads stage2 on another thread: a read that blocks fails the test instead of hanging it.
    fn load_fast(w: WeightsDir) -> String {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(w.stage("stage2").map(|_| ())));
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("loading blocked");
        result.unwrap_err().to_string()
    }

    #[cfg(unix)]
    #[test]
    fn devices_fifos_and_links_are_refused_without_reading() {
        let (dir, w) = hostile_folder("fifo", |path| {
            let made = std::process::Command::new("mkfifo").arg(path).status();
            assert!(made.unwrap().success(), "mkfifo");
        });
        let e = load_fast(w);
        assert!(
            e.ends_with(
                "stage2.safetensors (file of stage stage2): cannot read: a FIFO, not a regular file"
            ),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let (dir, w) = hostile_folder("zero-link", |path| {
            std::os::unix::fs::symlink("/dev/zero", path).unwrap()
        });
        let e = load_fast(w);
        assert!(e.ends_with("a symbolic link, not a regular file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();

        let (dir, w) = hostile_folder("folder", |path| std::fs::create_dir(path).unwrap());
        assert!(load_fast(w).ends_with("a folder, not a regular file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_huge_file_is_refused_from_its_size_before_reading() {
        // Sparse: 1.5 GB long, no disk space, and slow and large if it were read.
        let (dir, w) = hostile_folder("huge", |path| {
            let f = std::fs::File::create(path).unwrap();
            f.set_len(1_500_000_000).unwrap();
        });
        let expected = w.manifest.stages[0].file.bytes;
        let e = load_fast(w);
        assert_eq!(
            e,
            format!(
                "stage2.safetensors: 1500000000 bytes, the manifest says {expected}: truncated or \
                 replaced"
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
