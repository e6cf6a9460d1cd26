//! How fast the reference engine decodes a weights folder's model, beside the floor the memory
//! bus sets: every decoded token reads every weight matrix once (the LM head included), so
//! `bytes of weights per token / read bandwidth` is the least time a token can take.
//!
//! The bandwidth is measured here, in the same run, by reading a buffer much larger than the
//! last-level cache with as many threads as the engine uses. Figures go to BENCHMARKS.md ("The
//! seed's size"); scripts/bench-seed-speed.sh runs this beside transformers.
//!
//! `cargo run --release -p coconut-core --example reference_speed -- WEIGHTS_DIR [STAGE] [POSITIONS]`

use coconut_core::manifest::WeightsDir;
use coconut_core::reference::ReferenceModel;
use coconut_core::stored::worker_threads;
use coconut_core::weights::{ModelWeights, TensorData};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        return Err("usage: reference_speed WEIGHTS_DIR [STAGE] [POSITIONS]".into());
    };
    let folder = WeightsDir::open(dir)?;
    let stage = match args.get(1) {
        Some(s) => s.clone(),
        None => folder.manifest.stages[0].id.clone(),
    };
    let positions: usize = args.get(2).map(|p| p.parse()).transpose()?.unwrap_or(24);

    let started = Instant::now();
    let (_, _, weights) = folder.stage(&stage)?;
    let model = ReferenceModel::new(&weights);
    let load_s = started.elapsed().as_secs_f64();
    let bytes = stored_bytes(&weights);
    let dtype = format!("{:?}", weights.dtype());
    drop(weights);

    let threads = worker_threads();
    let bandwidth = read_bandwidth(threads, 1 << 30);
    let (token_ms, thought_ms) = decode_times(&model, positions)?;
    let floor_ms = bytes as f64 / bandwidth * 1e3;
    let config = model.config();
    println!(
        "{}",
        serde_json::json!({
            "weights": dir,
            "stage": stage,
            "layers": config.n_layer,
            "width": config.n_embd,
            "vocab": config.vocab_size,
            "dtype": dtype,
            "threads": threads,
            "load_s": round(load_s, 2),
            "bytes_per_token": bytes,
            "read_gb_per_s": round(bandwidth / 1e9, 2),
            "floor_ms_per_token": round(floor_ms, 1),
            "positions": positions,
            "ms_per_token": round(token_ms, 1),
            "ms_per_thought": round(thought_ms, 1),
            "times_the_floor": round(token_ms / floor_ms, 2),
        })
    );
    Ok(())
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// Bytes of every stored tensor: what one token's forward pass and LM head read.
fn stored_bytes(weights: &ModelWeights) -> usize {
    weights
        .tensors
        .values()
        .map(|t| match &t.data {
            TensorData::F32(v) => v.len() * 4,
            TensorData::F16(v) => v.len() * 2,
            TensorData::Int8 { q, scales } => q.len() + scales.len() * 4,
        })
        .sum()
}

/// Median milliseconds of a decoded token (a position, its LM head and argmax, the token fed
/// next) and of a thought (a position whose final hidden state is fed back), over `positions`
/// of each from an empty cache.
fn decode_times(
    model: &ReferenceModel,
    positions: usize,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let mut cache = model.new_cache();
    let mut token = 0u32;
    let mut token_ms = Vec::new();
    for p in 0..positions {
        let started = Instant::now();
        let input = model.token_embedding(token)?;
        let hidden = model.step(&mut cache, &input, p, None)?;
        let logits = model.logits(&hidden);
        token = argmax(&logits);
        token_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let mut cache = model.new_cache();
    let mut input = model.token_embedding(0)?;
    let mut thought_ms = Vec::new();
    for p in 0..positions {
        let started = Instant::now();
        input = model.step(&mut cache, &input, p, None)?;
        thought_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(token_ms), median(thought_ms)))
}

fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Bytes per second read from a `size`-byte buffer by `threads` threads, best of five passes.
fn read_bandwidth(threads: usize, size: usize) -> f64 {
    let buffer: Vec<u64> = (0..size / 8).map(|i| i as u64).collect();
    let chunk = buffer.len().div_ceil(threads);
    let mut best = 0f64;
    for _ in 0..5 {
        let started = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = buffer
                .chunks(chunk)
                .map(|part| s.spawn(move || part.iter().fold(0u64, |a, &b| a.wrapping_add(b))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .fold(0, u64::wrapping_add)
        });
        std::hint::black_box(total);
        best = best.max(size as f64 / started.elapsed().as_secs_f64());
    }
    best
}
