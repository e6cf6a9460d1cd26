//! Every argument of the `coconut` command, in one place: the subcommands and their flags
//! (clap), and how the training flags make a run's settings.

use crate::limits::{self, count, steps, MAX_PROBLEMS};
use anyhow::{anyhow, Context, Result};
use clap::{Args, Parser, Subcommand};
use coconut_core::positions::PositionIds;
use coconut_core::seed::layout::ThoughtCount;
use coconut_trainer::export::ExportFormat;
use coconut_trainer::run_dir::load_run_config;
use coconut_trainer::{StagePlan, TrainConfig};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "coconut",
    version,
    about = "Coconut latent-reasoning lab: train and evaluate the addition curriculum"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train the curriculum (or a baseline) into a run directory; resumable.
    Train(Box<TrainArgs>),
    /// Greedy and teacher-forced accuracy of a stage, by digit count.
    Eval(EvalArgs),
    /// Answer problems with a shipped stage (arguments, or one per line on stdin).
    Solve(SolveArgs),
    /// Add a trained stage to a weights folder (int8, f16, f32) or write a Hugging Face folder.
    Export(ExportArgs),
    /// Draw a run's training curve (SVG).
    Plot(PlotArgs),
    /// Write golden activations of fixed problems for every stage of a weights folder.
    Golden(GoldenArgs),
    /// Fit linear probes that read each thought of the latent stages (written digit, carry out,
    /// input sum of every column) and score them on held-out problems.
    Probe(ProbeArgs),
    /// Solve problems as trained and with thoughts edited (replaced, zeroed, carry flipped).
    Intervene(InterveneArgs),
    /// Import a GPT-2 trained elsewhere (a torch.save state dict such as the seed's stage*.pt,
    /// or a Hugging Face folder) as one stage of a weights folder.
    Import(ImportArgs),
}

/// `coconut import`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["pt", "hf"])))]
pub struct ImportArgs {
    /// A `torch.save(model.state_dict())` file of a `GPT2LMHeadModel` (read without running
    /// any of its code: only a plain state dict is accepted).
    #[arg(long)]
    pub pt: Option<PathBuf>,
    /// A Hugging Face GPT-2 folder (config.json, model.safetensors or pytorch_model.bin).
    #[arg(long)]
    pub hf: Option<PathBuf>,
    /// Which stage of the seed's curriculum the checkpoint is: stage0 (steps written) to stage3
    /// (every step a thought).
    #[arg(long)]
    pub stage: String,
    /// The layouts it was trained with: seed (docs/seed-format.md).
    #[arg(long, default_value = "seed", value_parser = layout_family)]
    pub layout: coconut_core::family::LayoutFamily,
    /// Attention heads (a state dict does not say; GPT-2-large has 20, GPT-2 small 12).
    #[arg(long, value_parser = count::<1, { limits::MAX_HEADS }>)]
    pub n_head: Option<usize>,
    /// How the matrices are stored: int8 (a quarter of f32), f16 or f32.
    #[arg(long, default_value = "int8")]
    pub dtype: coconut_core::weights::WeightDtype,
    /// The weights folder to write (made if missing; other stages of the same model kept).
    #[arg(long)]
    pub out: PathBuf,
    /// The largest piece a stage file is stored in, in MiB (1-64): a larger one is written as
    /// numbered pieces, each fetched, checked and cached by the page on its own.
    #[arg(long, default_value_t = 64, value_parser = count::<1, 64>)]
    pub shard_mb: usize,
}

fn layout_family(name: &str) -> Result<coconut_core::family::LayoutFamily, String> {
    use coconut_core::family::LayoutFamily;
    match name {
        "seed" => Ok(LayoutFamily::Seed),
        "coconut-lab" => Ok(LayoutFamily::Coconut),
        other => Err(format!(
            "unknown layout '{other}': expected seed or coconut-lab"
        )),
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// Run directory: config.json, checkpoint, metrics.jsonl, stages/.
    #[arg(long, default_value = "runs/default")]
    pub run_dir: PathBuf,
    /// Continue the run in --run-dir from its checkpoint, with its own config.json.
    #[arg(long)]
    pub resume: bool,
    /// Settings file (a TrainConfig as JSON; missing fields take the defaults). Flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Fine-tune the GPT-2 in this weights folder (made by `coconut import --layout seed`) with
    /// --recipe, instead of training this project's own model from scratch.
    #[arg(long, requires = "recipe", conflicts_with_all = ["config", "branch_from"])]
    pub init: Option<PathBuf>,
    /// With --init: the recipe, seed (the seed's curriculum, docs/seed-format.md) or
    /// coconut-lab (this project's on the same model and data: the first steps latent, the loss
    /// on the steps and the answer, each stage ended on validation, docs/training.md).
    #[arg(long, requires = "init", value_parser = ["seed", "coconut-lab"])]
    pub recipe: Option<String>,
    /// With --init: the folder's stage to start from (default: its first).
    #[arg(long, requires = "init")]
    pub init_stage: Option<String>,
    /// With --init: the weights folder the finished stages are written to (default:
    /// RUN_DIR/weights).
    #[arg(long, requires = "init")]
    pub out: Option<PathBuf>,
    /// With --init: how the finished stages are stored (f32, the default, f16 or int8).
    #[arg(long, requires = "init")]
    pub dtype: Option<coconut_core::weights::WeightDtype>,
    /// With --init: optimizer steps per stage, instead of the recipe's epochs (a short run).
    #[arg(long, requires = "init", value_parser = steps::<1, { limits::MAX_STEPS }>)]
    pub steps: Option<u64>,
    /// With --init: compute each batch N examples at a time, gradients summed (the same step in
    /// less memory).
    #[arg(long, requires = "init", value_parser = count::<1, { limits::MAX_BATCH }>)]
    pub micro_batch: Option<usize>,
    /// With --init: the training steps' matrix products in f32 (the default, the reference) or
    /// bf16 (mixed precision: bf16 copies of the weights and inputs of the linear layers and
    /// the head; weights, gradients, moments, LayerNorm, softmax and loss in f32). The candle
    /// model only (--device cuda, or --engine candle).
    #[arg(long, requires = "init")]
    pub precision: Option<coconut_trainer::model::Precision>,
    /// With --init: recompute each block's activations in the backward pass instead of keeping
    /// them (one more forward a step, far less memory). The candle model only.
    #[arg(long, requires = "init")]
    pub activation_checkpointing: bool,
    /// With --init: each stage trains on the first N of the seed's training problems (default:
    /// the recipe's, 100,000 at stage 0 and 20,000 after).
    #[arg(long, requires = "init", value_parser = count::<1, { limits::SEED_TRAIN_PROBLEMS }>)]
    pub train_problems: Option<usize>,
    /// Start this new run from another run's stage boundary: that run's earlier stages are taken
    /// as they are (weights, steps, seconds, metrics), and its config.json is the base the flags
    /// change (only the plans of --branch-at and later stages may differ).
    #[arg(long, requires = "branch_at", conflicts_with = "resume")]
    pub branch_from: Option<PathBuf>,
    /// The first stage the branch trains (e.g. stage4).
    #[arg(long, requires = "branch_from")]
    pub branch_at: Option<String>,
    /// Stages to train, in order: e.g. 0,1,2,3,4,5 or nocot or pause.
    #[arg(long, value_delimiter = ',', value_parser = stage_name)]
    pub stages: Option<Vec<String>>,
    /// Epochs per stage (the last value repeats for the remaining stages).
    #[arg(long, allow_negative_numbers = true, value_delimiter = ',', value_parser = limits::epochs)]
    pub epochs: Option<Vec<f64>>,
    #[arg(long, value_parser = count::<1, { limits::MAX_THOUGHTS_PER_STEP }>)]
    pub thoughts_per_step: Option<usize>,
    /// Position ids: absolute (GPT-2's) or coupled (by column, so longer problems reuse trained
    /// ids; see docs/positions.md).
    #[arg(long)]
    pub positions: Option<coconut_core::positions::PositionScheme>,
    /// With --positions coupled: each example's column ids start at a random offset in
    /// 0..=N, so ids of longer problems are trained too.
    #[arg(long, value_parser = count::<0, { limits::MAX_ID_SPREAD }>)]
    pub max_position_offset: Option<usize>,
    /// Rows of the position table (the longest sequence).
    #[arg(long, value_parser = count::<1, { limits::MAX_POSITIONS }>)]
    pub n_positions: Option<usize>,
    /// Which steps latent stages replace: first (Coconut's order, the default) or last (the
    /// published attempt's: the first steps written, then the model writes <latent> and thinks).
    #[arg(long)]
    pub latent_order: Option<coconut_core::stage::LatentOrder>,
    /// The order of the answer's digits: msd-first (the default, as people write numbers) or
    /// lsd-first (units first, as position coupling's paper trains addition).
    #[arg(long)]
    pub answer_order: Option<coconut_core::stage::AnswerOrder>,
    /// With --positions coupled: each position from <bot> on takes the column of what follows
    /// it (an experiment; docs/positions.md, "Ahead").
    #[arg(long)]
    pub ids_ahead: bool,
    /// With --positions coupled: each example spaces its column ids by random extra gaps in
    /// 0..=N (training only).
    #[arg(long, value_parser = count::<0, { limits::MAX_ID_SPREAD }>)]
    pub max_column_gap: Option<usize>,
    /// With --positions coupled: each training example gives each latent column up to N
    /// thoughts more than --thoughts-per-step (an experiment).
    #[arg(long, value_parser = count::<0, { limits::MAX_THOUGHTS_PER_STEP }>)]
    pub max_extra_thoughts: Option<usize>,
    /// With --positions coupled: each training answer gets 0..=N extra leading zeros above the
    /// carry column (an experiment).
    #[arg(long, value_parser = count::<0, { limits::MAX_ID_SPREAD }>)]
    pub max_answer_pad: Option<usize>,
    /// With --positions coupled: every stage writes both operands with the longer one's digits
    /// and N more, leading zeros filling them (`00347 + 00085` for N = 2), so no column misses
    /// a digit; the manifest records it and every engine writes questions so.
    #[arg(long, value_parser = count::<0, { limits::MAX_ID_SPREAD }>)]
    pub operand_pad: Option<usize>,
    /// With --operand-pad: each training example pads its operands by 0..=N columns instead,
    /// so the chain of columns is trained longer than the trained numbers are.
    #[arg(long, value_parser = count::<0, { limits::MAX_ID_SPREAD }>)]
    pub max_operand_pad: Option<usize>,
    /// Standard deviation of Gaussian noise added in training to every thought fed back, as a
    /// fraction of the thought's root mean square (an experiment; CPU engine only).
    #[arg(long, allow_negative_numbers = true, value_parser = limits::noise)]
    pub thought_noise: Option<f64>,
    /// GPT-2's dropout in training: the probability that an element of the input embeddings
    /// or of a block's attention or MLP output is zeroed (CPU engine only; attention
    /// probabilities are not dropped).
    #[arg(long, allow_negative_numbers = true, value_parser = limits::dropout)]
    pub dropout: Option<f64>,
    /// Keep a moving average of the weights within each stage with this decay (e.g. 0.999):
    /// validation, each stage's weights and the next stage's start are the average's.
    #[arg(long, allow_negative_numbers = true, value_parser = limits::decay)]
    pub ema_decay: Option<f64>,
    #[arg(long, value_parser = count::<1, { limits::MAX_BATCH }>)]
    pub batch_size: Option<usize>,
    #[arg(long, allow_negative_numbers = true, value_parser = limits::rate)]
    pub lr: Option<f64>,
    /// A stage's own peak learning rate, e.g. stage4=5e-4,stage5=5e-4 (the others keep --lr).
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| stage_setting(s, limits::rate))]
    pub stage_lr: Option<Vec<StageSetting>>,
    /// A stage's own data mixing, e.g. stage4=0.2 (the others keep --mix).
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| stage_setting(s, limits::fraction))]
    pub stage_mix: Option<Vec<StageSetting>>,
    /// A stage's own --until-val, e.g. stage4=99.95, or stage5=off: no early end, the stage
    /// trains all its epochs (the others keep --until-val).
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| stage_setting(s, limits::percent_or_off))]
    pub stage_until_val: Option<Vec<StageSetting>>,
    /// Extra copies per epoch of a training problem for each column beyond the first whose
    /// digits sum to 9 (long carry chains), in a stage, e.g. stage4=3,stage5=3.
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| stage_setting(s, repeat_copies))]
    pub stage_repeat_nines: Option<Vec<StageSetting>>,
    /// A stage's own seed for its data order and other draws, e.g. stage5=7 (the others keep
    /// --seed; a branch may retrain a stage with other draws).
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| stage_setting(s, stage_seed))]
    pub stage_seed: Option<Vec<StageSetting>>,
    /// A stage's own --max-operand-pad, e.g. stage5=14: the all-latent stage's chain of
    /// thoughts trained as long as a 16-digit problem's (the other stages, and the earlier
    /// stages mixed into this one, keep --max-operand-pad).
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| stage_setting(s, id_spread))]
    pub stage_max_operand_pad: Option<Vec<StageSetting>>,
    /// A stage's own --thought-noise, e.g. stage5=0.3 (the others keep --thought-noise).
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| stage_setting(s, limits::noise))]
    pub stage_thought_noise: Option<Vec<StageSetting>>,
    /// A stage's own --dropout, e.g. stage5=0.1 (the others keep --dropout).
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| stage_setting(s, limits::dropout))]
    pub stage_dropout: Option<Vec<StageSetting>>,
    /// AdamW's weight decay, 0 to 1.
    #[arg(long, allow_negative_numbers = true, value_parser = limits::fraction)]
    pub weight_decay: Option<f64>,
    #[arg(long, value_parser = steps::<0, { limits::MAX_STEPS }>)]
    pub warmup_steps: Option<u64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this many seconds (checkpointed; continue with --resume).
    #[arg(long, allow_negative_numbers = true, value_parser = limits::seconds)]
    pub time_budget: Option<f64>,
    #[arg(long, value_parser = steps::<1, { limits::MAX_STEPS }>)]
    pub checkpoint_every: Option<u64>,
    #[arg(long, value_parser = count::<1, { limits::MAX_TRAIN_PROBLEMS }>)]
    pub n_train: Option<usize>,
    #[arg(long, value_parser = count::<1, { limits::MAX_DIGITS }>)]
    pub max_digits: Option<usize>,
    #[arg(long, value_parser = count::<1, { limits::MAX_LAYERS }>)]
    pub layers: Option<usize>,
    #[arg(long, value_parser = count::<1, { limits::MAX_WIDTH }>)]
    pub width: Option<usize>,
    #[arg(long, value_parser = count::<1, { limits::MAX_HEADS }>)]
    pub heads: Option<usize>,
    /// Validation problems evaluated after each stage (0: none; at most the validation set).
    #[arg(long, value_parser = count::<0, { limits::MAX_VAL_PROBLEMS }>)]
    pub val_problems: Option<usize>,
    /// End each stage once greedy validation accuracy reaches this percentage (checked every
    /// --val-every steps; --epochs is then the most a stage may take).
    #[arg(long, allow_negative_numbers = true, value_parser = limits::percent)]
    pub until_val: Option<f64>,
    /// Steps between validation checks of stages with --until-val.
    #[arg(long, value_parser = steps::<0, { limits::MAX_STEPS }>)]
    pub val_every: Option<u64>,
    /// How many validation checks in a row must reach a stage's --until-val to end it
    /// (default 1: the first that does).
    #[arg(long, value_parser = steps::<1, { coconut_trainer::config::MAX_VAL_CONFIRM }>)]
    pub val_confirm: Option<u64>,
    /// Data mixing: the probability that an example of latent stage k takes the layout of a
    /// random earlier stage (CPU engine).
    #[arg(long, allow_negative_numbers = true, value_parser = limits::fraction)]
    pub mix: Option<f64>,
    /// Engine: auto (the CPU engine on the CPU, candle elsewhere), cpu or candle.
    #[arg(long)]
    pub engine: Option<String>,
    /// cpu, or cuda[:N] in a `cuda` build.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl TrainArgs {
    /// The config file (or the defaults) with the flags applied.
    pub fn config(&self) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => match &self.branch_from {
                Some(parent) => load_run_config(parent)?,
                None => TrainConfig::default(),
            },
        };
        if let Some(stages) = &self.stages {
            let epochs: Vec<f64> = c.stages.iter().map(|p| p.epochs).collect();
            c.stages = stages
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let stage = stage_id(s)?;
                    let epochs = *epochs.get(i).or(epochs.last()).unwrap_or(&1.0);
                    Ok(StagePlan::new(stage, epochs))
                })
                .collect::<Result<_>>()?;
        }
        if let Some(epochs) = &self.epochs {
            for (i, plan) in c.stages.iter_mut().enumerate() {
                if let Some(&e) = epochs.get(i).or(epochs.last()) {
                    plan.epochs = e;
                }
            }
        }
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {
                $(if let Some(v) = self.$flag { c.$($field).+ = v; })*
            };
        }
        set!(
            thoughts_per_step => thoughts_per_step, batch_size => batch_size, lr => lr,
            weight_decay => weight_decay, warmup_steps => warmup_steps, seed => seed,
            checkpoint_every => checkpoint_every, n_train => data.n_train,
            max_digits => data.max_digits, layers => model.n_layer, width => model.n_embd,
            heads => model.n_head, val_problems => val_problems, mix => mix,
            max_position_offset => max_position_offset,
            n_positions => model.n_positions, latent_order => latent_order,
            answer_order => answer_order, max_column_gap => max_column_gap,
            thought_noise => thought_noise, dropout => dropout,
            max_extra_thoughts => max_extra_thoughts,
            max_answer_pad => max_answer_pad, max_operand_pad => max_operand_pad,
        );
        if self.ema_decay.is_some() {
            c.ema_decay = self.ema_decay;
        }
        // The flags override the settings file's position ids, option by option, and go
        // through the one check of their combination.
        c.positions = PositionIds::from_fields(
            self.positions.unwrap_or(c.positions.scheme()),
            self.ids_ahead || c.positions.ahead(),
            self.operand_pad.or(c.positions.operand_pad()),
        )
        .map_err(|e| anyhow!("--ids-ahead and --operand-pad need --positions coupled ({e})"))?;
        if self.time_budget.is_some() {
            c.time_budget_s = self.time_budget;
        }
        if self.until_val.is_some() {
            for plan in &mut c.stages {
                plan.until_val = self.until_val;
            }
        }
        self.apply_stage_settings(&mut c)?;
        if let Some(v) = self.val_every {
            c.val_every = v;
        }
        if let Some(v) = self.val_confirm {
            c.val_confirm = v;
        }
        if let Some(engine) = &self.engine {
            c.engine = serde_json::from_value(serde_json::Value::String(engine.clone()))
                .with_context(|| format!("--engine is auto, cpu or candle, not {engine}"))?;
        }
        Ok(c)
    }

    /// Each `--stage-*` flag with its values, if given.
    pub fn stage_settings(&self) -> [(&'static str, &Option<Vec<StageSetting>>); 8] {
        [
            ("--stage-lr", &self.stage_lr),
            ("--stage-mix", &self.stage_mix),
            ("--stage-until-val", &self.stage_until_val),
            ("--stage-repeat-nines", &self.stage_repeat_nines),
            ("--stage-seed", &self.stage_seed),
            ("--stage-max-operand-pad", &self.stage_max_operand_pad),
            ("--stage-thought-noise", &self.stage_thought_noise),
            ("--stage-dropout", &self.stage_dropout),
        ]
    }

    /// Each `--stage-*` value into its stage's plan.
    fn apply_stage_settings(&self, c: &mut TrainConfig) -> Result<()> {
        for (flag, settings) in self.stage_settings() {
            for setting in settings.iter().flatten() {
                let plan = c
                    .stages
                    .iter_mut()
                    .find(|p| p.stage == setting.stage)
                    .with_context(|| {
                        format!(
                            "{flag} {setting}: {} is not a stage of this run",
                            setting.stage
                        )
                    })?;
                // Each value was held to its flag's range when parsed (whole numbers included).
                let value = setting.value;
                match flag {
                    "--stage-lr" => plan.lr = Some(value),
                    "--stage-mix" => plan.mix = Some(value),
                    "--stage-repeat-nines" => plan.repeat_nines = Some(value as usize),
                    "--stage-seed" => plan.seed = Some(value as u64),
                    "--stage-max-operand-pad" => plan.max_operand_pad = Some(value as usize),
                    "--stage-dropout" => plan.dropout = Some(value),
                    "--stage-thought-noise" => plan.thought_noise = Some(value),
                    // `off` parses to infinity: no stopping rule.
                    _ => plan.until_val = value.is_finite().then_some(value),
                }
            }
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct EvalArgs {
    /// A run directory: its config.json and stages/<stage>.safetensors.
    #[arg(long, conflicts_with = "weights")]
    pub run_dir: Option<PathBuf>,
    /// A weights folder (manifest.json and the stage files) instead of a run directory: the
    /// stage's settings and the test set come from its manifest.
    #[arg(long, required_unless_present = "run_dir")]
    pub weights: Option<PathBuf>,
    /// The stage: 0..5, stageN, nocot or pause.
    #[arg(long, value_parser = stage_name)]
    pub stage: String,
    /// Problems of the test set to evaluate (all of them when the set is smaller).
    #[arg(long, default_value_t = 5000, value_parser = count::<1, MAX_PROBLEMS>)]
    pub n: usize,
    /// Problems of the out-of-distribution (longer) set to evaluate (0: skip).
    #[arg(long, default_value_t = 1000, value_parser = count::<0, MAX_PROBLEMS>)]
    pub n_ood: usize,
    /// Also evaluate --n-ood problems with both operands of each of these digit counts, e.g.
    /// 5,6,8 (sets `ood5`, `ood6`, `ood8`; longer than any trained on).
    #[arg(long, value_delimiter = ',', value_parser = count::<1, { limits::MAX_DIGITS }>)]
    pub longer: Vec<usize>,
    /// Also evaluate every operand-length pair whose longer operand has one of these digit
    /// counts, both orders, --n-per-pair problems each with long carry chains among them, e.g.
    /// 5,6,7,8 (set `pairs`, a figure per pair and per carry-chain length).
    #[arg(long, value_delimiter = ',', value_parser = count::<2, { limits::MAX_DIGITS }>)]
    pub pairs: Vec<usize>,
    /// Problems per operand-length pair of --pairs (with --pairs, at most
    /// 1,000,000 problems in all).
    #[arg(long, default_value_t = 200, value_parser = count::<1, MAX_PROBLEMS>)]
    pub n_per_pair: usize,
    #[arg(long, default_value_t = 256, value_parser = count::<1, { limits::MAX_BATCH }>)]
    pub batch_size: usize,
    /// Also write the accuracies as JSON there (the input of `coconut export --eval`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write the test problems answered wrong (greedy), one `a + b` per line: the input
    /// `coconut solve` takes, to see what the model wrote.
    #[arg(long)]
    pub wrong: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `coconut solve`.
#[derive(Args, Debug)]
pub struct SolveArgs {
    /// Problems such as "347 + 285" (unquoted, `347 + 285` works too); without any, one problem
    /// per line is read from stdin.
    pub problems: Vec<String>,
    /// The stage: 0..K, stageN, nocot or pause (default: the all-latent stage).
    #[arg(long)]
    pub stage: Option<String>,
    /// A weights folder (manifest.json, tokenizer.json, stage files).
    #[arg(long, default_value = "weights")]
    pub weights: PathBuf,
    #[arg(long, value_enum, default_value_t = EngineKind::Reference)]
    pub engine: EngineKind,
    /// One JSON object per input line.
    #[arg(long)]
    pub json: bool,
    /// For a folder of the seed's family: how many thoughts a problem gets, counted from the
    /// operands (columns, columns-plus-one) or from its own steps (gold, which tells the model
    /// whether the sum has an extra digit, as the seed's loop did).
    #[arg(long, default_value = "columns", value_parser = protocol)]
    pub thoughts: coconut_core::seed::layout::ThoughtCount,
}

/// `coconut export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The training run: its config.json, stages/<stage>.safetensors, checkpoint and run.json.
    #[arg(long, default_value = "runs/default")]
    pub run_dir: PathBuf,
    /// Export from a weights folder (manifest.json and its stage files, e.g. the shipped
    /// `weights`) instead of a training run; only `--format hf`.
    #[arg(long, conflicts_with_all = ["run_dir", "eval"])]
    pub weights: Option<PathBuf>,
    /// The stage: 0..K, stageN, nocot or pause.
    #[arg(long)]
    pub stage: String,
    /// int8, f16 or f32 (into a weights folder), or hf (a Hugging Face GPT2LMHeadModel folder).
    #[arg(long, default_value = "int8")]
    pub format: ExportFormat,
    /// The weights folder to add the stage to (or the Hugging Face folder to write).
    #[arg(long, default_value = "weights")]
    pub out: PathBuf,
    /// With --format hf: replace a folder that is not empty (never a weights folder).
    #[arg(long)]
    pub force: bool,
    /// The JSON written by `coconut eval` for this stage, copied into the manifest (refused if it
    /// evaluates another stage).
    #[arg(long)]
    pub eval: Option<PathBuf>,
}

/// `coconut plot`.
#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A run directory (reads its metrics.jsonl).
    #[arg(long, default_value = "runs/default")]
    pub run_dir: PathBuf,
    /// The picture to write (SVG); default: <run-dir>/training-curve.svg.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `coconut golden`.
#[derive(Args, Debug)]
pub struct GoldenArgs {
    /// A weights folder (manifest.json and stage files).
    #[arg(long, default_value = "weights")]
    pub weights: PathBuf,
    /// Where to write the JSON; default: <weights>/golden.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `coconut probe`.
#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// A weights folder (manifest.json and stage files).
    #[arg(long, default_value = "weights")]
    pub weights: PathBuf,
    /// Stages to probe (`3`, `stage3`, ...; comma-separated); default: every stage with fed-back
    /// thoughts.
    #[arg(long, value_delimiter = ',', value_parser = stage_name)]
    pub stages: Vec<String>,
    /// Training problems whose thoughts fit the probes.
    #[arg(long, default_value_t = 5000, value_parser = count::<1, MAX_PROBLEMS>)]
    pub n_fit: usize,
    /// Held-out test problems whose thoughts score them.
    #[arg(long, default_value_t = 5000, value_parser = count::<1, MAX_PROBLEMS>)]
    pub n_test: usize,
    /// Also write every score as JSON there.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write each stage's probes as `<stage>.probes.safetensors` into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also ship the probes with the weights: each stage's digit and carry probes (f16, with
    /// their scores) into the weights folder, listed in its manifest (size, sha256), where the
    /// page and `coconut intervene` find them.
    #[arg(long)]
    pub ship: bool,
}

/// `coconut intervene`.
#[derive(Args, Debug)]
pub struct InterveneArgs {
    /// Problems such as "347 + 285" (unquoted works too).
    #[arg(required_unless_present_any = ["measure", "measure_flips"])]
    pub problems: Vec<String>,
    /// The stage: 1..K or stageN (default: the all-latent stage).
    #[arg(long)]
    pub stage: Option<String>,
    /// A weights folder (manifest.json, tokenizer.json, stage files).
    #[arg(long, default_value = "weights")]
    pub weights: PathBuf,
    /// An edit of thought J (from 0), repeatable: `J=zero`, `J=from:A+B` (thought J of the
    /// problem A + B on the same stage), `J=flip:C` (reflect thought J across the boundary of
    /// column C's carry probe; needs --probes).
    #[arg(long, required_unless_present_any = ["measure", "measure_flips"])]
    pub patch: Vec<coconut_core::intervention::PatchSpec>,
    /// The stage's probes, as `coconut probe --out` writes them (`<stage>.probes.safetensors`);
    /// default: those the weights folder ships for the stage (`coconut probe --ship`).
    #[arg(long)]
    pub probes: Option<PathBuf>,
    /// One JSON object per problem.
    #[arg(long)]
    pub json: bool,
    /// Instead of solving problems: for this many pairs of held-out problems (A, B), replace
    /// each thought of A in turn by B's and count how often the answer's digits follow B (every
    /// stage with fed-back thoughts, or --stage).
    #[arg(long, conflicts_with_all = ["problems", "patch", "probes", "json"],
          value_parser = count::<1, { limits::MAX_MEASURED }>)]
    pub measure: Option<usize>,
    /// Instead of solving problems: on this many held-out problems, flip each column's carry
    /// probe at each thought in turn and count how often the answer moves as the flipped carry
    /// would (every stage whose folder ships probes, or --stage).
    #[arg(long, conflicts_with_all = ["problems", "patch", "probes", "json", "measure"],
          value_parser = count::<1, { limits::MAX_MEASURED }>)]
    pub measure_flips: Option<usize>,
    /// With --measure or --measure-flips: also write the effects as JSON there.
    #[arg(long)]
    pub measure_json: Option<PathBuf>,
    /// For a folder of the seed's family: how many thoughts a problem gets (as `solve
    /// --thoughts`).
    #[arg(long, default_value = "columns", value_parser = protocol)]
    pub thoughts: coconut_core::seed::layout::ThoughtCount,
}

/// The id of a stage named on the command line (`3`, `stage3`, `nocot`, `pause`).
pub fn stage_id(name: &str) -> Result<String> {
    Ok(name
        .parse::<coconut_core::StageKind>()
        .map_err(anyhow::Error::msg)?
        .to_string())
}

/// A stage named on the command line, as its id (clap's `value_parser`).
fn stage_name(name: &str) -> Result<String, String> {
    stage_id(name).map_err(|e| e.to_string())
}

/// One stage's own value of a setting (`--stage-lr stage4=5e-4`): the stage's id and the value,
/// held to the flag's range when parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct StageSetting {
    pub stage: String,
    pub value: f64,
    /// As given, for messages.
    pub text: String,
}

impl std::fmt::Display for StageSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn stage_setting(
    text: &str,
    value: impl Fn(&str) -> Result<f64, String>,
) -> Result<StageSetting, String> {
    let (stage, number) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}': expected STAGE=VALUE, e.g. stage4=0.5"))?;
    Ok(StageSetting {
        stage: stage_name(stage).map_err(|e| format!("'{text}': {e}"))?,
        value: value(number).map_err(|e| format!("'{text}': {e}"))?,
        text: text.to_string(),
    })
}

/// Extra copies of a long carry chain: a whole number up to the trainer's limit.
fn repeat_copies(text: &str) -> Result<f64, String> {
    count::<0, { coconut_trainer::config::MAX_REPEAT_NINES }>(text).map(|n| n as f64)
}

/// A spread of ids or columns: a whole number up to the CLI's limit.
fn id_spread(text: &str) -> Result<f64, String> {
    count::<0, { limits::MAX_ID_SPREAD }>(text).map(|n| n as f64)
}

/// A stage's seed: a whole number up to 2^53 (a value beyond would not survive JSON readers).
fn stage_seed(text: &str) -> Result<f64, String> {
    count::<0, { 1 << 53 }>(text).map(|n| n as f64)
}

impl Cli {
    /// What one value's parser cannot see: a name given twice in a list. Refused like a bad value
    /// (a clap error: usage, exit 2), before anything runs.
    pub fn check(&self) -> Result<(), clap::Error> {
        let twice = |flag: &str, name: &dyn std::fmt::Display| {
            <Cli as clap::CommandFactory>::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("{flag}: {name} is given twice"),
            )
        };
        match &self.command {
            Command::Train(t) => {
                if let Some(s) = t
                    .stages
                    .as_deref()
                    .and_then(|s| limits::first_repeat(s, String::clone))
                {
                    return Err(twice("--stages", s));
                }
                for (flag, settings) in t.stage_settings() {
                    let settings = settings.as_deref().unwrap_or_default();
                    if let Some(s) = limits::first_repeat(settings, |s| s.stage.clone()) {
                        return Err(twice(flag, &s.stage));
                    }
                }
            }
            Command::Eval(e) => {
                if let Some(d) = limits::first_repeat(&e.longer, |d| *d) {
                    return Err(twice("--longer", d));
                }
                if let Some(d) = limits::first_repeat(&e.pairs, |d| *d) {
                    return Err(twice("--pairs", d));
                }
            }
            Command::Probe(p) => {
                if let Some(s) = limits::first_repeat(&p.stages, String::clone) {
                    return Err(twice("--stages", s));
                }
            }
            Command::Intervene(i) => {
                if let Some(p) = limits::first_repeat(&i.patch, |p| p.slot()) {
                    let both: Vec<String> = (i.patch.iter())
                        .filter(|q| q.slot() == p.slot())
                        .map(ToString::to_string)
                        .collect();
                    return Err(<Cli as clap::CommandFactory>::command().error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "--patch: thought {} is edited twice ({}): one edit per thought",
                            p.slot(),
                            both.join("; ")
                        ),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Which implementation of the model answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// core's plain-Rust reference engine (the oracle).
    Reference,
    /// The trainer's candle model.
    Candle,
    /// The trainer's hand-written CPU engine (what `coconut eval` runs on the CPU).
    Cpu,
    /// The WGSL engine on wgpu (Vulkan or GL natively; lavapipe works without a GPU).
    Wgpu,
}

/// The thought-count protocols, by their command-line names.
pub const PROTOCOLS: [(&str, ThoughtCount); 3] = [
    ("gold", ThoughtCount::Gold),
    ("columns", ThoughtCount::Columns),
    ("columns-plus-one", ThoughtCount::ColumnsPlusOne),
];

pub fn protocol(name: &str) -> Result<ThoughtCount, String> {
    PROTOCOLS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            format!("unknown protocol '{name}': expected gold, columns or columns-plus-one")
        })
}
