//! `coconut`: train the curriculum, evaluate, solve, export, write golden files and curves.
//! A thin layer over `coconut-trainer` (and `coconut-shaders` for `solve --engine wgpu`): the
//! arguments are in [`args`], the work in the libraries.

mod args;
mod intervene;
mod solve;

use anyhow::{Context, Result};
use args::{
    stage_id, Cli, Command, EvalArgs, ExportArgs, GoldenArgs, PlotArgs, ProbeArgs, TrainArgs,
};
use candle_core::Device;
use clap::Parser;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::ModelWeights;
use coconut_trainer::branch::Branch;
use coconut_trainer::eval::{evaluate, table, EvalSet};
use coconut_trainer::export;
use coconut_trainer::train::{
    self, load_run_config, Observer, Outcome, RunDir, StepMetrics, TrainOptions,
};
use coconut_trainer::{Gpt, StagePlan, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

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
        Command::Solve(args) => solve::run_solve(args),
        Command::Export(args) => run_export(args).map(|_| 0),
        Command::Plot(args) => run_plot(args).map(|_| 0),
        Command::Golden(args) => run_golden(args).map(|_| 0),
        Command::Probe(args) => run_probe(args).map(|_| 0),
        Command::Intervene(args) => intervene::run_intervene(args),
    }
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
    let longer = args
        .longer
        .iter()
        .map(|&digits| {
            Ok((
                format!("ood{digits}"),
                config.data.longer_set(digits, args.n_ood)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let pairs = config.data.pairs_set(&args.pairs, args.n_per_pair)?;
    let set = |problems| EvalSet {
        tokenizer: &tokenizer,
        problems,
        stage: &stage,
        batch_size: args.batch_size,
    };
    let mut sets = vec![evaluate(&model, "test", set(&splits.test[..n]))?];
    if args.n_ood > 0 {
        sets.push(evaluate(&model, "ood", set(&splits.ood[..args.n_ood]))?);
    }
    for (name, problems) in &longer {
        sets.push(evaluate(&model, name, set(problems))?);
    }
    if !pairs.is_empty() {
        sets.push(evaluate(&model, "pairs", set(&pairs))?);
    }
    print!("{}", table(&stage.id(), &sets));
    if let Some(path) = &args.wrong {
        let test = &splits.test[..n];
        let mut engine = coconut_trainer::cpu::CpuTrainer::for_inference(&weights)?;
        let right = coconut_trainer::eval::cpu_greedy_correct(&mut engine, set(test))?;
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

fn run_export(args: ExportArgs) -> Result<()> {
    match &args.weights {
        Some(weights) => export::export_from_weights(weights, &args.stage, args.format, &args.out),
        None => export::export_from_run(
            &args.run_dir,
            &args.stage,
            args.format,
            &args.out,
            args.eval.as_deref(),
        ),
    }
}

fn run_plot(args: PlotArgs) -> Result<()> {
    let out = args
        .out
        .unwrap_or_else(|| args.run_dir.join("training-curve.svg"));
    coconut_trainer::plot::plot_run(&args.run_dir.join(train::METRICS_FILE), &out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn run_golden(args: GoldenArgs) -> Result<()> {
    let out = args.out.unwrap_or_else(|| args.weights.join("golden.json"));
    let stages = coconut_trainer::golden::golden_folder(&args.weights, &out)?;
    eprintln!("wrote {} ({stages} stages)", out.display());
    Ok(())
}

fn run_probe(args: ProbeArgs) -> Result<()> {
    use coconut_core::manifest::{FileEntry, MANIFEST_FILE};
    use coconut_core::probes::{ProbeDtype, Quantity, ThoughtProbes};
    use coconut_trainer::checkpoint::write_atomic;
    use coconut_trainer::probe::{probe_folder, ProbeSizes};
    let dir = coconut_core::manifest::WeightsDir::open(&args.weights)?;
    let stages = args
        .stages
        .iter()
        .map(|s| stage_id(s))
        .collect::<Result<Vec<_>>>()?;
    let sizes = ProbeSizes {
        fit: args.n_fit,
        test: args.n_test,
    };
    let probed = probe_folder(&dir, &stages, sizes, |id| eprintln!("probing {id}..."))?;
    let columns = dir.manifest.max_digits;
    // One row per stage, slot and quantity; per column the held-out accuracy and, after the
    // slash, that of the same probe fitted to shuffled labels (chance, as the probe measures it).
    let heads: String = (0..columns)
        .map(|c| format!("{:>12}", format!("col{c}")))
        .collect();
    println!("{:<8} {:>4} {:<10}{heads}", "stage", "slot", "quantity");
    for stage in &probed {
        let slots = stage.scores.iter().map(|s| s.slot + 1).max().unwrap_or(0);
        for slot in 0..slots {
            for quantity in Quantity::ALL {
                let row: Vec<_> = stage
                    .scores
                    .iter()
                    .filter(|s| s.slot == slot && s.quantity == quantity)
                    .collect();
                let cells: String = row
                    .iter()
                    .map(|s| format!("{:>12}", format!("{:.1}/{:.1}", s.accuracy, s.shuffled)))
                    .collect();
                println!(
                    "{:<8} {:>4} {:<10}{cells}",
                    row[0].stage,
                    slot,
                    quantity.name()
                );
            }
        }
    }
    if let Some(path) = &args.json {
        let scores: Vec<_> = probed.iter().flat_map(|p| &p.scores).collect();
        write_atomic(path, serde_json::to_string_pretty(&scores)?.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    let file_of = |stage: &ThoughtProbes| format!("{}.probes.safetensors", stage.scores[0].stage);
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        for stage in &probed {
            let path = out.join(file_of(stage));
            write_atomic(&path, &stage.to_safetensors(ProbeDtype::F32))?;
            eprintln!("wrote {}", path.display());
        }
    }
    if args.ship {
        let mut manifest = dir.manifest.clone();
        for stage in &probed {
            let file = file_of(stage);
            let bytes = stage
                .only(&[Quantity::Digit, Quantity::Carry])
                .to_safetensors(ProbeDtype::F16);
            let i = manifest
                .stages
                .iter()
                .position(|e| e.id == stage.scores[0].stage)
                .expect("probed stages come from the manifest");
            manifest.stages[i].probes = Some(FileEntry::describe(&file, &bytes));
            // What a reader will check, checked before anything is written.
            manifest.stage_probes(&manifest.stages[i], &bytes)?;
            write_atomic(&dir.dir.join(&file), &bytes)?;
            eprintln!(
                "wrote {} ({} bytes)",
                dir.dir.join(&file).display(),
                bytes.len()
            );
        }
        write_atomic(&dir.dir.join(MANIFEST_FILE), manifest.to_json().as_bytes())?;
        eprintln!(
            "listed the probes in {}",
            dir.dir.join(MANIFEST_FILE).display()
        );
    }
    Ok(())
}
