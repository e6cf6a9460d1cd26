//! Time of one optimizer step of the seed's recipe (`train --init --recipe seed`): a batch of
//! the seed's training problems laid out for one of its stages, the seed's loss (per-group
//! means, the thought-norm term from stage 1), backward, clipping, AdamW with decay on every
//! parameter, on a random GPT-2 of GPT-2's vocabulary (50,261 tokens) and a given shape.
//! Prints one JSON line; `scripts/bench-finetune.sh` runs it beside a PyTorch yardstick.
//!
//! ```text
//! cargo bench -p coconut-trainer --bench finetune_step -- --engine cpu --stage 0 \
//!     [--batch 16] [--group 16] [--steps 3] [--layers 12 --width 768 --heads 12] [--dump F]
//!     [--micro N] [--plain-malloc] [--precision bf16] [--activation-checkpointing]
//! ```
//! `--precision` and `--activation-checkpointing` are settings of the candle engine.
//! `--dump F` writes the timed batches (ids, targets, thought positions) as JSON and exits, so
//! a yardstick in another language runs exactly these.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use coconut_core::layout::Layout;
use coconut_core::seed::layout::{SeedLayout, SeedStage};
use coconut_core::seed::problems::{split, SeedSplit};
use coconut_core::seed::tokenizer::Gpt2Tokenizer;
use coconut_core::ModelConfig;
use coconut_trainer::finetune::FinetuneRecipe;
use coconut_trainer::learner::{CandleSettings, Learner};
use coconut_trainer::model::init_weights;
use coconut_trainer::objective::Objective;
use coconut_trainer::optim::clip_scale;
use coconut_trainer::TrainConfig;
use std::alloc::{GlobalAlloc, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

struct Args {
    engine: String,
    stage: u8,
    batch: usize,
    group: usize,
    steps: usize,
    model: ModelConfig,
    dump: Option<String>,
    /// Examples computed at once (gradients summed); `None`: the whole batch.
    micro: Option<usize>,
    /// glibc's default allocator thresholds (freed memory handed back), so that the peak
    /// resident memory measures what was live rather than what the process kept.
    plain_malloc: bool,
    /// The candle engine's precision and activation checkpointing.
    candle: CandleSettings,
}

fn parse() -> Result<Args> {
    let mut args = Args {
        engine: "cpu".into(),
        stage: 0,
        batch: 16,
        group: 16,
        steps: 3,
        model: ModelConfig {
            vocab_size: coconut_core::seed::VOCAB,
            n_positions: 128,
            n_embd: 768,
            n_layer: 12,
            n_head: 12,
            ..ModelConfig::default()
        },
        dump: None,
        micro: None,
        plain_malloc: false,
        candle: CandleSettings::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue; // passed by `cargo bench`
        }
        if flag == "--plain-malloc" {
            args.plain_malloc = true;
            continue;
        }
        if flag == "--activation-checkpointing" {
            args.candle.activation_checkpointing = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let number = || -> Result<usize> {
            value
                .parse()
                .with_context(|| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--engine" => args.engine = value.clone(),
            "--stage" => args.stage = number()? as u8,
            "--batch" => args.batch = number()?,
            "--group" => args.group = number()?,
            "--steps" => args.steps = number()?,
            "--layers" => args.model.n_layer = number()?,
            "--width" => args.model.n_embd = number()?,
            "--heads" => args.model.n_head = number()?,
            "--dump" => args.dump = Some(value.clone()),
            "--micro" => args.micro = Some(number()?),
            "--precision" => args.candle.precision = value.parse().map_err(anyhow::Error::msg)?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(args)
}

/// The system allocator, counting the bytes live and their peak: what the process held at
/// most (model set-up, warm-up and timed steps), as PyTorch's `max_memory_allocated` counts it,
/// whatever the allocator keeps besides (the resident figure below includes glibc's kept free
/// memory, which depends on the order of allocations more than on their sizes).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, size);
        if !p.is_null() {
            let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
            PEAK.fetch_max(live, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The process's peak resident memory in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<()> {
    let args = parse()?;
    if !args.plain_malloc {
        coconut_trainer::ops::keep_freed_memory(); // as the training loop does
    }
    let stage = SeedStage::new(args.stage).context("--stage is 0 to 3")?;
    let tokenizer = Gpt2Tokenizer::new();
    let layouts: Vec<Layout> = split(SeedSplit::Train)[..args.batch * (args.steps + 1)]
        .iter()
        .map(|p| SeedLayout::new(&tokenizer, p, stage).training_layout())
        .collect();
    let batches: Vec<Vec<&Layout>> = layouts
        .chunks(args.batch)
        .map(|c| c.iter().collect())
        .collect();
    if let Some(path) = &args.dump {
        let json: Vec<serde_json::Value> = batches
            .iter()
            .map(|batch| {
                serde_json::json!(batch
                    .iter()
                    .map(|l| serde_json::json!({
                        "ids": l.ids,
                        "loss_mask": l.loss_mask,
                        "first_thought": l.first_thought,
                        "thoughts": l.thoughts,
                    }))
                    .collect::<Vec<_>>())
            })
            .collect();
        std::fs::write(path, serde_json::to_string(&json)?)?;
        return Ok(());
    }
    let shards = match args.engine.as_str() {
        "cpu" => Some(TrainConfig::default().cpu_shards),
        "candle" => None,
        other => bail!("--engine is cpu or candle, not {other}"),
    };
    let recipe = FinetuneRecipe::seed();
    let objective = Objective {
        group: Some(args.group),
        thought_norm: if args.stage == 0 {
            0.0
        } else {
            recipe.thought_norm
        },
    };
    let weights = init_weights(&args.model, 1);
    let mut learner =
        Learner::from_weights(&weights, recipe.adamw(), &Device::Cpu, shards, args.candle)?;
    drop(weights);
    let mut step = |batch: &[&Layout]| -> Result<f64> {
        let stats = match args.micro {
            Some(micro) => learner.compute_in_parts(batch, args.stage > 0, &objective, micro)?,
            None => learner.compute_with(batch, args.stage > 0, &objective)?,
        };
        learner.apply(1e-5, clip_scale(stats.grad_norm, 1.0))?;
        Ok(stats.loss)
    };

    step(&batches[0])?; // warm-up: buffers grow, pages fault in
    let mut times = Vec::new();
    let (mut tokens, mut targets) = (0, 0);
    let mut last_loss = 0.0;
    for batch in &batches[1..=args.steps] {
        let start = Instant::now();
        last_loss = step(batch)?;
        times.push(start.elapsed().as_secs_f64());
        tokens += batch.iter().map(|l| l.ids.len()).sum::<usize>();
        targets += batch
            .iter()
            .map(|l| l.loss_mask.iter().skip(1).filter(|&&m| m).count())
            .sum::<usize>();
    }
    times.sort_by(f64::total_cmp);
    let line = serde_json::json!({
        "impl": format!("rust-{}", args.engine),
        "micro_batch": args.micro,
        "candle": args.candle,
        "stage": args.stage,
        "batch": args.batch,
        "steps": args.steps,
        "ms_per_step": times[times.len() / 2] * 1e3,
        "ms_min": times[0] * 1e3,
        "ms_max": times[times.len() - 1] * 1e3,
        "tokens_per_step": tokens as f64 / args.steps as f64,
        "targets_per_step": targets as f64 / args.steps as f64,
        "loss": last_loss,
        "peak_rss_mib": peak_rss_mib(),
        "peak_live_mib": PEAK.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
        "params": args.model.n_params(),
    });
    println!("{line}");
    Ok(())
}
