//! Exports trained stage weights: into a weights folder (`manifest.json`, `tokenizer.json`, one
//! safetensors file per stage in int8, f16 or f32), or as a Hugging Face GPT-2 folder.
//!
//! The Hugging Face layout: `config.json` (a `GPT2Config`), `model.safetensors` with the
//! `transformer.` prefix and Conv1D weights stored `[in, out]` (our layout already), the LM head
//! left tied to `wte`, `tokenizer.json`, and `coconut.json` saying how many thoughts to feed and
//! which ids delimit them, so `GPT2LMHeadModel` fed the thoughts through `inputs_embeds` and its
//! KV cache gives the same answers.

use anyhow::{bail, ensure, Context, Result};
use coconut_core::data::DataConfig;
use coconut_core::manifest::{
    Accuracy, FileEntry, Manifest, StageEntry, TrainingFacts, FORMAT_VERSION, MANIFEST_FILE,
};
use coconut_core::stage::Stage;
use coconut_core::tokenizer::{Tokenizer, BOT, EOS, EOT, LATENT, PAD};
use coconut_core::weights::{ModelWeights, WeightDtype};
use serde_json::json;
use std::path::Path;

use crate::folder::{FolderWrite, Start};

pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The checksums of a Hugging Face folder's files, as `sha256sum` writes them (`sha256sum -c`).
pub const CHECKSUMS_FILE: &str = "SHA256SUMS";
/// The most a file of a Hugging Face folder may hold when it is checked (model.safetensors of the
/// largest model [`coconut_core::ModelConfig::validate`] allows is far smaller in practice).
const MAX_HF_FILE: u64 = 1 << 34;

/// What `coconut export --format` writes: a weights-folder file of one dtype, or a Hugging Face
/// `GPT2LMHeadModel` folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Weights(WeightDtype),
    Hf,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "hf" {
            return Ok(ExportFormat::Hf);
        }
        s.parse()
            .map(ExportFormat::Weights)
            .map_err(|_| format!("unknown format '{s}': expected int8, f16, f32 or hf"))
    }
}

/// What is known about the stage being exported, copied into the manifest.
#[derive(Clone, Debug, Default)]
pub struct StageFacts {
    pub accuracy: Option<Accuracy>,
    pub training: Option<TrainingFacts>,
}

/// Adds (or replaces) one stage in the weights folder `out`, creating the folder, its
/// tokenizer and its manifest when missing. `max_digits` and (for a stage with thoughts) the
/// stage's `thoughts_per_step` must agree with a manifest already there, and so must the model
/// config. The folder changes whole or not at all ([`FolderWrite`]); a folder that holds files
/// but no manifest is not a weights folder and is refused.
pub fn export_stage(
    weights: &ModelWeights,
    stage: &Stage,
    dtype: WeightDtype,
    data: &DataConfig,
    facts: StageFacts,
    out: &Path,
) -> Result<StageEntry> {
    ensure!(
        !stage.thoughts_on_trigger(),
        "{}: a stage of the last-steps order is a training comparison; the manifest, the page \
         and the GPU engines run thoughts after the prompt only",
        stage.id()
    );
    let mut folder = FolderWrite::begin(out, Start::Keep)?;
    let tokenizer_json = Tokenizer::new().to_json();
    let manifest_path = out.join(MANIFEST_FILE);
    let holds_files = std::fs::read_dir(folder.target())
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    ensure!(
        manifest_path.exists() || !holds_files,
        "{} holds files but no {MANIFEST_FILE}: not a weights folder; export into a weights \
         folder or a new one",
        out.display()
    );
    let mut manifest = folder_manifest(&manifest_path, weights, stage, data)?;
    manifest.tokenizer = FileEntry::describe(TOKENIZER_FILE, tokenizer_json.as_bytes());
    let id = stage.id();
    let file = format!("{id}.safetensors");
    let bytes = weights.convert(dtype).to_safetensors();
    let entry = StageEntry {
        id: id.clone(),
        kind: stage.kind,
        thoughts: stage.thoughts(),
        feeds_back: stage.feeds_back(),
        positions: stage.positions.ids(),
        answer_order: stage.answer_order,
        latent_order: None,
        dtype,
        file: FileEntry::describe(&file, &bytes),
        accuracy: facts.accuracy,
        training: facts.training,
        // Probes read the weights they were fitted on: new weights need new ones.
        probes: None,
    };
    manifest.stages.retain(|s| s.id != id);
    manifest.stages.push(entry.clone());
    manifest.stages.sort_by_key(|s| stage_order(&s.id));
    // Never write a manifest its readers would refuse (say, a model too short for its stages);
    // checked before any file is written.
    let json = manifest.to_json();
    Manifest::from_json_named(&json, &manifest_path.display().to_string())?;
    folder.write(TOKENIZER_FILE, tokenizer_json.as_bytes())?;
    folder.write(&file, &bytes)?;
    folder.write(MANIFEST_FILE, json.as_bytes())?;
    folder.commit(check_weights_folder)?;
    Ok(entry)
}

/// The manifest a stage is added to: the one at `manifest_path` (which must hold the same model,
/// digits, c and splits), or a new one.
fn folder_manifest(
    manifest_path: &Path,
    weights: &ModelWeights,
    stage: &Stage,
    data: &DataConfig,
) -> Result<Manifest> {
    if manifest_path.exists() {
        let text = std::fs::read_to_string(manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        let m = Manifest::from_json_named(&text, &manifest_path.display().to_string())?;
        if m.model != weights.config {
            bail!(
                "{} holds a different model ({:?}); export into an empty folder",
                manifest_path.display(),
                m.model
            );
        }
        // c shapes only stages with thoughts: a no-chain-of-thought baseline trained with another
        // c is the same model.
        let c_differs = stage.thoughts() > 0 && m.thoughts_per_step != stage.thoughts_per_step;
        if m.max_digits != data.max_digits || c_differs {
            bail!(
                "{} was trained with max_digits {} and c = {}; this stage has {} and {}",
                manifest_path.display(),
                m.max_digits,
                m.thoughts_per_step,
                data.max_digits,
                stage.thoughts_per_step
            );
        }
        if m.data_splits != data.splits {
            bail!(
                "{} holds stages trained on {:?} splits; this stage used {:?}: export into an empty folder",
                manifest_path.display(),
                m.data_splits,
                data.splits
            );
        }
        Ok(m)
    } else {
        Ok(Manifest {
            format_version: FORMAT_VERSION,
            model: weights.config.clone(),
            tokenizer: FileEntry::describe(TOKENIZER_FILE, Tokenizer::new().to_json().as_bytes()),
            max_digits: data.max_digits,
            data_splits: data.splits,
            thoughts_per_step: stage.thoughts_per_step,
            family: Default::default(),
            stages: Vec::new(),
        })
    }
}

/// Everything a reader of the weights folder `dir` checks: its manifest, and every file it lists
/// (tokenizer, stages, probes) read and verified against it.
pub fn check_weights_folder(dir: &Path) -> Result<()> {
    let folder = coconut_core::manifest::WeightsDir::open(dir)?;
    if folder.manifest.family.layout == coconut_core::family::LayoutFamily::Seed {
        folder.seed_vocab()?;
    } else {
        folder.tokenizer()?;
    }
    for entry in &folder.manifest.stages {
        folder.stage(&entry.id)?;
        folder.probes(entry)?;
    }
    Ok(())
}

/// Curriculum stages first, in order, then the baselines.
fn stage_order(id: &str) -> (usize, String) {
    match id
        .strip_prefix("stage")
        .and_then(|k| k.parse::<usize>().ok())
    {
        Some(k) => (k, String::new()),
        None => (usize::MAX, id.to_string()),
    }
}

/// Refuses to write a Hugging Face folder over `out` when it is a weights folder, holds folders
/// or `source` (what is exported), or (without `force`) holds anything at all.
fn check_hf_target(out: &Path, source: &Path, force: bool) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(out) else {
        ensure!(!out.exists(), "{} is not a folder", out.display());
        return Ok(());
    };
    let entries = entries.collect::<std::io::Result<Vec<_>>>()?;
    ensure!(
        !out.join(MANIFEST_FILE).exists(),
        "{} is a weights folder (it has {MANIFEST_FILE}): write the Hugging Face folder elsewhere",
        out.display()
    );
    let (out_real, source_real) = (std::fs::canonicalize(out)?, std::fs::canonicalize(source)?);
    ensure!(
        !source_real.starts_with(&out_real),
        "{} holds {}, what is exported: write the Hugging Face folder elsewhere",
        out.display(),
        source.display()
    );
    if entries.is_empty() {
        return Ok(());
    }
    ensure!(
        entries
            .iter()
            .all(|e| e.file_type().is_ok_and(|t| !t.is_dir())),
        "{} holds folders: not a Hugging Face folder; write it elsewhere",
        out.display()
    );
    ensure!(
        force,
        "{} is not empty: give --force to replace what it holds, or another --out",
        out.display()
    );
    Ok(())
}

/// Writes a Hugging Face GPT-2 folder for one stage of `source` (a run or weights folder) into
/// `out`, whole ([`FolderWrite`]), with [`CHECKSUMS_FILE`]; a folder already there is replaced
/// only with `force` ([`check_hf_target`]).
pub fn export_hf(
    weights: &ModelWeights,
    stage: &Stage,
    out: &Path,
    source: &Path,
    force: bool,
) -> Result<()> {
    check_hf_target(out, source, force)?;
    let mut folder = FolderWrite::begin(out, Start::Replace)?;
    let mut sums = String::new();
    for (name, bytes) in hf_files(weights, stage)? {
        folder.write(name, &bytes)?;
        sums.push_str(&format!(
            "{}  {name}\n",
            coconut_core::manifest::sha256_hex(&bytes)
        ));
    }
    folder.write(CHECKSUMS_FILE, sums.as_bytes())?;
    folder.commit(|dir| check_hf_folder(dir).map(|_| ()))
}

/// Checks every file [`CHECKSUMS_FILE`] lists in the Hugging Face folder `dir` (all of
/// [`export_hf`]'s must be listed) and returns the files' bytes by name.
pub fn check_hf_folder(dir: &Path) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let sums_path = dir.join(CHECKSUMS_FILE);
    let sums = coconut_core::files::read_regular(&sums_path, 1 << 16)
        .with_context(|| format!("reading {}", sums_path.display()))?;
    let sums = String::from_utf8(sums).with_context(|| format!("{}", sums_path.display()))?;
    let mut files = std::collections::BTreeMap::new();
    for line in sums.lines() {
        let (hex, name) = line
            .split_once("  ")
            .with_context(|| format!("{}: {line:?} is not `SHA256  FILE`", sums_path.display()))?;
        coconut_core::manifest::check_file_name(name)
            .map_err(|e| anyhow::anyhow!("{}: {name:?} {e}", sums_path.display()))?;
        let path = dir.join(name);
        let bytes = coconut_core::files::read_regular(&path, MAX_HF_FILE)
            .with_context(|| format!("reading {}", path.display()))?;
        ensure!(
            coconut_core::manifest::sha256_hex(&bytes) == hex,
            "{}: its sha256 is not the one {CHECKSUMS_FILE} lists (changed or cut short)",
            path.display()
        );
        files.insert(name.to_string(), bytes);
    }
    for name in HF_FILES {
        ensure!(
            files.contains_key(name),
            "{}: {name} is not listed",
            sums_path.display()
        );
    }
    Ok(files)
}

/// The files of a Hugging Face folder.
const HF_FILES: [&str; 4] = [
    "config.json",
    "model.safetensors",
    TOKENIZER_FILE,
    "coconut.json",
];

/// The files of a Hugging Face folder for one stage, by name ([`HF_FILES`]).
fn hf_files(weights: &ModelWeights, stage: &Stage) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let cfg = &weights.config;
    let config = json!({
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.n_positions,
        "n_ctx": cfg.n_positions,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": null,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": cfg.layer_norm_epsilon,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "scale_attn_weights": true,
        "tie_word_embeddings": true,
        "bos_token_id": BOT,
        "eos_token_id": EOS,
        "pad_token_id": PAD,
        "torch_dtype": "float32",
    });
    let mut hf = weights.convert(WeightDtype::F32);
    hf.tensors = hf
        .tensors
        .into_iter()
        .map(|(name, t)| (format!("transformer.{name}"), t))
        .collect();
    let coconut = json!({
        "stage": stage.id(),
        "thoughts": stage.thoughts(),
        "thoughts_per_step": stage.thoughts_per_step,
        "latent_steps": stage.latent_steps(),
        "all_latent": stage.is_all_latent(),
        "positions": stage.positions.scheme(),
        "answer_order": stage.answer_order,
        "ids_ahead": stage.positions.ahead(),
        "operand_pad": stage.positions.operand_pad(),
        "feeds_back": stage.feeds_back(),
        "bot_id": BOT,
        "eot_id": EOT,
        "eos_id": EOS,
        "latent_id": LATENT,
        "usage": "prompt = question ids + <bot>; then feed `thoughts` inputs_embeds: the last \
                  hidden state (hidden_states[-1], after ln_f) if feeds_back, else the <latent> \
                  token's embedding; then decode greedily until <eos>; the answer is between \
                  <eot> and <eos>, units first if answer_order = least_significant_first. \
                  With positions = coupled, pass position_ids: each token's \
                  column (docs/positions.md, core/src/curriculum/positions.rs), and feed (columns + 1) * c \
                  thoughts at the all-latent stage (min(latent_steps, columns + 1) * c before) \
                  instead of `thoughts`; with ids_ahead, each position from <bot> on takes the \
                  column of what follows it (docs/positions.md, \"Ahead\"); with operand_pad k \
                  (not null), write both operands with the longer one's digits and k more, \
                  leading zeros filling them, and count the columns so (docs/data-format.md, \
                  \"Padded operands\")",
    });
    Ok(vec![
        (
            HF_FILES[0],
            serde_json::to_string_pretty(&config)?.into_bytes(),
        ),
        (HF_FILES[1], hf.to_safetensors()),
        (HF_FILES[2], Tokenizer::new().to_json().into_bytes()),
        (
            HF_FILES[3],
            serde_json::to_string_pretty(&coconut)?.into_bytes(),
        ),
    ])
}

/// Reads a Hugging Face folder written by [`export_hf`] back (its files checked against
/// [`CHECKSUMS_FILE`] first): the config from `config.json` (its field names are `ModelConfig`'s)
/// and the f32 tensors under the `transformer.` prefix.
pub fn import_hf(dir: &Path) -> Result<ModelWeights> {
    let files = check_hf_folder(dir)?;
    let config_path = dir.join("config.json");
    let config: coconut_core::ModelConfig = serde_json::from_slice(&files["config.json"])
        .with_context(|| format!("{} is not a GPT-2 config", config_path.display()))?;
    config.validate()?;
    let model_path = dir.join("model.safetensors");
    let bytes = &files["model.safetensors"];
    let st = safetensors::SafeTensors::deserialize(bytes)
        .with_context(|| format!("{} is not valid safetensors", model_path.display()))?;
    let mut problem = None;
    let weights = ModelWeights::from_f32(config, |spec| {
        let name = format!("transformer.{}", spec.name);
        match st.tensor(&name) {
            Ok(v) if v.dtype() == safetensors::Dtype::F32 && v.shape() == spec.shape.as_slice() => {
                coconut_core::weights::le_f32(v.data())
            }
            _ => {
                problem.get_or_insert(name);
                vec![0.0; spec.shape.iter().product()]
            }
        }
    });
    if let Some(name) = problem {
        bail!(
            "{}: tensor {name} is missing or not f32 of the expected shape",
            model_path.display()
        );
    }
    Ok(weights)
}

/// The accuracy sets of a `coconut eval` JSON file, which must be about `stage_id`.
pub fn read_eval(path: &Path, stage_id: &str) -> Result<Accuracy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    match v["stage"].as_str() {
        Some(id) if id == stage_id => {}
        Some(id) => bail!(
            "{} evaluates {id}, not {stage_id}: give the eval file of the exported stage",
            path.display()
        ),
        None => bail!(
            "{}: no stage recorded (not a `coconut eval` file?)",
            path.display()
        ),
    }
    let sets = serde_json::from_value(v["sets"].clone())
        .with_context(|| format!("{}: no accuracy sets", path.display()))?;
    Ok(Accuracy { sets })
}

/// Writes a Hugging Face folder for a stage of the weights folder `weights` (int8 and f16
/// stages are written dequantized, in f32: the values every engine computes with); returns what
/// was written, in words.
pub fn export_from_weights(
    weights: &Path,
    stage: &str,
    format: ExportFormat,
    out: &Path,
    force: bool,
) -> Result<String> {
    if format != ExportFormat::Hf {
        bail!(
            "--weights exports to a Hugging Face folder only (--format hf): a weights folder's \
             stages are already int8, f16 or f32 files; re-export from the training run instead"
        );
    }
    let folder = coconut_core::manifest::WeightsDir::open(weights)?;
    let (entry, stage, model) = folder.stage(stage)?;
    export_hf(&model, &stage, out, weights, force)?;
    Ok(format!(
        "wrote {} ({}, stored as {:?}) of {} as a Hugging Face GPT-2 folder to {}",
        entry.id,
        stage.kind,
        entry.dtype,
        weights.display(),
        out.display()
    ))
}

/// Exports a trained stage of the run in `run_dir` into the weights folder `out` (int8, f16,
/// f32; with its accuracy from `eval` and its training facts in the manifest) or as a Hugging
/// Face folder (replacing one there only with `force`); returns what was written, in words.
pub fn export_from_run(
    run_dir: &Path,
    stage: &str,
    format: ExportFormat,
    out: &Path,
    eval: Option<&Path>,
    force: bool,
) -> Result<String> {
    let config = crate::run_dir::load_run_config(run_dir)?;
    let kind = stage.parse::<coconut_core::StageKind>();
    let plan = crate::StagePlan::new(kind.map_err(anyhow::Error::msg)?.to_string(), 1.0);
    let stage = config.stage(&plan)?;
    let run = crate::run_dir::RunDir(run_dir.to_path_buf());
    let path = run.stage_weights(&stage.id());
    let bytes = coconut_core::files::read_regular(&path, u64::MAX)
        .with_context(|| format!("reading {} (is the stage trained?)", path.display()))?;
    let weights =
        ModelWeights::from_safetensors(&bytes, &path.display().to_string(), Some(&config.model))?;
    let dtype = match format {
        ExportFormat::Weights(dtype) => dtype,
        ExportFormat::Hf => {
            export_hf(&weights, &stage, out, run_dir, force)?;
            return Ok(format!(
                "wrote a Hugging Face GPT-2 folder to {}",
                out.display()
            ));
        }
    };
    let accuracy = eval.map(|eval| read_eval(eval, &stage.id())).transpose()?;
    let run_info = crate::provenance::RunInfo::load(run_dir)?.unwrap_or_default();
    let info = run_info.for_stage(&stage.id()).clone();
    let record = read_stage_record(&run.checkpoint(), &stage.id())?;
    let training = TrainingFacts {
        git_commit: info.git_commits(),
        hardware: info.hardwares(),
        command: info.command,
        seed: config.seed,
        steps: record.as_ref().map_or(0, |r| r.steps),
        seconds: record.as_ref().map_or(0.0, |r| r.seconds),
    };
    let facts = StageFacts {
        accuracy,
        training: Some(training),
    };
    let entry = export_stage(&weights, &stage, dtype, &config.data, facts, out)?;
    Ok(format!(
        "wrote {} ({} bytes, {:?}) to {}",
        entry.file.file,
        entry.file.bytes,
        dtype,
        out.display()
    ))
}

/// Steps and seconds of a finished stage, from the run's checkpoint.
fn read_stage_record(
    checkpoint: &Path,
    id: &str,
) -> Result<Option<crate::checkpoint::StageRecord>> {
    if !checkpoint.exists() {
        return Ok(None);
    }
    let progress = crate::checkpoint::read_progress(checkpoint)?;
    Ok(progress.finished.into_iter().find(|r| r.id == id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coconut_core::manifest::WeightsDir;
    use coconut_core::stage::{Positions, StageKind};
    use coconut_core::weights::random_weights;
    use coconut_core::ModelConfig;

    fn tiny() -> ModelConfig {
        ModelConfig {
            // Stage 0 of 4-digit problems takes up to 72 positions.
            n_positions: 80,
            n_embd: 16,
            n_layer: 1,
            n_head: 2,
            ..ModelConfig::default()
        }
    }

    #[test]
    fn stages_accumulate_in_one_verified_folder() {
        let dir = tempfile::tempdir().unwrap();
        let w = random_weights(&tiny(), 3);
        let base = Stage::latent(0, 1, 5);
        for (stage, dtype) in [
            (Stage::latent(5, 1, 5), WeightDtype::Int8),
            (base, WeightDtype::F16),
            (base.with_kind(StageKind::Pause), WeightDtype::Int8),
            (Stage::latent(5, 1, 5), WeightDtype::Int8), // replaced, not duplicated
        ] {
            export_stage(
                &w,
                &stage,
                dtype,
                &DataConfig::default(),
                StageFacts::default(),
                dir.path(),
            )
            .unwrap();
        }
        let folder = WeightsDir::open(dir.path()).unwrap();
        let ids: Vec<&str> = folder
            .manifest
            .stages
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(ids, ["stage0", "stage5", "pause"]);
        let (entry, stage, loaded) = folder.stage("stage5").unwrap();
        assert_eq!((entry.thoughts, stage.thoughts()), (5, 5));
        assert_eq!(loaded, w.convert(WeightDtype::Int8));
        folder.tokenizer().unwrap();

        // A different model may not be mixed into the folder.
        let other = random_weights(
            &ModelConfig {
                n_layer: 2,
                ..tiny()
            },
            1,
        );
        let e = export_stage(
            &other,
            &base,
            WeightDtype::F32,
            &DataConfig::default(),
            StageFacts::default(),
            dir.path(),
        );
        assert!(e.unwrap_err().to_string().contains("different model"));

        // Another c: refused for a stage with thoughts, not for one without (nocot).
        let export_c2 = |stage: Stage| {
            export_stage(
                &w,
                &stage,
                WeightDtype::Int8,
                &DataConfig::default(),
                StageFacts::default(),
                dir.path(),
            )
        };
        let e = export_c2(Stage::latent(2, 2, 5)).unwrap_err().to_string();
        assert!(e.contains("c = 1"), "{e}");
        export_c2(Stage::latent(0, 2, 5).with_kind(StageKind::NoCot)).unwrap();
        let folder = WeightsDir::open(dir.path()).unwrap();
        assert_eq!(folder.manifest.thoughts_per_step, 1);
        assert_eq!(folder.stage("nocot").unwrap().0.thoughts, 0);

        // Ahead ids: recorded in the manifest, so a reader builds the same stage, and in the
        // Hugging Face folder's coconut.json.
        // Exported into the folder and as a Hugging Face folder: the manifest's entry, the stage
        // a reader builds from it, and coconut.json.
        let exported = |stage: Stage| {
            let entry = export_c2(stage).unwrap();
            let folder = WeightsDir::open(dir.path()).unwrap();
            let read = folder.manifest.stage("stage5").unwrap();
            let hf = tempfile::tempdir().unwrap();
            export_hf(&w, &stage, hf.path(), dir.path(), false).unwrap();
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(hf.path().join("coconut.json")).unwrap())
                    .unwrap();
            (entry, folder.manifest.stage_of(read), meta)
        };
        let ahead = Stage::latent(5, 1, 5).with_positions(Positions::coupled(true, None));
        let (entry, read, meta) = exported(ahead);
        assert!(entry.positions.ahead());
        assert_eq!(read, ahead);
        assert_eq!(meta["ids_ahead"], true);
        assert_eq!(meta["positions"], "coupled");
        assert_eq!(meta["operand_pad"], serde_json::Value::Null);

        // Padded operands: the same, in both files.
        let padded = ahead.with_positions(Positions::coupled(true, Some(2)));
        let (entry, read, meta) = exported(padded);
        assert_eq!(entry.positions.operand_pad(), Some(2));
        assert_eq!(read, padded);
        assert_eq!(meta["operand_pad"], 2);
    }

    #[test]
    fn hf_folder_has_gpt2_names_and_the_thought_contract() {
        let dir = tempfile::tempdir().unwrap();
        let w = random_weights(&tiny(), 4);
        let source = tempfile::tempdir().unwrap();
        export_hf(
            &w,
            &Stage::latent(3, 1, 5),
            dir.path(),
            source.path(),
            false,
        )
        .unwrap();
        let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let attn = st.tensor("transformer.h.0.attn.c_attn.weight").unwrap();
        assert_eq!(attn.shape(), [16, 48]); // Conv1D: [in, out]
        assert_eq!(attn.dtype(), safetensors::Dtype::F32);
        assert!(st.tensor("transformer.wte.weight").is_ok());
        assert!(st.tensor("lm_head.weight").is_err(), "the head stays tied");
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["activation_function"], "gelu_new");
        assert_eq!(config["n_layer"], 1);
        let coconut: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("coconut.json")).unwrap())
                .unwrap();
        assert_eq!(coconut["thoughts"], 3);
        assert_eq!(coconut["eot_id"], EOT);
        assert_eq!(import_hf(dir.path()).unwrap(), w);
        std::fs::write(dir.path().join("model.safetensors"), b"junk").unwrap();
        assert!(import_hf(dir.path()).is_err());
    }

    /// Every file under `dir` with its bytes.
    fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect()
    }

    #[test]
    fn an_export_failed_or_killed_at_any_step_leaves_the_folder_as_it_was() {
        use crate::folder::faults::{self, Failure};
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("weights");
        let w = random_weights(&tiny(), 3);
        let export = |stage: Stage| {
            export_stage(
                &w,
                &stage,
                WeightDtype::Int8,
                &DataConfig::default(),
                StageFacts::default(),
                &out,
            )
        };
        export(Stage::latent(2, 1, 5)).unwrap();
        std::fs::write(out.join("README.md"), b"not listed, kept").unwrap();
        let old = files(&out);
        let stage5 = Stage::latent(5, 1, 5);
        faults::fail_at(usize::MAX, Failure::Error);
        export(stage5).unwrap();
        let steps = faults::clear();
        let new = files(&out);
        copy_back(&out, &old);
        assert!(new.contains_key("stage5.safetensors") && new["README.md"] == old["README.md"]);
        for failure in [Failure::Error, Failure::Kill] {
            for at in 0..steps {
                faults::fail_at(at, failure);
                let result = export(stage5);
                faults::clear();
                let now = files(&out);
                if now == new {
                    // Only the old folder's removal comes after the swap.
                    assert!(result.is_ok(), "{failure:?} at {at}");
                    copy_back(&out, &old);
                } else {
                    assert!(result.is_err(), "{failure:?} at {at}");
                    assert_eq!(now, old, "{failure:?} at step {at}: {result:?}");
                }
                check_weights_folder(&out).unwrap();
            }
        }
    }

    /// Makes `dir` hold exactly `files`.
    fn copy_back(dir: &Path, files: &std::collections::BTreeMap<String, Vec<u8>>) {
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::create_dir(dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }

    #[test]
    fn an_hf_export_refuses_what_it_would_destroy_and_carries_checksums() {
        let tmp = tempfile::tempdir().unwrap();
        let w = random_weights(&tiny(), 4);
        let stage = Stage::latent(3, 1, 5);
        let weights = tmp.path().join("weights");
        export_stage(
            &w,
            &stage,
            WeightDtype::Int8,
            &DataConfig::default(),
            StageFacts::default(),
            &weights,
        )
        .unwrap();
        let before = files(&weights);
        let hf = |out: &Path, force: bool| {
            export_hf(&w, &stage, out, &weights, force).map_err(|e| format!("{e:#}"))
        };
        // The weights folder itself, even with --force, and a folder that holds it.
        for force in [false, true] {
            let e = hf(&weights, force).unwrap_err();
            assert!(e.contains("is a weights folder"), "{e}");
            let e = hf(tmp.path(), force).unwrap_err();
            assert!(e.contains("write the Hugging Face folder elsewhere"), "{e}");
        }
        assert_eq!(files(&weights), before);
        // A folder with other files: only with --force, and then replaced whole.
        let out = tmp.path().join("hf");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("notes.txt"), b"mine").unwrap();
        let e = hf(&out, false).unwrap_err();
        assert!(e.contains("is not empty: give --force"), "{e}");
        assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");
        hf(&out, true).unwrap();
        assert!(!out.join("notes.txt").exists());
        let sums = std::fs::read_to_string(out.join(CHECKSUMS_FILE)).unwrap();
        assert_eq!(sums.lines().count(), 4, "{sums}");
        for (name, bytes) in files(&out) {
            if name != CHECKSUMS_FILE {
                let line = format!("{}  {name}", coconut_core::manifest::sha256_hex(&bytes));
                assert!(sums.lines().any(|l| l == line), "{name}: {sums}");
            }
        }
        assert_eq!(import_hf(&out).unwrap(), w);
        // A file of another export (or cut short) is caught by its checksum.
        std::fs::write(out.join("coconut.json"), b"{}").unwrap();
        let e = format!("{:#}", import_hf(&out).unwrap_err());
        assert!(
            e.contains("coconut.json: its sha256 is not the one SHA256SUMS lists"),
            "{e}"
        );
    }
}
