//! Time of one optimizer step (forward with thought feedback, masked loss, backward, clipping,
//! AdamW) at one stage, for one engine, on batches of the training set; prints one JSON line.
//! `scripts/bench-train.sh` runs it beside the PyTorch yardstick and prints the ratios.
//!
//! ```text
//! cargo bench -p coconut-trainer --bench train_step -- --engine cpu --stage stage0 \
//!     [--batch 256] [--steps 6] [--layers 4 --width 128 --heads 4]
//! ```
//! `--engine cpu` is the CPU engine (trainer/src/cpu); `--engine candle` the candle path it
//! replaced on the CPU (still the CUDA path), as the in-run "before". Peak memory is the
//! process's high-water mark (VmHWM), so run one engine per process.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use coconut_core::data::DataConfig;
use coconut_core::layout::Layout;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::ModelConfig;
use coconut_trainer::cpu::noise::StepNoise;
use coconut_trainer::learner::Learner;
use coconut_trainer::optim::clip_scale;
use coconut_trainer::{Engine, StagePlan, TrainConfig};
use std::time::Instant;

struct Args {
    engine: String,
    stage: String,
    batch: usize,
    steps: usize,
    model: ModelConfig,
    shards: usize,
}

fn parse() -> Result<Args> {
    let mut args = Args {
        engine: "cpu".into(),
        stage: "stage0".into(),
        batch: 256,
        steps: 6,
        model: ModelConfig::default(),
        shards: TrainConfig::default().cpu_shards,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue; // passed by `cargo bench`
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let number = || -> Result<usize> {
            value
                .parse()
                .with_context(|| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--engine" => args.engine = value.clone(),
            "--stage" => args.stage = value.clone(),
            "--batch" => args.batch = number()?,
            "--steps" => args.steps = number()?,
            "--layers" => args.model.n_layer = number()?,
            "--width" => args.model.n_embd = number()?,
            "--heads" => args.model.n_head = number()?,
            "--shards" => args.shards = number()?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(args)
}

/// The process's peak resident memory in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<()> {
    let args = parse()?;
    coconut_trainer::ops::keep_freed_memory(); // as the training loop does, for both engines
    let config = TrainConfig {
        model: args.model.clone(),
        ..TrainConfig::default()
    };
    let stage = config.stage(&StagePlan::new(args.stage.clone(), 1.0))?;
    let data = DataConfig {
        n_train: args.batch * (args.steps + 1),
        n_val: 0,
        n_test: 0,
        n_ood: 0,
        ..DataConfig::default()
    };
    let tokenizer = Tokenizer::new();
    let layouts: Vec<Layout> = data
        .generate()?
        .train
        .iter()
        .map(|p| Layout::new(&tokenizer, p, &stage))
        .collect::<Result<_, _>>()?;
    let batches: Vec<Vec<&Layout>> = layouts
        .chunks(args.batch)
        .map(|c| c.iter().collect())
        .collect();
    let engine = match args.engine.as_str() {
        "cpu" => Engine::Cpu,
        "candle" => Engine::Candle,
        other => bail!("--engine is cpu or candle, not {other}"),
    };
    let config = TrainConfig {
        engine,
        cpu_shards: args.shards,
        ..config
    };
    let mut learner = Learner::new(&config, &Device::Cpu)?;
    let mut step = |batch: &[&Layout]| -> Result<f64> {
        let stats = learner.compute(batch, &stage, StepNoise::NONE)?;
        learner.apply(1e-3, clip_scale(stats.grad_norm, 1.0))?;
        Ok(stats.loss)
    };

    step(&batches[0])?; // warm-up: buffers grow, pages fault in
    let mut times = Vec::new();
    let mut tokens = 0;
    let mut last_loss = 0.0;
    for batch in &batches[1..=args.steps] {
        let start = Instant::now();
        last_loss = step(batch)?;
        times.push(start.elapsed().as_secs_f64());
        tokens += batch.iter().map(|l| l.ids.len()).sum::<usize>();
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let line = serde_json::json!({
        "impl": format!("rust-{}", args.engine),
        "stage": stage.id(),
        "batch": args.batch,
        "steps": args.steps,
        "ms_per_step": median * 1e3,
        "ms_min": times[0] * 1e3,
        "ms_max": times[times.len() - 1] * 1e3,
        "tokens_per_step": tokens as f64 / args.steps as f64,
        "loss": last_loss,
        "peak_rss_mib": peak_rss_mib(),
        "params": args.model.n_params(),
    });
    println!("{line}");
    Ok(())
}
