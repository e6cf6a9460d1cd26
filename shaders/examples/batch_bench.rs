//! Benchmark: the one-dispatch solver (solve.wgsl) against the reference engine and the
//! per-layer WGSL engine, in the same run, on the same problems and weights (random, default
//! model size, int8, biased towards `<eos>` so generations have trained-like lengths). Reports
//! ms per problem solving one problem at a time and solving all of them as one batch; every
//! engine must give the reference's ids for every problem.
//!
//! `cargo run --release -p coconut-shaders --example batch_bench -- [--problems N] [--per-layer N]`
//! (`--per-layer` problems for the per-layer engine, which is slow on software adapters).

fn main() {
    #[cfg(not(target_arch = "wasm32"))]
    native::main();
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use coconut_core::problem::Problem;
    use coconut_core::reference::ReferenceModel;
    use coconut_core::stage::{Stage, StageKind};
    use coconut_core::tokenizer::{Tokenizer, EOS};
    use coconut_core::weights::{random_weights, TensorData, WeightDtype};
    use coconut_core::ModelConfig;
    use coconut_shaders::{block_on, Gpu, GpuOptions, Solver, WgpuEngine};
    use std::sync::Arc;
    use std::time::Instant;

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        let value = |flag: &str, default: usize| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .map_or(default, |v| v.parse().expect("a count"))
        };
        let n = value("--problems", 1000);
        let n_per_layer = value("--per-layer", 20).min(n);

        let cfg = ModelConfig::default();
        let mut w = random_weights(&cfg, 2026);
        let c = cfg.n_embd;
        let bias = w.f32("ln_f.bias");
        let norm = bias.iter().map(|b| b * b).sum::<f32>().sqrt();
        let mut wte = w.f32("wte.weight");
        for i in 0..c {
            wte[EOS as usize * c + i] += 6.0 * bias[i] / norm;
        }
        w.tensors.get_mut("wte.weight").unwrap().data = TensorData::F32(wte);
        let w = w.convert(WeightDtype::Int8);
        let gpu = match Gpu::new_blocking(&GpuOptions::default()) {
            Ok(g) => Arc::new(g),
            Err(e) => {
                eprintln!("no GPU adapter: {e}");
                std::process::exit(1);
            }
        };
        let tok = Tokenizer::new();
        let reference = ReferenceModel::new(&w);
        let mut engine = WgpuEngine::on(gpu.clone(), &w).expect("per-layer engine");
        let solver = Solver::on(gpu.clone(), &w).expect("solver");
        println!("adapter: {}", gpu.adapter);
        println!(
            "model: default size (4 layers, width 128, 128 positions), int8, biased towards <eos>"
        );
        let problems: Vec<Problem> = (0..n as u64)
            .map(|i| Problem::new(1000 + (i * 7919) % 9000, 10 + (i * 104_729) % 9990))
            .collect();
        let stages = [
            Stage::latent(0, 1, 5),
            Stage::latent(5, 2, 5),
            Stage::latent(0, 2, 5).with_kind(StageKind::Pause),
        ];
        // Warm-up: the first use compiles pipelines.
        block_on(solver.solve(&tok, &problems[..1], &stages[1], false)).unwrap();
        block_on(engine.solve(&tok, &problems[0], &stages[1], false)).unwrap();
        println!(
            "| stage | problems | tokens/problem | reference ms/problem | per-layer WGSL ms/problem (n) | solver, one at a time, ms/problem | solver, one batch, ms/problem | batch vs reference | identical |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for stage in &stages {
            let t = Instant::now();
            let want: Vec<_> = problems
                .iter()
                .map(|p| reference.solve(&tok, p, stage, false).unwrap())
                .collect();
            let reference_ms = t.elapsed().as_secs_f64() * 1e3 / n as f64;
            let t = Instant::now();
            let per_layer: Vec<_> = problems[..n_per_layer]
                .iter()
                .map(|p| block_on(engine.solve(&tok, p, stage, false)).unwrap())
                .collect();
            let per_layer_ms = t.elapsed().as_secs_f64() * 1e3 / n_per_layer.max(1) as f64;
            let t = Instant::now();
            let singles: Vec<_> = problems[..n_per_layer]
                .iter()
                .map(|p| {
                    block_on(solver.solve(&tok, std::slice::from_ref(p), stage, false))
                        .unwrap()
                        .remove(0)
                })
                .collect();
            let single_ms = t.elapsed().as_secs_f64() * 1e3 / n_per_layer.max(1) as f64;
            let t = Instant::now();
            let batch = block_on(solver.solve(&tok, &problems, stage, false)).unwrap();
            let batch_ms = t.elapsed().as_secs_f64() * 1e3 / n as f64;
            let same = |got: &[coconut_core::decoding::Solution]| {
                got.iter()
                    .zip(&want)
                    .filter(|(g, w)| g.generation.ids == w.generation.ids)
                    .count()
            };
            let tokens: usize = want.iter().map(|s| s.generation.ids.len()).sum();
            println!(
                "| {} | {n} | {:.1} | {reference_ms:.2} | {per_layer_ms:.2} ({n_per_layer}) | {single_ms:.2} | {batch_ms:.3} | {:.1}x | {}/{n} batch, {}/{n_per_layer} one at a time, {}/{n_per_layer} per-layer |",
                stage.id(),
                tokens as f64 / n as f64,
                reference_ms / batch_ms,
                same(&batch),
                same(&singles),
                same(&per_layer),
            );
        }
    }
}
