//! `coconut`: train the curriculum, evaluate stages.

use anyhow::{ensure, Context, Result};
use candle_core::Device;
use clap::{Args, Parser, Subcommand};
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::ModelWeights;
use coconut_trainer::branch::Branch;
use coconut_trainer::eval::{evaluate, table};
use coconut_trainer::train::{
    self, load_run_config, Observer, Outcome, RunDir, StepMetrics, TrainOptions,
};
use coconut_trainer::{Gpt, StagePlan, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "coconut",
    version,
    about = "Coconut latent-reasoning lab: train and evaluate the addition curriculum"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the curriculum (or a baseline) into a run directory; resumable.
    Train(Box<TrainArgs>),
    /// Greedy and teacher-forced accuracy of a stage, by digit count.
    Eval(EvalArgs),
    /// Answer problems with a shipped stage (arguments, or one per line on stdin).
    Solve(coconut_trainer::solve::SolveArgs),
    /// Add a trained stage to a weights folder (int8, f16, f32) or write a Hugging Face folder.
    Export(coconut_trainer::export::ExportArgs),
    /// Draw a run's training curve (SVG).
    Plot(coconut_trainer::plot::PlotArgs),
    /// Write golden activations of fixed problems for every stage of a weights folder.
    Golden(coconut_trainer::golden::GoldenArgs),
}

/// Errors end the program with one readable message (the cause chain, no backtrace) and exit 2;
/// `solve` exits 1 when it refused a line.
fn main() -> std::process::ExitCode {
    match run(Cli::parse().command) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<u8> {
    match command {
        Command::Train(args) => run_train(*args).map(|_| 0),
        Command::Eval(args) => run_eval(args).map(|_| 0),
        Command::Solve(args) => coconut_trainer::solve::run_solve(args),
        Command::Export(args) => coconut_trainer::export::run_export(args).map(|_| 0),
        Command::Plot(args) => coconut_trainer::plot::run_plot(args).map(|_| 0),
        Command::Golden(args) => coconut_trainer::golden::run_golden(args).map(|_| 0),
    }
}

/// The id of a stage named on the command line (`3`, `stage3`, `nocot`, `pause`).
fn stage_id(name: &str) -> Result<String> {
    Ok(name
        .parse::<coconut_core::StageKind>()
        .map_err(anyhow::Error::msg)?
        .to_string())
}

/// `cpu`, or `cuda` / `cuda:N` in a build with the `cuda` feature.
fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        cuda if cuda.starts_with("cuda") => {
            let ordinal = cuda
                .strip_prefix("cuda:")
                .map_or(Ok(0), str::parse)
                .with_context(|| format!("--device {cuda}: expected cuda or cuda:N"))?;
            Device::new_cuda(ordinal).context("CUDA device (build with --features cuda)")
        }
        other => anyhow::bail!("unknown device '{other}': expected cpu or cuda[:N]"),
    }
}

#[derive(Args)]
struct TrainArgs {
    /// Run directory: config.json, checkpoint, metrics.jsonl, stages/.
    #[arg(long, default_value = "runs/default")]
    run_dir: PathBuf,
    /// Continue the run in --run-dir from its checkpoint, with its own config.json.
    #[arg(long)]
    resume: bool,
    /// Settings file (a TrainConfig as JSON; missing fields take the defaults). Flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start this new run from another run's stage boundary: that run's earlier stages are taken
    /// as they are (weights, steps, seconds, metrics), and its config.json is the base the flags
    /// change (only the plans of --branch-at and later stages may differ).
    #[arg(long, requires = "branch_at", conflicts_with = "resume")]
    branch_from: Option<PathBuf>,
    /// The first stage the branch trains (e.g. stage4).
    #[arg(long, requires = "branch_from")]
    branch_at: Option<String>,
    /// Stages to train, in order: e.g. 0,1,2,3,4,5 or nocot or pause.
    #[arg(long, value_delimiter = ',')]
    stages: Option<Vec<String>>,
    /// Epochs per stage (the last value repeats for the remaining stages).
    #[arg(long, value_delimiter = ',')]
    epochs: Option<Vec<f64>>,
    #[arg(long)]
    thoughts_per_step: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    /// A stage's own peak learning rate, e.g. stage4=5e-4,stage5=5e-4 (the others keep --lr).
    #[arg(long, value_delimiter = ',')]
    stage_lr: Option<Vec<String>>,
    /// A stage's own data mixing, e.g. stage4=0.2 (the others keep --mix).
    #[arg(long, value_delimiter = ',')]
    stage_mix: Option<Vec<String>>,
    /// A stage's own --until-val, e.g. stage4=99.95 (the others keep --until-val).
    #[arg(long, value_delimiter = ',')]
    stage_until_val: Option<Vec<String>>,
    /// Extra copies per epoch of a training problem for each column beyond the first whose
    /// digits sum to 9 (long carry chains), in a stage, e.g. stage4=3,stage5=3.
    #[arg(long, value_delimiter = ',')]
    stage_repeat_nines: Option<Vec<String>>,
    #[arg(long)]
    weight_decay: Option<f64>,
    #[arg(long)]
    warmup_steps: Option<u64>,
    #[arg(long)]
    seed: Option<u64>,
    /// Stop after this many seconds (checkpointed; continue with --resume).
    #[arg(long)]
    time_budget: Option<f64>,
    #[arg(long)]
    checkpoint_every: Option<u64>,
    #[arg(long)]
    n_train: Option<usize>,
    #[arg(long)]
    max_digits: Option<usize>,
    #[arg(long)]
    layers: Option<usize>,
    #[arg(long)]
    width: Option<usize>,
    #[arg(long)]
    heads: Option<usize>,
    /// Validation problems evaluated after each stage (0: none).
    #[arg(long)]
    val_problems: Option<usize>,
    /// End each stage once greedy validation accuracy reaches this percentage (checked every
    /// --val-every steps; --epochs is then the most a stage may take).
    #[arg(long)]
    until_val: Option<f64>,
    /// Steps between validation checks of stages with --until-val.
    #[arg(long)]
    val_every: Option<u64>,
    /// Data mixing: the probability that an example of latent stage k takes the layout of a
    /// random earlier stage (CPU engine).
    #[arg(long)]
    mix: Option<f64>,
    /// Engine: auto (the CPU engine on the CPU, candle elsewhere), cpu or candle.
    #[arg(long)]
    engine: Option<String>,
    /// cpu, or cuda[:N] in a `cuda` build.
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl TrainArgs {
    /// The config file (or the defaults) with the flags applied.
    fn config(&self) -> Result<TrainConfig> {
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
        );
        if self.time_budget.is_some() {
            c.time_budget_s = self.time_budget;
        }
        if self.until_val.is_some() {
            for plan in &mut c.stages {
                plan.until_val = self.until_val;
            }
        }
        for (flag, specs) in [
            ("--stage-lr", &self.stage_lr),
            ("--stage-mix", &self.stage_mix),
            ("--stage-until-val", &self.stage_until_val),
            ("--stage-repeat-nines", &self.stage_repeat_nines),
        ] {
            for spec in specs.iter().flatten() {
                let (stage, value) = spec.split_once('=').with_context(|| {
                    format!("{flag} {spec}: expected STAGE=VALUE, e.g. stage4=0.5")
                })?;
                let value: f64 = value
                    .parse()
                    .with_context(|| format!("{flag} {spec}: {value} is not a number"))?;
                let plan = c
                    .stages
                    .iter_mut()
                    .find(|p| p.stage == stage)
                    .with_context(|| {
                        format!("{flag} {spec}: {stage} is not a stage of this run")
                    })?;
                match flag {
                    "--stage-lr" => plan.lr = Some(value),
                    "--stage-mix" => plan.mix = Some(value),
                    "--stage-repeat-nines" => {
                        ensure!(
                            (0.0..=1e6).contains(&value) && value.fract() == 0.0,
                            "{flag} {spec}: {value} is not a whole number of copies"
                        );
                        plan.repeat_nines = Some(value as usize);
                    }
                    _ => plan.until_val = Some(value),
                }
            }
        }
        if let Some(v) = self.val_every {
            c.val_every = v;
        }
        if let Some(engine) = &self.engine {
            c.engine = serde_json::from_value(serde_json::Value::String(engine.clone()))
                .with_context(|| format!("--engine is auto, cpu or candle, not {engine}"))?;
        }
        Ok(c)
    }
}

/// Progress bars: one per stage, showing the loss and the speed.
struct Bars {
    bar: Option<ProgressBar>,
}

impl Observer for Bars {
    fn stage_started(&mut self, stage: &str, total_steps: u64, done: u64) {
        if let Some(old) = self.bar.take() {
            old.finish();
        }
        let bar = ProgressBar::new(total_steps);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>7} [{bar:30}] {pos}/{len} {elapsed_precise}<{eta_precise} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(stage.to_string());
        bar.set_position(done);
        self.bar = Some(bar);
    }

    fn step(&mut self, m: &StepMetrics) {
        if let Some(bar) = &self.bar {
            bar.set_position(m.stage_step);
            bar.set_message(format!(
                "loss {:.4} lr {:.2e} {:.0} tok/s",
                m.loss, m.lr, m.tokens_per_s
            ));
        }
    }

    fn message(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

fn run_train(args: TrainArgs) -> Result<()> {
    let config = if args.resume {
        load_run_config(&args.run_dir)?
    } else {
        args.config()?
    };
    let device = device(&args.device)?;
    let mut bars = Bars { bar: None };
    // run.json is written by `train` once the settings have passed and the run has started.
    let options = TrainOptions {
        resume: args.resume,
        run_info: Some(coconut_trainer::provenance::RunInfo::current(&args.device)),
        branch: args
            .branch_from
            .clone()
            .zip(args.branch_at.clone())
            .map(|(from, at_stage)| Branch { from, at_stage }),
        ..TrainOptions::default()
    };
    let report = train::train(&config, &args.run_dir, &device, &options, &mut bars)?;
    if let Some(bar) = bars.bar.take() {
        bar.finish();
    }
    for s in &report.progress.finished {
        eprintln!(
            "{:>7}: {} steps, {:.1} s, final loss {:.5}",
            s.id, s.steps, s.seconds, s.final_loss
        );
    }
    match report.outcome {
        Outcome::Finished => eprintln!(
            "done: weights in {}",
            RunDir(args.run_dir.clone())
                .stage_weights("<stage>")
                .display()
        ),
        Outcome::OutOfTime => eprintln!(
            "time budget spent; continue with: coconut train --resume --run-dir {}",
            args.run_dir.display()
        ),
        Outcome::Stopped => {}
    }
    Ok(())
}

#[derive(Args)]
struct EvalArgs {
    /// A run directory: its config.json and stages/<stage>.safetensors.
    #[arg(long, conflicts_with = "weights")]
    run_dir: Option<PathBuf>,
    /// A stage weight file (safetensors) instead of a run directory.
    #[arg(long, required_unless_present = "run_dir")]
    weights: Option<PathBuf>,
    /// Settings (data, thoughts per step) for --weights; defaults otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The stage: 0..5, stageN, nocot or pause.
    #[arg(long)]
    stage: String,
    /// Problems of the test set to evaluate.
    #[arg(long, default_value_t = 5000)]
    n: usize,
    /// Problems of the out-of-distribution (longer) set to evaluate (0: skip).
    #[arg(long, default_value_t = 1000)]
    n_ood: usize,
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Also write the accuracies as JSON there (the input of `coconut export --eval`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the test problems answered wrong (greedy), one `a + b` per line: the input
    /// `coconut solve` takes, to see what the model wrote.
    #[arg(long)]
    wrong: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn run_eval(args: EvalArgs) -> Result<()> {
    let stage_name = stage_id(&args.stage)?;
    let (config, weights_path) = match (&args.run_dir, &args.weights) {
        (Some(dir), _) => (
            load_run_config(dir)?,
            RunDir(dir.clone()).stage_weights(&stage_name),
        ),
        (None, Some(path)) => {
            let config = match &args.config {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("parsing {}", p.display()))?
                }
                None => TrainConfig::default(),
            };
            (config, path.clone())
        }
        (None, None) => anyhow::bail!("give --run-dir or --weights"),
    };
    let stage = config.stage(&StagePlan::new(stage_name.clone(), 1.0))?;
    let bytes = coconut_core::files::read_regular(&weights_path, u64::MAX)
        .with_context(|| format!("reading {}", weights_path.display()))?;
    let weights =
        ModelWeights::from_safetensors(&bytes, &weights_path.display().to_string(), None)?;
    let device = device(&args.device)?;
    let model = Gpt::from_weights(&weights, &device)?;
    let tokenizer = Tokenizer::new();
    // Growing the test set would take problems from the training set: only the ood set may grow.
    let mut data = config.data.clone();
    data.n_ood = data.n_ood.max(args.n_ood);
    let splits = data.generate()?;
    if args.n > splits.test.len() {
        eprintln!(
            "the run's test set has {} problems; evaluating all of them",
            splits.test.len()
        );
    }
    let n = args.n.min(splits.test.len());
    let mut sets = vec![evaluate(
        &model,
        &tokenizer,
        "test",
        &splits.test[..n],
        &stage,
        args.batch_size,
    )?];
    if args.n_ood > 0 {
        sets.push(evaluate(
            &model,
            &tokenizer,
            "ood",
            &splits.ood[..args.n_ood],
            &stage,
            args.batch_size,
        )?);
    }
    print!("{}", table(&stage.id(), &sets));
    if let Some(path) = &args.wrong {
        let test = &splits.test[..n];
        let mut engine = coconut_trainer::cpu::CpuTrainer::for_inference(&weights)?;
        let right = coconut_trainer::eval::cpu_greedy_correct(
            &mut engine,
            &tokenizer,
            test,
            &stage,
            args.batch_size,
        )?;
        let lines: String = test
            .iter()
            .zip(&right)
            .filter(|(_, &ok)| !ok)
            .map(|(p, _)| format!("{} + {}\n", p.a, p.b))
            .collect();
        coconut_trainer::checkpoint::write_atomic(path, lines.as_bytes())?;
        eprintln!(
            "wrote {} ({} wrong of {n})",
            path.display(),
            lines.lines().count()
        );
    }
    // Written only when asked for: a default file name in the working directory would replace
    // whatever the user keeps there under that name.
    if let Some(path) = &args.json {
        let json =
            serde_json::json!({ "stage": stage.id(), "weights": weights_path, "sets": sets });
        coconut_trainer::checkpoint::write_atomic(
            path,
            serde_json::to_string_pretty(&json)?.as_bytes(),
        )?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
