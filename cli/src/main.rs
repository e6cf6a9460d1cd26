//! `coconut`: train the curriculum, evaluate, solve, export, write golden files and curves.
//! A thin layer over `coconut-trainer` (and `coconut-shaders` for `solve --engine wgpu`): the
//! arguments are in [`args`], the work in the libraries.

mod args;
#[cfg(test)]
mod args_fuzz;
mod finetune;
mod input;
mod intervene;
mod intervene_report;
mod limits;
mod output;
mod seed;
mod seed_intervene;
mod solve;

use anyhow::{Context, Result};
use args::{Cli, Command, EvalArgs, ExportArgs, GoldenArgs, PlotArgs, ProbeArgs, TrainArgs};
use candle_core::Device;
use clap::Parser;
use coconut_core::data::DataConfig;
use coconut_core::stage::Stage;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::ModelWeights;
use coconut_trainer::branch::Branch;
use coconut_trainer::eval::{evaluate, table, EvalSet};
use coconut_trainer::export;
use coconut_trainer::folder::{FolderWrite, Start};
use coconut_trainer::run_dir::{self, load_run_config, RunDir};
use coconut_trainer::train::{self, Observer, Outcome, StepMetrics, TrainOptions};
use coconut_trainer::Gpt;
use indicatif::{ProgressBar, ProgressStyle};
use output::{check_output, note, out, outln};
use std::path::PathBuf;

/// Errors end the program with one readable message (the cause chain, no backtrace) and exit 2;
/// `solve` and `intervene` exit 1 when they refused a problem. Arguments outside their limits are
/// refused by clap (exit 2) before anything runs; a reader that closes stdout ends the command
/// quietly (exit 0).
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.check() {
        e.exit();
    }
    match run(cli.command).and_then(|code| Ok(output::flush().map(|()| code)?)) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) if output::closed(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            note!("error: {e:#}");
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
        Command::Import(args) => run_import(args).map(|_| 0),
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
        // A hidden bar (stderr is not a terminal) would swallow the line.
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(text),
            _ => note!("{text}"),
        }
    }
}

fn run_train(args: TrainArgs) -> Result<()> {
    if finetune::asked(&args) {
        let mut bars = Bars { bar: None };
        let result = finetune::run_finetune(&args, &device(&args.device)?, &mut bars);
        if let Some(bar) = bars.bar.take() {
            bar.finish();
        }
        return result;
    }
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
        note!(
            "{:>7}: {} steps, {:.1} s, final loss {:.5}",
            s.id,
            s.steps,
            s.seconds,
            s.final_loss
        );
    }
    match report.outcome {
        Outcome::Finished => note!(
            "done: weights in {}",
            RunDir(args.run_dir.clone())
                .stage_weights("<stage>")
                .display()
        ),
        Outcome::OutOfTime => note!(
            "time budget spent; continue with: coconut train --resume --run-dir {}",
            args.run_dir.display()
        ),
        Outcome::Stopped => {}
    }
    Ok(())
}

/// What `eval` evaluates: a stage, its weights (and where they are), and the data settings its
/// sets are drawn with.
struct Evaluated {
    stage: Stage,
    weights: ModelWeights,
    path: PathBuf,
    data: DataConfig,
}

/// A stage of a run (its config.json) or of a weights folder (its manifest: every setting of the
/// stage, and the test set of its figures). A stage file alone does not say how it runs.
fn evaluated(args: &EvalArgs) -> Result<Evaluated> {
    let id = &args.stage;
    let Some(folder) = &args.weights else {
        let dir = args
            .run_dir
            .as_ref()
            .context("give --run-dir or --weights")?;
        let config = load_run_config(dir)?;
        let path = RunDir(dir.clone()).stage_weights(id);
        let bytes = coconut_core::files::read_regular(&path, u64::MAX)
            .with_context(|| format!("reading {}", path.display()))?;
        let name = path.display().to_string();
        return Ok(Evaluated {
            stage: config.stage(&coconut_trainer::StagePlan::new(id.clone(), 1.0))?,
            weights: ModelWeights::from_safetensors(&bytes, &name, Some(&config.model))?,
            path,
            data: config.data,
        });
    };
    let dir = coconut_core::manifest::WeightsDir::open(folder)?;
    let (entry, stage, weights) = dir.stage(id)?;
    Ok(Evaluated {
        stage,
        weights,
        path: folder.join(&entry.file.file),
        data: dir.manifest.test_data(),
    })
}

fn run_import(args: args::ImportArgs) -> Result<()> {
    let source = match (&args.pt, &args.hf) {
        (Some(pt), _) => coconut_trainer::import::Source::Pt(pt.clone()),
        (None, Some(hf)) => coconut_trainer::import::Source::Hf(hf.clone()),
        (None, None) => anyhow::bail!("give --pt FILE or --hf DIR"),
    };
    let imported = coconut_trainer::import::import(&coconut_trainer::import::ImportRequest {
        source,
        stage: args.stage.clone(),
        layout: args.layout,
        n_head: args.n_head,
        dtype: args.dtype,
        out: args.out.clone(),
        shard_bytes: (args.shard_mb as u64) << 20,
    })?;
    let config = &imported.config;
    if imported.added_tokens > 0 {
        note!(
            "the file has GPT-2's own {} tokens: added <bot> <sep> <eot> <act> as ids {}-{}, \
             drawn N(0, 0.02) as the seed's resize_token_embeddings did (fine-tune before use: \
             `coconut train --init {} --recipe seed`)",
            config.vocab_size - imported.added_tokens,
            config.vocab_size - imported.added_tokens,
            config.vocab_size - 1,
            args.out.display()
        );
    }
    note!(
        "imported {} into {}: {} layers, width {}, {} heads, {} tokens, {} positions ({:?})",
        args.stage,
        args.out.display(),
        config.n_layer,
        config.n_embd,
        config.n_head,
        config.vocab_size,
        config.n_positions,
        args.dtype
    );
    Ok(())
}

/// `eval` on a folder of the seed's family: its own problems, layouts and metrics.
fn run_seed_eval(args: &EvalArgs, folder: &coconut_core::manifest::WeightsDir) -> Result<()> {
    let report = seed::eval(folder, &args.stage, args.n)?;
    if let Some(path) = &args.json {
        coconut_trainer::checkpoint::write_atomic(
            path,
            serde_json::to_string_pretty(&report)?.as_bytes(),
        )?;
        note!("wrote {}", path.display());
    }
    Ok(())
}

fn run_eval(args: EvalArgs) -> Result<()> {
    for (flag, path) in [("--json", &args.json), ("--wrong", &args.wrong)] {
        if let Some(path) = path {
            check_output(path, flag)?;
        }
    }
    if let Some(dir) = &args.weights {
        let folder = coconut_core::manifest::WeightsDir::open(dir)?;
        if folder.manifest.family.layout == coconut_core::family::LayoutFamily::Seed {
            return run_seed_eval(&args, &folder);
        }
    }
    let Evaluated {
        stage,
        weights,
        path: weights_path,
        data: config_data,
    } = evaluated(&args)?;
    let device = device(&args.device)?;
    let model = Gpt::from_weights(&weights, &device)?;
    let tokenizer = Tokenizer::new();
    // Growing the test set would take problems from the training set: only the ood set may grow.
    let mut data = config_data.clone();
    data.n_ood = data.n_ood.max(args.n_ood);
    let splits = data.generate()?;
    if args.n > splits.test.len() {
        note!(
            "the test set has {} problems; evaluating all of them",
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
                config_data.longer_set(digits, args.n_ood)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let pair_count: usize = args.pairs.iter().map(|&l| 2 * l - 1).sum();
    anyhow::ensure!(
        pair_count.saturating_mul(args.n_per_pair) <= limits::MAX_PROBLEMS,
        "--pairs {:?} with --n-per-pair {} asks for {} problems: at most {} in all",
        args.pairs,
        args.n_per_pair,
        pair_count.saturating_mul(args.n_per_pair),
        limits::MAX_PROBLEMS
    );
    let pairs = config_data.pairs_set(&args.pairs, args.n_per_pair)?;
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
    out!("{}", table(&stage.id(), &sets))?;
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
        note!(
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
        note!("wrote {}", path.display());
    }
    Ok(())
}

fn run_export(args: ExportArgs) -> Result<()> {
    let done = match &args.weights {
        Some(weights) => {
            export::export_from_weights(weights, &args.stage, args.format, &args.out, args.force)?
        }
        None => export::export_from_run(
            &args.run_dir,
            &args.stage,
            args.format,
            &args.out,
            args.eval.as_deref(),
            args.force,
        )?,
    };
    note!("{done}");
    Ok(())
}

fn run_plot(args: PlotArgs) -> Result<()> {
    // The input first: a missing run directory is named as such, not as its default output's folder.
    let metrics = args.run_dir.join(run_dir::METRICS_FILE);
    std::fs::metadata(&metrics).with_context(|| format!("reading {}", metrics.display()))?;
    let out = args
        .out
        .unwrap_or_else(|| args.run_dir.join("training-curve.svg"));
    check_output(&out, "--out")?;
    coconut_trainer::plot::plot_run(&metrics, &out)?;
    note!("wrote {}", out.display());
    Ok(())
}

fn run_golden(args: GoldenArgs) -> Result<()> {
    // The input first, as in `run_plot`.
    let folder = coconut_core::manifest::WeightsDir::open(&args.weights)?;
    let out = args.out.unwrap_or_else(|| args.weights.join("golden.json"));
    check_output(&out, "--out")?;
    let stages = coconut_trainer::golden::golden_folder(&folder, &out)?;
    note!("wrote {} ({stages} stages)", out.display());
    Ok(())
}

fn run_probe(args: ProbeArgs) -> Result<()> {
    use coconut_core::probes::ProbeDtype;
    use coconut_trainer::probe::{probe_folder, probes_file, ProbeSizes};
    let dir = coconut_core::manifest::WeightsDir::open(&args.weights)?;
    // Every place written to is checked (and the folders begun) before the probes are fitted.
    if let Some(path) = &args.json {
        check_output(path, "--json")?;
    }
    if let Some(out) = &args.out {
        // Each probes file stands alone (no manifest lists them): written one by one, atomically.
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        check_output(&out.join("stage.probes.safetensors"), "--out")?;
    }
    let ship = args
        .ship
        .then(|| FolderWrite::begin(&dir.dir, Start::Keep))
        .transpose()
        .context("--ship")?;
    let sizes = ProbeSizes {
        fit: args.n_fit,
        test: args.n_test,
    };
    let probed = probe_folder(&dir, &args.stages, sizes, |id| note!("probing {id}..."))?;
    print_probe_table(&probed, dir.manifest.max_digits)?;
    if let Some(path) = &args.json {
        let scores: Vec<_> = probed.iter().flat_map(|p| &p.scores).collect();
        coconut_trainer::checkpoint::write_atomic(
            path,
            serde_json::to_string_pretty(&scores)?.as_bytes(),
        )?;
        note!("wrote {}", path.display());
    }
    if let Some(out) = &args.out {
        for stage in &probed {
            let path = out.join(probes_file(stage)?);
            let bytes = stage.to_safetensors(ProbeDtype::F32);
            coconut_trainer::checkpoint::write_atomic(&path, &bytes)?;
            note!("wrote {}", path.display());
        }
    }
    if let Some(folder) = ship {
        for (file, bytes) in coconut_trainer::probe::ship(folder, &dir, &probed)? {
            note!("wrote {} ({bytes} bytes)", dir.dir.join(file).display());
        }
        note!(
            "listed the probes in {}",
            dir.dir
                .join(coconut_core::manifest::MANIFEST_FILE)
                .display()
        );
    }
    Ok(())
}

/// One row per stage, slot and quantity; per column the held-out accuracy and, after the slash,
/// that of the same probe fitted to shuffled labels (chance, as the probe measures it).
fn print_probe_table(probed: &[coconut_core::probes::ThoughtProbes], columns: usize) -> Result<()> {
    use coconut_core::probes::Quantity;
    let heads: String = (0..columns)
        .map(|c| format!("{:>12}", format!("col{c}")))
        .collect();
    outln!("{:<8} {:>4} {:<10}{heads}", "stage", "slot", "quantity")?;
    for stage in probed {
        let id = stage.stage().map_err(anyhow::Error::msg)?;
        for slot in 0..stage.slots() {
            for quantity in Quantity::ALL {
                let cells: String = stage
                    .scores
                    .iter()
                    .filter(|s| s.slot == slot && s.quantity == quantity)
                    .map(|s| format!("{:>12}", format!("{:.1}/{:.1}", s.accuracy, s.shuffled)))
                    .collect();
                outln!("{id:<8} {slot:>4} {:<10}{cells}", quantity.name())?;
            }
        }
    }
    Ok(())
}
