//! The CPU training engine: GPT-2's forward and backward pass written out by hand over flat f32
//! buffers, for the one device every user has. candle composes each layer from many small
//! tensor ops, each allocating, and re-runs the whole prefix for every continuous thought; this
//! engine runs every position of a batch exactly once (thoughts through the keys and values
//! already computed, see [`plan`]), fuses LayerNorm, GELU, attention and the loss with their
//! backward passes ([`kernels`]), sends the matrix products to the `gemm` crate ([`gemm`]), keeps
//! its buffers from step to step ([`engine`]) and splits each batch over the cores
//! ([`sharded`]: [`CpuTrainer`], the engine's parameters, gradients and moments and its
//! step).
//!
//! It computes the same function as the candle model ([`crate::model::Gpt`], which stays the
//! definition and runs on CUDA): the tests below compare loss and every gradient on the same
//! batches, at every kind of stage.

pub mod engine;
pub mod gemm;
pub mod kernels;
pub mod noise;
pub mod params;
pub mod plan;
pub mod sharded;

pub use sharded::{CpuTrainer, StepStats};

#[cfg(test)]
pub(crate) mod tests {
    use super::noise::{Dropout, StepNoise, ThoughtNoise};
    use super::*;
    use crate::batch::{loss, Batch};
    use crate::model::to_host;
    use crate::optim::AdamWConfig;
    use crate::test_support::every_kind_of_stage;
    use candle_core::Device;
    use coconut_core::layout::Layout;
    use coconut_core::tokenizer::Tokenizer;
    use coconut_core::weights::random_weights;
    use coconut_core::{ModelConfig, Problem, Stage};

    fn config() -> ModelConfig {
        ModelConfig {
            n_positions: 96,
            n_embd: 32,
            n_layer: 2,
            n_head: 4,
            ..ModelConfig::default()
        }
    }

    fn adamw() -> AdamWConfig {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weight_decay: 0.1,
            decay_all: false,
        }
    }

    fn problems() -> Vec<Problem> {
        [(7, 5), (347, 285), (9999, 1), (52, 4870), (0, 0), (606, 77)]
            .iter()
            .map(|&(a, b)| Problem::new(a, b))
            .collect()
    }

    fn layouts(stage: &Stage) -> Vec<Layout> {
        crate::test_support::layouts(&problems(), stage)
    }

    /// A two-shard engine on random weights drawn with `seed`, and the test problems laid out
    /// for `stage`.
    fn engine_and_layouts(seed: u64, stage: Stage) -> (CpuTrainer, Vec<Layout>) {
        let engine = CpuTrainer::new(&random_weights(&config(), seed), adamw(), 2).unwrap();
        (engine, layouts(&stage))
    }

    pub(crate) use coconut_core::compare::relative_error as rel_err;

    /// Loss and every parameter's gradient of the candle path (the exact, prefix-recomputing
    /// thought feedback) and of this engine, on the same batch, for several shard counts.
    #[test]
    fn loss_and_gradients_match_the_candle_path() {
        let (weights, model) = crate::test_support::weights_and_candle(&config(), 11);
        for stage in every_kind_of_stage() {
            // Coupled layouts at the offsets training draws: ids other than the sequence's.
            let layouts: Vec<Layout> = layouts(&stage)
                .iter()
                .enumerate()
                .map(|(i, l)| l.shifted(i % 3 * 2))
                .collect();
            let refs: Vec<&Layout> = layouts.iter().collect();
            let batch = crate::test_support::batch(&layouts, &stage);
            let want_loss = loss(&model, &batch).unwrap();
            let want_grads = want_loss.backward().unwrap();
            let want_loss = want_loss.to_scalar::<f32>().unwrap() as f64;
            // The last: the whole batch as one plan on two threads, as a model too large for
            // the caches runs a step of small chunks.
            for (shards, whole) in [(1, false), (2, false), (4, false), (2, true)] {
                let mut engine = CpuTrainer::new(&weights, adamw(), shards).unwrap();
                if whole {
                    engine.streamed_weights = 0;
                }
                let stats = engine
                    .compute(&refs, stage.feeds_back(), StepNoise::NONE)
                    .unwrap();
                let loss_err = (stats.loss - want_loss).abs() / want_loss;
                assert!(
                    loss_err < 1e-5,
                    "{} shards {shards} whole {whole}: loss {} vs {want_loss}",
                    stage.id(),
                    stats.loss
                );
                let no_grad = engine.loss(&refs, stage.feeds_back()).unwrap();
                assert!((no_grad - stats.loss).abs() < 1e-6 * stats.loss);
                for ((name, var), (_, range)) in
                    model.named_vars().iter().zip(&engine.layout().tensors)
                {
                    let want = to_host(want_grads.get(var.as_tensor()).unwrap()).unwrap();
                    let got = &engine.grads()[range.clone()];
                    let e = rel_err(got, &want);
                    assert!(
                        e < 1e-5,
                        "{} shards {shards} whole {whole} {name}: relative error {e}",
                        stage.id()
                    );
                }
            }
        }
    }

    /// The seed's loss (per-example means in groups, the thought-norm term, GPT-2's vocabulary)
    /// and its gradient as the candle path's autograd computes them, at each of its stages.
    #[test]
    fn the_seeds_objective_matches_the_candle_path() {
        use crate::objective::Objective;
        use coconut_core::seed::layout::{SeedLayout, SeedStage};
        let config = ModelConfig {
            vocab_size: coconut_core::seed::VOCAB,
            n_positions: 96,
            n_embd: 16,
            n_layer: 2,
            n_head: 2,
            ..ModelConfig::default()
        };
        let (weights, model) = crate::test_support::weights_and_candle(&config, 23);
        let tokenizer = &coconut_core::seed::tokenizer::Gpt2Tokenizer::new();
        let problems = [(347, 285), (12, 34), (99, 99), (5083, 4917), (70, 30)];
        for stage in SeedStage::ALL {
            let layouts: Vec<Layout> = problems
                .iter()
                .map(|&(a, b)| SeedLayout::new(tokenizer, &Problem::new(a, b), stage))
                .map(|l| l.training_layout())
                .collect();
            let refs: Vec<&Layout> = layouts.iter().collect();
            let feeds_back = stage.index() > 0;
            for objective in [
                Objective::default(),
                Objective {
                    group: Some(1),
                    thought_norm: 0.05,
                },
                Objective {
                    group: Some(2),
                    thought_norm: 0.001,
                },
            ] {
                let mut batch = Batch::of_layouts(&refs, feeds_back, &Device::Cpu).unwrap();
                batch.weigh(&refs, &objective).unwrap();
                let want_loss = loss(&model, &batch).unwrap();
                let want_grads = want_loss.backward().unwrap();
                let want_loss = want_loss.to_scalar::<f32>().unwrap() as f64;
                let mut engine = CpuTrainer::new(&weights, adamw(), 2).unwrap();
                let stats = engine
                    .compute_with(&refs, feeds_back, StepNoise::NONE, &objective)
                    .unwrap();
                let at = format!("stage {} {objective:?}", stage.index());
                let loss_err = (stats.loss - want_loss).abs() / want_loss;
                assert!(loss_err < 1e-5, "{at}: loss {} vs {want_loss}", stats.loss);
                for ((name, var), (_, range)) in
                    model.named_vars().iter().zip(&engine.layout().tensors)
                {
                    let want = to_host(want_grads.get(var.as_tensor()).unwrap()).unwrap();
                    let e = rel_err(&engine.grads()[range.clone()], &want);
                    assert!(e < 1e-5, "{at} {name}: relative error {e}");
                }
            }
        }
        // The norm term is in the loss: a larger weight gives a larger loss at stage 3.
        let layouts: Vec<Layout> = problems
            .iter()
            .map(|&(a, b)| SeedLayout::new(tokenizer, &Problem::new(a, b), SeedStage::ALL[3]))
            .map(|l| l.training_layout())
            .collect();
        let refs: Vec<&Layout> = layouts.iter().collect();
        let mut engine = CpuTrainer::new(&weights, adamw(), 1).unwrap();
        let with = |engine: &mut CpuTrainer, thought_norm: f64| {
            let objective = Objective {
                group: Some(1),
                thought_norm,
            };
            engine
                .compute_with(&refs, true, StepNoise::NONE, &objective)
                .unwrap()
                .loss
        };
        let (plain, normed) = (with(&mut engine, 0.0), with(&mut engine, 1.0));
        assert!(normed > plain + 0.5, "{normed} vs {plain}");
    }

    /// Greedy generation token for token as the candle engine's (itself checked against the
    /// reference engine), for every kind of stage, with prompts of different lengths in one batch.
    #[test]
    fn generation_matches_the_candle_engine() {
        let (weights, model) = crate::test_support::weights_and_candle(&config(), 14);
        let tok = Tokenizer::new();
        let problems = [
            Problem::new(7, 5),
            Problem::new(347, 285),
            Problem::new(9999, 1),
        ];
        for stage in every_kind_of_stage() {
            let prompts: Vec<Vec<u32>> = problems
                .iter()
                .map(|p| coconut_core::layout::prompt(&tok, p, &stage).unwrap())
                .collect();
            let mut engine = CpuTrainer::new(&weights, adamw(), 2).unwrap();
            let got = engine.generate(&prompts, &stage, 2).unwrap();
            for (prompt, got) in prompts.iter().zip(&got) {
                let want = crate::eval::generate(&model, std::slice::from_ref(prompt), &stage)
                    .unwrap()
                    .remove(0);
                assert_eq!(got, &want, "{}", stage.id());
            }
        }
    }

    /// The last-steps order, prompts of different lengths in one batch, each starting its
    /// thoughts where it generates `<latent>`: the reference engine's generations.
    #[test]
    fn last_steps_generation_matches_the_reference_engine() {
        let weights = crate::test_support::trigger_prone_weights(4);
        let reference = coconut_core::reference::ReferenceModel::new(&weights);
        let tok = Tokenizer::new();
        let stage = crate::test_support::last_steps_stage();
        let problems: Vec<Problem> = (0..24).map(|i| Problem::new(7 + 411 * i, 58 + i)).collect();
        let prompts: Vec<Vec<u32>> = problems
            .iter()
            .map(|p| coconut_core::layout::prompt(&tok, p, &stage).unwrap())
            .collect();
        let mut engine = CpuTrainer::new(&weights, adamw(), 2).unwrap();
        let got = engine.generate(&prompts, &stage, 5).unwrap();
        let mut triggered = 0;
        for (p, got) in problems.iter().zip(&got) {
            let want = reference.solve(&tok, p, &stage, false).unwrap().generation;
            assert_eq!(got, &want.ids, "{p}");
            triggered += usize::from(!want.thoughts.is_empty());
        }
        assert!(
            triggered > 0 && triggered < problems.len(),
            "{triggered} triggered"
        );
    }

    /// The logits at the target positions (what teacher-forced accuracy reads) equal the
    /// candle path's, so the two agree on every argmax but exact ties.
    #[test]
    fn target_logits_match_the_candle_path() {
        let (weights, model) = crate::test_support::weights_and_candle(&config(), 15);
        for stage in every_kind_of_stage() {
            let layouts = layouts(&stage);
            let refs: Vec<&Layout> = layouts.iter().collect();
            let batch = crate::test_support::batch(&layouts, &stage);
            let want = to_host(&crate::batch::target_logits(&model, &batch).unwrap()).unwrap();
            let plan = plan::Plan::new(&refs, stage.feeds_back()).unwrap();
            let layout = params::ParamLayout::new(&weights.config);
            let flat = layout.flatten(&weights);
            let mut ws = engine::Workspace::default();
            let got = engine::target_logits(&layout, &flat, &plan, &mut ws);
            let e = rel_err(got, &want);
            assert!(e < 1e-5, "{}: relative error {e}", stage.id());
            let mut engine = CpuTrainer::for_inference(&weights).unwrap();
            let forced = engine
                .teacher_forced_correct(&refs, stage.feeds_back(), 4)
                .unwrap();
            let set = crate::eval::EvalSet {
                tokenizer: &Tokenizer::new(),
                problems: &problems(),
                stage: &stage,
                batch_size: 4,
            };
            let want_forced = crate::eval::teacher_forced_correct(&model, set).unwrap();
            assert_eq!(forced, want_forced, "{}", stage.id());
        }
    }

    /// The analytic gradient against central differences of the loss (with `noise`), at the
    /// all-latent stage where most of the loss reaches the question only through the chain of
    /// thoughts. An independent check of the backward pass (no candle involved).
    fn assert_gradients_match_finite_differences(noise: StepNoise) {
        let (mut engine, layouts) = engine_and_layouts(13, Stage::latent(5, 1, 5));
        let refs: Vec<&Layout> = layouts.iter().collect();
        engine.compute(&refs, true, noise).unwrap();
        let grads = engine.grads().to_vec();
        let tensors = engine.layout().tensors.clone();
        for name in [
            "wte.weight",
            "wpe.weight",
            "h.0.attn.c_attn.weight",
            "h.0.attn.c_proj.weight",
            "h.1.mlp.c_fc.weight",
            "h.1.mlp.c_proj.weight",
            "ln_f.weight",
        ] {
            let range = &tensors.iter().find(|(s, _)| s.name == name).unwrap().1;
            // The entry with the largest gradient: its finite difference stands above rounding.
            let i = range
                .clone()
                .max_by(|&a, &b| grads[a].abs().total_cmp(&grads[b].abs()))
                .unwrap();
            let h = 1e-2;
            let original = engine.params()[i];
            engine.params_mut()[i] = original + h;
            let up = engine.compute(&refs, true, noise).unwrap().loss;
            engine.params_mut()[i] = original - h;
            let down = engine.compute(&refs, true, noise).unwrap().loss;
            engine.params_mut()[i] = original;
            let numeric = (up - down) / (2.0 * h as f64);
            let analytic = grads[i] as f64;
            assert!(
                (numeric - analytic).abs() < 0.03 * analytic.abs(),
                "{name}[{}]: analytic {analytic}, numeric {numeric}",
                i - range.start
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences_through_the_thoughts() {
        assert_gradients_match_finite_differences(StepNoise::NONE);
    }

    /// With dropout, the gradient is the derivative of the loss with the step's masks (the
    /// backward pass draws the forward's again), and the masks do change the loss.
    #[test]
    fn dropout_gradients_match_finite_differences() {
        let dropout = |key| StepNoise {
            thoughts: None,
            dropout: Some(Dropout { p: 0.3, key }),
        };
        assert_gradients_match_finite_differences(dropout(4));
        let (mut engine, layouts) = engine_and_layouts(13, Stage::latent(5, 1, 5));
        let refs: Vec<&Layout> = layouts.iter().collect();
        let plain = engine.loss(&refs, true).unwrap();
        let dropped = engine.compute(&refs, true, dropout(4)).unwrap().loss;
        let again = engine.compute(&refs, true, dropout(4)).unwrap().loss;
        let other = engine.compute(&refs, true, dropout(5)).unwrap().loss;
        assert_eq!(dropped, again);
        assert_ne!(dropped, plain);
        assert_ne!(dropped, other);
    }

    /// Thought noise changes the loss only where thoughts are fed back, by the same amount for
    /// the same key, and the step's gradient then still descends the noisy loss.
    #[test]
    fn thought_noise_reaches_only_fed_back_thoughts() {
        let noise = |key| StepNoise {
            thoughts: Some(ThoughtNoise { std: 0.5, key }),
            dropout: None,
        };
        for (stage, fed) in [
            (Stage::latent(0, 1, 5), false),
            (Stage::latent(3, 2, 5), true),
            (
                Stage::latent(5, 2, 5).with_kind(coconut_core::stage::StageKind::Pause),
                false,
            ),
        ] {
            let (mut engine, layouts) = engine_and_layouts(17, stage);
            let refs: Vec<&Layout> = layouts.iter().collect();
            let clean = engine
                .compute(&refs, stage.feeds_back(), StepNoise::NONE)
                .unwrap()
                .loss;
            let noisy = engine.compute(&refs, stage.feeds_back(), noise(1)).unwrap();
            let again = engine.compute(&refs, stage.feeds_back(), noise(1)).unwrap();
            let other = engine.compute(&refs, stage.feeds_back(), noise(2)).unwrap();
            assert_eq!(noisy.loss, again.loss, "{}", stage.id());
            assert_eq!(noisy.loss != clean, fed, "{}", stage.id());
            assert_eq!(noisy.loss != other.loss, fed, "{}", stage.id());
            if fed {
                // A small step against the noisy gradient lowers the same noisy loss.
                let before = again.loss;
                engine.apply(1e-3, 1.0);
                let after = engine.compute(&refs, true, noise(1)).unwrap().loss;
                assert!(after < before, "{after} vs {before}");
            }
        }
    }

    /// A batch mixing layouts of several stages (Coconut's data mixing) has the loss and
    /// gradient of its per-stage parts computed by the candle path, weighted by target count.
    #[test]
    fn a_batch_of_mixed_stages_matches_its_parts() {
        let (weights, model) = crate::test_support::weights_and_candle(&config(), 16);
        let tok = Tokenizer::new();
        let stages = [0, 3, 1, 3, 2, 0].map(|k| Stage::latent(k, 1, 5));
        let mixed: Vec<Layout> = problems()
            .iter()
            .zip(&stages)
            .map(|(p, s)| Layout::new(&tok, p, s).unwrap())
            .collect();
        let refs: Vec<&Layout> = mixed.iter().collect();
        let mut engine = CpuTrainer::new(&weights, adamw(), 2).unwrap();
        let stats = engine.compute(&refs, true, StepNoise::NONE).unwrap();
        let total: usize = mixed
            .iter()
            .map(|l| l.loss_mask.iter().filter(|&&m| m).count())
            .sum();
        let (mut want_loss, mut want_grads) = (0.0, vec![0f32; engine.grads().len()]);
        for k in 0..4 {
            let stage = Stage::latent(k, 1, 5);
            let part: Vec<&Layout> = mixed
                .iter()
                .zip(&stages)
                .filter(|(_, s)| **s == stage)
                .map(|(l, _)| l)
                .collect();
            let batch = Batch::new(&part, &stage, &Device::Cpu).unwrap();
            let weight = batch.target_owner.len() as f32 / total as f32;
            let l = loss(&model, &batch).unwrap();
            let grads = l.backward().unwrap();
            want_loss += l.to_scalar::<f32>().unwrap() as f64 * weight as f64;
            for ((_, var), (_, range)) in model.named_vars().iter().zip(&engine.layout().tensors) {
                let g = to_host(grads.get(var.as_tensor()).unwrap()).unwrap();
                for (w, g) in want_grads[range.clone()].iter_mut().zip(g) {
                    *w += weight * g;
                }
            }
        }
        assert!((stats.loss - want_loss).abs() < 1e-5 * want_loss);
        let e = rel_err(engine.grads(), &want_grads);
        assert!(e < 1e-5, "relative error {e}");
    }

    /// AdamW over the flat buffers against its formula in f64, from the engine's own gradient,
    /// over two steps (bias correction changes with t) and both decay groups.
    #[test]
    fn adamw_update_follows_its_formula() {
        let (mut engine, layouts) = engine_and_layouts(12, Stage::latent(1, 1, 5));
        let refs: Vec<&Layout> = layouts.iter().collect();
        let (lr, scale) = (1e-2, 0.5);
        let n = engine.params().len();
        let (mut m, mut v) = (vec![0f64; n], vec![0f64; n]);
        let decay: Vec<f64> = engine
            .layout()
            .decayed()
            .flat_map(|(r, d)| std::iter::repeat_n(if d { 0.1 } else { 0.0 }, r.len()))
            .collect();
        for t in 1..=2 {
            engine.compute(&refs, true, StepNoise::NONE).unwrap();
            let before: Vec<f64> = engine.params().iter().map(|&x| x as f64).collect();
            let grads: Vec<f64> = engine.grads().iter().map(|&g| g as f64 * scale).collect();
            engine.apply(lr, scale);
            let (c1, c2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.98f64.powi(t));
            let mut worst = 0f64;
            for i in 0..n {
                m[i] = 0.9 * m[i] + 0.1 * grads[i];
                v[i] = 0.98 * v[i] + 0.02 * grads[i] * grads[i];
                let update = (m[i] / c1) / ((v[i] / c2).sqrt() + 1e-8);
                let want = before[i] * (1.0 - lr * decay[i]) - lr * update;
                worst = worst.max((engine.params()[i] as f64 - want).abs());
            }
            assert!(worst < 1e-6, "step {t}: largest deviation {worst}");
        }
        assert_eq!(engine.adam_t, 2);
        engine.reset_optimizer();
        assert!(engine
            .adam_m
            .iter()
            .chain(&engine.adam_v)
            .all(|&x| x == 0.0));
    }
}
