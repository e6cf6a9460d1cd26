//! Time per solved problem of the reference engine, at the shipped model size.
//!
//! Random weights never say `<eos>`, so a solve runs until the position limit; the limit is set to
//! the length a trained model's solve has: about 24 positions all-latent (prompt, 5 thoughts,
//! `<eot>`, answer, `<eos>`) and about 72 with the whole chain of thought written (stage 0).
//! The comparison in the same run is the same solve without a KV cache (every new token
//! recomputes the whole prefix with `forward_full`), so the ratio shows what the cache buys.

use coconut_core::decoding::argmax;
use coconut_core::problem::Problem;
use coconut_core::reference::ReferenceModel;
use coconut_core::stage::Stage;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::random_weights;
use coconut_core::ModelConfig;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn uncached_generate(model: &ReferenceModel, prompt: &[u32], positions: usize) -> Vec<u32> {
    let mut ids = prompt.to_vec();
    while ids.len() < positions {
        let inputs: Vec<Vec<f32>> = ids
            .iter()
            .map(|&id| model.token_embedding(id).unwrap().to_vec())
            .collect();
        let hidden = model.forward_full(&inputs).unwrap();
        ids.push(argmax(&model.logits(hidden.last().unwrap())));
    }
    ids
}

fn bench(c: &mut Criterion) {
    let tokenizer = Tokenizer::new();
    let problem = Problem::new(4821, 7395);
    // Neither stage below pads its operands: one prompt for both.
    let prompt =
        coconut_core::layout::prompt(&tokenizer, &problem, &Stage::latent(0, 1, 5)).unwrap();
    let mut group = c.benchmark_group("solve");
    for (name, positions, stage) in [
        ("all-latent", 24, Stage::latent(5, 1, 5)),
        ("stage0", 72, Stage::latent(0, 1, 5)),
    ] {
        let config = ModelConfig {
            n_positions: positions,
            ..ModelConfig::default()
        };
        let model = ReferenceModel::new(&random_weights(&config, 7));
        group.bench_function(BenchmarkId::new("kv-cache", name), |b| {
            b.iter(|| model.solve(&tokenizer, &problem, &stage, false).unwrap())
        });
        group.bench_function(BenchmarkId::new("kv-cache+trace", name), |b| {
            b.iter(|| model.solve(&tokenizer, &problem, &stage, true).unwrap())
        });
        group.bench_function(BenchmarkId::new("no-cache", name), |b| {
            b.iter(|| uncached_generate(&model, &prompt, positions))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
