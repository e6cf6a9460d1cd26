//! `coconut import`: a GPT-2 trained elsewhere (the seed's `torch.save` state dicts, or a Hugging
//! Face folder) into a weights folder every command reads. Nothing in the source runs: a `.pt`
//! is read by [`torch_file`]'s restricted unpickler, a `.safetensors` by its header alone
//! ([`safetensors_file`]); tensors are converted one at a time ([`gpt2`]); the folder is written
//! through [`crate::folder`] (manifest and files change together or not at all) and checked as
//! every reader will check it before it is swapped in.

pub mod gpt2;
pub mod safetensors_file;
pub mod torch_file;

use crate::folder::{FolderWrite, Start};
use anyhow::{bail, ensure, Context, Result};
use coconut_core::data::SplitScheme;
use coconut_core::family::{Family, LayoutFamily};
use coconut_core::manifest::{
    FileEntry, Manifest, StageEntry, WeightsDir, FORMAT_VERSION, MANIFEST_FILE, MAX_SHARD_BYTES,
};
use coconut_core::positions::PositionIds;
use coconut_core::seed::tokenizer::Gpt2Tokenizer;
use coconut_core::stage::{AnswerOrder, LatentOrder, StageKind};
use coconut_core::weights::{ModelWeights, WeightDtype};
use coconut_core::ModelConfig;
use gpt2::TensorSource;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the weights come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A `torch.save(model.state_dict())` file.
    Pt(PathBuf),
    /// A Hugging Face folder: `config.json` and `model.safetensors` (or `pytorch_model.bin`).
    Hf(PathBuf),
}

/// What `coconut import` was asked to do.
#[derive(Clone, Debug)]
pub struct ImportRequest {
    pub source: Source,
    /// The stage the checkpoint is (`stage0` .. `stage3` of the seed's curriculum).
    pub stage: String,
    pub layout: LayoutFamily,
    /// Attention heads (not in a state dict; read from `config.json` for a folder).
    pub n_head: Option<usize>,
    pub dtype: WeightDtype,
    pub out: PathBuf,
    /// The largest piece the stage file is stored in ([`MAX_SHARD_BYTES`] at most; a larger
    /// file is written as numbered pieces, `FileEntry::sharded`).
    pub shard_bytes: u64,
}

impl TensorSource for torch_file::TorchFile {
    fn file(&self) -> String {
        torch_file::TorchFile::file(self).to_string()
    }
    fn shapes(&self) -> BTreeMap<String, (Vec<usize>, String)> {
        self.tensors()
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    (t.shape.clone(), t.dtype.name().to_string()),
                )
            })
            .collect()
    }
    fn read_f32(&mut self, name: &str) -> Result<Vec<f32>> {
        Ok(torch_file::TorchFile::read_f32(self, name)?)
    }
    fn shares_storage(&self, head: &str, table: &str) -> Option<bool> {
        let (h, t) = (self.tensor(head).ok()?, self.tensor(table).ok()?);
        Some(h.same_view(t))
    }
}

impl TensorSource for safetensors_file::SafetensorsFile {
    fn file(&self) -> String {
        self.path().display().to_string()
    }
    fn shapes(&self) -> BTreeMap<String, (Vec<usize>, String)> {
        self.entries
            .iter()
            .map(|(k, e)| (k.clone(), (e.shape.clone(), e.dtype.clone())))
            .collect()
    }
    fn read_f32(&mut self, name: &str) -> Result<Vec<f32>> {
        Ok(safetensors_file::SafetensorsFile::read_f32(self, name)?)
    }
    fn shares_storage(&self, _: &str, _: &str) -> Option<bool> {
        None
    }
}

/// The parts of a Hugging Face `config.json` this importer needs, refused where the model is
/// not the GPT-2 the engines compute.
#[derive(serde::Deserialize)]
struct HfConfig {
    n_head: usize,
    #[serde(default = "default_eps")]
    layer_norm_epsilon: f32,
    #[serde(default = "default_activation")]
    activation_function: String,
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
}

fn default_eps() -> f32 {
    1e-5
}

fn default_activation() -> String {
    "gelu_new".into()
}

/// Opens the source: its tensors, the head count and the LayerNorm epsilon.
fn open(request: &ImportRequest) -> Result<(Box<dyn TensorSource>, usize, f32)> {
    let given_heads = || {
        request
            .n_head
            .context("a state dict does not say how many attention heads: give --n-head")
    };
    match &request.source {
        Source::Pt(path) => Ok((
            Box::new(torch_file::TorchFile::open(path)?),
            given_heads()?,
            1e-5,
        )),
        Source::Hf(dir) => {
            let config_path = dir.join("config.json");
            let text = coconut_core::files::read_regular(&config_path, 1 << 20)
                .with_context(|| format!("reading {}", config_path.display()))?;
            let config: HfConfig = serde_json::from_slice(&text)
                .with_context(|| format!("{}: not a GPT-2 config", config_path.display()))?;
            ensure!(
                matches!(
                    config.activation_function.as_str(),
                    "gelu_new" | "gelu_pytorch_tanh"
                ),
                "{}: activation {} is not GPT-2's tanh GELU, which the engines compute",
                config_path.display(),
                config.activation_function
            );
            ensure!(
                !config.scale_attn_by_inverse_layer_idx,
                "{}: attention scaled by the layer index is not computed here",
                config_path.display()
            );
            if let Some(n) = request.n_head.filter(|&n| n != config.n_head) {
                bail!(
                    "--n-head {n} differs from {}'s n_head {}",
                    config_path.display(),
                    config.n_head
                );
            }
            let safetensors = dir.join("model.safetensors");
            let source: Box<dyn TensorSource> = if safetensors.exists() {
                Box::new(safetensors_file::SafetensorsFile::open(&safetensors)?)
            } else if dir.join("pytorch_model.bin").exists() {
                Box::new(torch_file::TorchFile::open(dir.join("pytorch_model.bin"))?)
            } else {
                bail!(
                    "{}: no model.safetensors or pytorch_model.bin (sharded checkpoints are not \
                     read yet)",
                    dir.display()
                );
            };
            Ok((source, config.n_head, config.layer_norm_epsilon))
        }
    }
}

/// The seed family's stage entry for `id` (`stage0` .. `stage3`).
fn seed_stage_entry(
    id: &str,
    order: LatentOrder,
    max_digits: usize,
    dtype: WeightDtype,
    file: FileEntry,
) -> Result<StageEntry> {
    let k = id
        .strip_prefix("stage")
        .and_then(|k| k.parse::<usize>().ok())
        .filter(|&k| k <= 3)
        .with_context(|| format!("--stage {id}: the seed's stages are stage0 to stage3"))?;
    Ok(StageEntry {
        id: format!("stage{k}"),
        kind: StageKind::Latent { k },
        thoughts: if k == 3 {
            coconut_core::problem::max_steps(max_digits)
        } else {
            k
        },
        feeds_back: true,
        positions: PositionIds::Absolute,
        answer_order: AnswerOrder::MostSignificantFirst,
        // The seed's own order is the family's default: only this project's is written.
        latent_order: (order != LatentOrder::Last).then_some(order),
        dtype,
        file,
        accuracy: None,
        training: None,
        probes: None,
    })
}

/// The seed trained on operands of 2 to 4 digits.
const SEED_MAX_DIGITS: usize = 4;

/// The folder's manifest before this stage is added: its own (same model and family), or a new
/// one.
fn base_manifest(out: &Path, config: &ModelConfig, tokenizer: &FileEntry) -> Result<Manifest> {
    let path = out.join(MANIFEST_FILE);
    if path.exists() {
        let dir = WeightsDir::open(out)?;
        ensure!(
            dir.manifest.family == Family::seed() && dir.manifest.model == *config,
            "{} holds another model or family ({:?}, {:?}): import into a new folder or one of \
             the same model's stages",
            path.display(),
            dir.manifest.model,
            dir.manifest.family.layout
        );
        return Ok(dir.manifest);
    }
    Ok(Manifest {
        format_version: FORMAT_VERSION,
        model: config.clone(),
        tokenizer: tokenizer.clone(),
        max_digits: SEED_MAX_DIGITS,
        data_splits: SplitScheme::default(),
        thoughts_per_step: 1,
        family: Family::seed(),
        stages: Vec::new(),
    })
}

/// What [`import`] made.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The model's shape in the folder.
    pub config: ModelConfig,
    /// Token rows added to the file's table: 4 for a GPT-2 of 50,257 tokens (`<bot>`, `<sep>`,
    /// `<eot>`, `<act>`, as the seed added them before fine-tuning), else 0.
    pub added_tokens: usize,
}

/// Imports one checkpoint as one stage of the weights folder `request.out`.
pub fn import(request: &ImportRequest) -> Result<Imported> {
    ensure!(
        request.layout == LayoutFamily::Seed,
        "--layout coconut-lab needs this project's layouts over GPT-2's tokenizer, which the \
         trainer does not have yet; import with --layout seed"
    );
    let folder = FolderWrite::begin(&request.out, Start::Keep)?;
    let (mut source, n_head, eps) = open(request)?;
    let mut config = gpt2::infer_config(&source.shapes(), n_head, eps, &source.file())?;
    // A pretrained GPT-2 (the seed's starting point) lacks the four tokens its layouts use.
    let added_tokens = if config.vocab_size == gpt2::GPT2_VOCAB {
        config.vocab_size = coconut_core::seed::VOCAB;
        coconut_core::seed::VOCAB - gpt2::GPT2_VOCAB
    } else {
        0
    };
    Family::seed()
        .check(config.vocab_size)
        .map_err(|e| anyhow::anyhow!("{}: {e}", source.file()))?;
    let weights = gpt2::import_weights(source.as_mut(), &config, request.dtype)?;
    drop(source);
    write_seed_stage(
        &request.out,
        &request.stage,
        LatentOrder::Last,
        &weights,
        request.dtype,
        request.shard_bytes.clamp(1, MAX_SHARD_BYTES),
        folder,
    )?;
    Ok(Imported {
        config,
        added_tokens,
    })
}

/// Writes `weights` as stage `stage_id` (`stage0` .. `stage3`, thinking the steps of `order`) of
/// the seed-family weights folder `out` (a new one, or one of the same model), replacing that
/// stage if the folder has it; the folder changes as a whole or not at all (`folder`, begun on
/// `out`).
fn write_seed_stage(
    out: &Path,
    stage_id: &str,
    order: LatentOrder,
    weights: &ModelWeights,
    dtype: WeightDtype,
    shard_bytes: u64,
    mut folder: FolderWrite,
) -> Result<()> {
    let tokenizer_json = Gpt2Tokenizer::new().to_json();
    let tokenizer = FileEntry::describe(crate::export::TOKENIZER_FILE, tokenizer_json.as_bytes());
    let mut manifest = base_manifest(out, &weights.config, &tokenizer)?;
    let bytes = weights.to_safetensors();
    let file_name = format!("{stage_id}.safetensors");
    let (file, pieces) = FileEntry::sharded(&file_name, &bytes, shard_bytes);
    let entry = seed_stage_entry(stage_id, order, manifest.max_digits, dtype, file)?;
    // The stage written again (another size, or pieces now): its old files go, and its probes,
    // which read the old weights' thoughts.
    let old_files: Vec<String> = manifest
        .stages
        .iter()
        .filter(|s| s.id == entry.id)
        .flat_map(|s| {
            s.file
                .stored_files()
                .into_iter()
                .chain(s.probes.iter().flat_map(FileEntry::stored_files))
        })
        .map(str::to_string)
        .collect();
    manifest.stages.retain(|s| s.id != entry.id);
    manifest.stages.push(entry.clone());
    manifest.stages.sort_by(|a, b| a.id.cmp(&b.id));
    for old in old_files {
        folder.remove(&old)?;
    }
    for (name, piece) in &pieces {
        folder.write(name, piece)?;
    }
    drop(pieces);
    drop(bytes);
    folder.write(crate::export::TOKENIZER_FILE, tokenizer_json.as_bytes())?;
    folder.write(MANIFEST_FILE, manifest.to_json().as_bytes())?;
    folder.commit(|staging| {
        let dir = WeightsDir::open(staging)?;
        dir.stage(&entry.id)?;
        Ok(())
    })
}

/// Refuses, before any work, a target `write_trained_seed_stage` would refuse at the end: a
/// folder that cannot be written, or one that holds another model or family.
pub fn check_trained_seed_target(out: &Path, config: &ModelConfig) -> Result<()> {
    drop(FolderWrite::begin(out, Start::Keep)?);
    let tokenizer = FileEntry::describe(crate::export::TOKENIZER_FILE, b"");
    base_manifest(out, config, &tokenizer).map(|_| ())
}

/// Writes a model trained here from a seed-family folder (fine-tuning) as stage `stage_id` of
/// the seed-family weights folder `out`, thinking the steps of `order`, in `dtype`.
pub fn write_trained_seed_stage(
    out: &Path,
    stage_id: &str,
    order: LatentOrder,
    weights: &ModelWeights,
    dtype: WeightDtype,
) -> Result<()> {
    let folder = FolderWrite::begin(out, Start::Keep)?;
    let stored = weights.convert(dtype);
    write_seed_stage(
        out,
        stage_id,
        order,
        &stored,
        dtype,
        MAX_SHARD_BYTES,
        folder,
    )
}
