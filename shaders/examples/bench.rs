//! Benchmark of the WGSL engine against the reference engine, in the same run, on the same
//! problems and weights (random, default model size, int8 unless `--dtype f32`); every engine
//! must give the reference's ids for every problem.
//!  1. The per-layer path: time per problem one at a time, dispatches and host time per position.
//!  2. With `--batch N`: the solver (solve.wgsl, one dispatch per solve) one problem at a time and
//!     N problems as one batch, against the reference engine solving the N one by one.
//!
//!  3. With `--weights DIR` instead: a weights folder's own stages (the shipped ones: coupled ids),
//!     its first, all-latent and pause stages on 1-4 digit problems, the per-layer path and the
//!     solver one at a time, and the solver on `--batch N` (default 200) problems, against the
//!     reference engine on the same problems, all in one run.
//!
//! `cargo run --release -p coconut-shaders --example bench -- [--problems N] [--batch N] [--dtype int8|f32] [--eos]`
//! `cargo run --release -p coconut-shaders --example bench -- --weights weights [--problems N] [--batch N]`
//! `--eos` biases the weights towards `<eos>` so generations have trained-like lengths; without
//! it random weights decode until the 128-position limit (the worst case per problem).

fn main() {
    #[cfg(not(target_arch = "wasm32"))]
    native::main();
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use coconut_core::decoding::Solution;
    use coconut_core::problem::Problem;
    use coconut_core::reference::ReferenceModel;
    use coconut_core::stage::{Stage, StageKind};
    use coconut_core::tokenizer::Tokenizer;
    use coconut_core::weights::{eos_biased_weights, random_weights, WeightDtype};
    use coconut_core::ModelConfig;
    use coconut_shaders::{block_on, WgpuEngine};
    use std::time::{Duration, Instant};

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1).cloned())
        };
        let n: usize = value("--problems").map_or(20, |v| v.parse().expect("--problems N"));
        let dtype: WeightDtype =
            value("--dtype").map_or(WeightDtype::Int8, |v| v.parse().expect("dtype"));
        let eos = args.iter().any(|a| a == "--eos");
        let batch: Option<usize> = value("--batch").map(|v| v.parse().expect("--batch N"));
        if let Some(dir) = value("--weights") {
            return folder_table(&dir, n, batch.unwrap_or(200));
        }

        let cfg = ModelConfig::default();
        let w = if eos {
            eos_biased_weights(&cfg, 2026, 6.0)
        } else {
            random_weights(&cfg, 2026)
        };
        let w = w.convert(dtype);
        let tok = Tokenizer::new();
        let reference = ReferenceModel::new(&w);
        let t = Instant::now();
        let mut engine = match WgpuEngine::new_blocking(&w) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("no WGSL engine: {e}");
                std::process::exit(1);
            }
        };
        engine.use_per_layer(true);
        let setup = t.elapsed();
        println!(
            "model: {} layers, width {}, {} heads, {} positions, {dtype:?} weights{}",
            cfg.n_layer,
            cfg.n_embd,
            cfg.n_head,
            cfg.n_positions,
            if eos { ", biased towards <eos>" } else { "" }
        );
        println!("adapter: {}", engine.adapter());
        println!("engine setup (pipelines, buffers, upload): {setup:.1?}");
        let problems: Vec<Problem> = (0..n as u64)
            .map(|i| Problem::new(1000 + (i * 7919) % 9000, 10 + (i * 104_729) % 9990))
            .collect();
        let stages = [
            Stage::latent(0, 1, 5),
            Stage::latent(5, 1, 5),
            Stage::latent(0, 1, 5).with_kind(StageKind::Pause),
        ];
        println!(
            "| stage | problems | tokens/problem | reference ms/problem | wgpu ms/problem | reference ms/position | wgpu ms/position | dispatches/position | submissions/problem | identical | host record ms/position | host submit ms/position | host wait ms/position |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        // Warm-up (first pipeline use).
        block_on(engine.solve(&tok, &problems[0], &stages[1], false)).unwrap();
        for stage in &stages {
            let mut ref_time = Duration::ZERO;
            let mut gpu_time = Duration::ZERO;
            let mut positions = 0usize;
            let mut tokens = 0usize;
            let mut same = 0usize;
            engine.reset_stats();
            for p in &problems {
                let t = Instant::now();
                let want = reference.solve(&tok, p, stage, false).unwrap();
                ref_time += t.elapsed();
                let t = Instant::now();
                let got = block_on(engine.solve(&tok, p, stage, false)).unwrap();
                gpu_time += t.elapsed();
                positions += want.generation.ids.len() - 1;
                tokens += want.generation.ids.len();
                same +=
                    usize::from(got.text == want.text && got.generation.ids == want.generation.ids);
            }
            let st = engine.stats();
            let per = |d: Duration, k: usize| d.as_secs_f64() * 1e3 / k as f64;
            println!(
                "| {} | {n} | {:.1} | {:.2} | {:.2} | {:.3} | {:.3} | {:.1} | {:.1} | {same}/{n} | {:.3} | {:.3} | {:.3} |",
                stage.id(),
                tokens as f64 / n as f64,
                per(ref_time, n),
                per(gpu_time, n),
                per(ref_time, positions),
                per(gpu_time, positions),
                st.dispatches as f64 / st.positions as f64,
                st.submissions as f64 / n as f64,
                st.record_ns as f64 * 1e-6 / st.positions as f64,
                st.submit_ns as f64 * 1e-6 / st.positions as f64,
                st.wait_ns as f64 * 1e-6 / st.positions as f64,
            );
        }
        if let Some(batch) = batch {
            solver_table(&mut engine, &reference, &tok, &stages, &problems, batch);
        }
    }

    /// 1-4 digit problems (both operands drawn), the same for every path.
    fn in_distribution(n: usize, salt: u64) -> Vec<Problem> {
        let digits = |x: u64| 10u64.pow(1 + (x % 4) as u32);
        (0..n as u64)
            .map(|i| {
                let (x, y) = (i * 7919 + salt, i * 104_729 + 3 * salt);
                Problem::new(x % digits(x / 7), y % digits(y / 11))
            })
            .collect()
    }

    /// How many of `got` have the ids of the solution beside them in `want`.
    fn identical(got: &[Solution], want: &[Solution]) -> usize {
        got.iter()
            .zip(want)
            .filter(|(g, w)| g.generation.ids == w.generation.ids)
            .count()
    }

    /// Table 3: a weights folder's stages, each path against the reference in the same run.
    fn folder_table(dir: &str, singles: usize, batch: usize) {
        let folder = coconut_core::manifest::WeightsDir::open(dir).expect("a weights folder");
        let tok = folder.tokenizer().expect("its tokenizer");
        let all_latent = coconut_core::problem::max_steps(folder.manifest.max_digits).to_string();
        let one_by_one = |engine: &mut WgpuEngine, problems: &[Problem], stage: &Stage| {
            let t = Instant::now();
            let solved: Vec<Solution> = problems
                .iter()
                .map(|p| block_on(engine.solve(&tok, p, stage, false)).unwrap())
                .collect();
            (
                solved,
                t.elapsed().as_secs_f64() * 1e3 / problems.len().max(1) as f64,
            )
        };
        println!("weights: {dir}");
        println!(
            "| stage | tokens/problem | reference ms/problem ({batch}) | per-layer one at a time ({singles}) | solver one at a time ({singles}) | solver vs per-layer | solver batch of {batch} ms/problem | batch vs reference | dispatches/problem: per-layer, solver one, batch | identical to the reference |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for id in ["0", all_latent.as_str(), "pause"] {
            let (entry, stage, weights) = folder.stage(id).expect("the stage");
            let reference = ReferenceModel::new(&weights);
            let mut engine = WgpuEngine::new_blocking(&weights).expect("a WGSL engine");
            let problems = in_distribution(batch, 17);
            let t = Instant::now();
            let want: Vec<Solution> = problems
                .iter()
                .map(|p| reference.solve(&tok, p, &stage, false).unwrap())
                .collect();
            let reference_ms = t.elapsed().as_secs_f64() * 1e3 / batch as f64;
            let mut dispatches = Vec::new();
            let mut same = 0;
            let mut times = Vec::new();
            for per_layer in [true, false] {
                engine.use_per_layer(per_layer);
                // First use builds the path's pipelines: outside the timings.
                block_on(engine.solve(&tok, &problems[0], &stage, false)).unwrap();
                engine.reset_stats();
                let (solved, ms) = one_by_one(&mut engine, &problems[..singles], &stage);
                times.push(ms);
                dispatches.push(engine.stats().dispatches as f64 / singles as f64);
                same += identical(&solved, &want);
            }
            engine.reset_stats();
            let t = Instant::now();
            let batched = block_on(engine.solve_batch(&tok, &problems, &stage)).unwrap();
            let batch_ms = t.elapsed().as_secs_f64() * 1e3 / batch as f64;
            dispatches.push(engine.stats().dispatches as f64 / batch as f64);
            same += identical(&batched, &want);
            let tokens: usize = want.iter().map(|s| s.generation.ids.len()).sum();
            println!(
                "| {} | {:.1} | {reference_ms:.2} | {:.2} | {:.2} | {:.2}x | {batch_ms:.3} | {:.2}x | {:.1}, {:.1}, {:.2} | {same}/{} |",
                entry.id,
                tokens as f64 / batch as f64,
                times[0],
                times[1],
                times[0] / times[1],
                reference_ms / batch_ms,
                dispatches[0],
                dispatches[1],
                dispatches[2],
                2 * singles + batch,
            );
        }
    }

    /// Table 2: the solver one problem at a time (`problems`) and `batch` problems in one batch,
    /// against the reference engine on the same `batch` problems one by one.
    fn solver_table(
        engine: &mut WgpuEngine,
        reference: &ReferenceModel,
        tok: &Tokenizer,
        stages: &[Stage],
        singles: &[Problem],
        batch: usize,
    ) {
        engine.use_per_layer(false);
        // The solver's pipeline is built on first use: build it outside the timings.
        if let (Some(p), Some(stage)) = (singles.first(), stages.first()) {
            let t = Instant::now();
            block_on(engine.solve(tok, p, stage, false)).unwrap();
            println!(
                "solver setup (pipeline, first solve): {:.1}ms",
                t.elapsed().as_secs_f64() * 1e3
            );
        }
        let problems: Vec<Problem> = (0..batch as u64)
            .map(|i| Problem::new(1000 + (i * 7919) % 9000, 10 + (i * 104_729) % 9990))
            .collect();
        println!();
        println!(
            "| stage | tokens/problem | reference ms/problem ({batch}) | solver one at a time ms/problem ({}) | solver batch of {batch} ms/problem | batch vs reference | dispatches per batch | identical |",
            singles.len()
        );
        println!("|---|---|---|---|---|---|---|---|");
        for stage in stages {
            let t = Instant::now();
            let want: Vec<Solution> = problems
                .iter()
                .map(|p| reference.solve(tok, p, stage, false).unwrap())
                .collect();
            let reference_ms = t.elapsed().as_secs_f64() * 1e3 / batch as f64;
            let t = Instant::now();
            let one_by_one: Vec<Solution> = singles
                .iter()
                .map(|p| block_on(engine.solve(tok, p, stage, false)).unwrap())
                .collect();
            let single_ms = t.elapsed().as_secs_f64() * 1e3 / singles.len().max(1) as f64;
            engine.reset_stats();
            let t = Instant::now();
            let batched = block_on(engine.solve_batch(tok, &problems, stage)).unwrap();
            let batch_ms = t.elapsed().as_secs_f64() * 1e3 / batch as f64;
            let dispatches = engine.stats().dispatches;
            let same_batch = batched
                .iter()
                .zip(&want)
                .filter(|(g, w)| g.generation.ids == w.generation.ids)
                .count();
            let same_singles = one_by_one
                .iter()
                .zip(singles)
                .filter(|(g, p)| {
                    g.generation.ids
                        == reference
                            .solve(tok, p, stage, false)
                            .unwrap()
                            .generation
                            .ids
                })
                .count();
            let tokens: usize = want.iter().map(|s| s.generation.ids.len()).sum();
            println!(
                "| {} | {:.1} | {reference_ms:.2} | {single_ms:.2} | {batch_ms:.3} | {:.2}x | {dispatches} | {same_batch}/{batch} batch, {same_singles}/{} one at a time |",
                stage.id(),
                tokens as f64 / batch as f64,
                reference_ms / batch_ms,
                singles.len(),
            );
        }
    }
}
