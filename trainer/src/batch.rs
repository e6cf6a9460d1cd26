//! Batches of laid-out problems and the forward pass with thought feedback.
//!
//! Thoughts are computed position after position, exactly: thought j of example i sits at
//! `f_i + j`, `f_i` its first thought slot (right after `<bot>`, or after the written steps in the
//! last-steps order). Pass j runs the model over the prefix up to `max_i(f_i + j)` (attention
//! is causal, so positions past an example's own never affect it), takes the final hidden state
//! at `f_i + j - 1` and writes it into slot `f_i + j`. After the last thought one forward over
//! the whole sequence gives the outputs. Every step is a differentiable op, so gradients flow
//! through the whole chain of thoughts.

use crate::model::Gpt;
use crate::objective::{ExampleWeights, Objective};
use anyhow::{ensure, Result};
use candle_core::{Device, Tensor, D};
use coconut_core::layout::Layout;
use coconut_core::tokenizer::PAD;
use coconut_core::Stage;

/// A right-padded batch of layouts of one stage.
pub struct Batch {
    /// Token ids `(B, T)`, padded with `<pad>`; thought slots hold `<latent>`.
    pub ids: Tensor,
    /// Position ids `(B, T)` (the layouts'; padding at 0).
    pub positions: Tensor,
    /// Position of the first thought slot per example.
    pub first_thoughts: Vec<usize>,
    /// Thought slots per example (the stage's count, or with coupled ids its columns').
    pub thoughts: Vec<usize>,
    /// Whether thoughts are fed-back hidden states (false: the `<latent>` embedding stays).
    pub feeds_back: bool,
    /// Flat indices `b * T + t - 1` of the outputs that predict a target token.
    pub predictors: Tensor,
    /// The target ids, one per predictor.
    pub targets: Tensor,
    /// Each target's weight in the loss (`None`: the mean over the targets).
    pub target_weights: Option<Tensor>,
    /// Flat indices `b * T + t` of the outputs whose L2 norm enters the loss, and their
    /// weights (the seed's thought-norm term, [`crate::objective`]); `None` without the term.
    pub norm_rows: Option<(Tensor, Tensor)>,
    /// Which example each predictor belongs to (host side, for per-example accuracy).
    pub target_owner: Vec<usize>,
    /// Non-padding tokens in the batch.
    pub tokens: usize,
}

impl Batch {
    /// Stacks `layouts` (all laid out for `stage`) into one batch on `device`.
    pub fn new(layouts: &[&Layout], stage: &Stage, device: &Device) -> Result<Batch> {
        for layout in layouts {
            ensure!(
                layout.scheme == stage.positions.scheme(),
                "layout has {} position ids, stage {} has {}",
                layout.scheme,
                stage.id(),
                stage.positions.scheme()
            );
            ensure!(
                !stage.positions.is_absolute() || layout.thoughts == stage.thoughts(),
                "layout has {} thoughts, stage {} has {}",
                layout.thoughts,
                stage.id(),
                stage.thoughts()
            );
        }
        Batch::of_layouts(layouts, stage.feeds_back(), device)
    }

    /// Stacks `layouts` of any model family (each with its own thoughts and position ids) into
    /// one batch on `device`, their thoughts fed back when `feeds_back`.
    pub fn of_layouts(layouts: &[&Layout], feeds_back: bool, device: &Device) -> Result<Batch> {
        ensure!(!layouts.is_empty(), "empty batch");
        let b = layouts.len();
        let t = layouts.iter().map(|l| l.ids.len()).max().unwrap_or(0);
        let mut ids = vec![PAD; b * t];
        let mut positions = vec![0u32; b * t];
        let (mut predictors, mut targets, mut owner) = (Vec::new(), Vec::new(), Vec::new());
        for (i, layout) in layouts.iter().enumerate() {
            ids[i * t..i * t + layout.ids.len()].copy_from_slice(&layout.ids);
            positions[i * t..i * t + layout.ids.len()].copy_from_slice(&layout.positions);
            for (pos, &is_target) in layout.loss_mask.iter().enumerate() {
                if is_target && pos > 0 {
                    predictors.push((i * t + pos - 1) as u32);
                    targets.push(layout.ids[pos]);
                    owner.push(i);
                }
            }
        }
        ensure!(!targets.is_empty(), "batch has no target token");
        Ok(Batch {
            ids: Tensor::from_vec(ids, (b, t), device)?,
            positions: Tensor::from_vec(positions, (b, t), device)?,
            first_thoughts: layouts.iter().map(|l| l.first_thought).collect(),
            thoughts: layouts.iter().map(|l| l.thoughts).collect(),
            feeds_back,
            predictors: Tensor::new(predictors.as_slice(), device)?,
            targets: Tensor::new(targets.as_slice(), device)?,
            target_owner: owner,
            target_weights: None,
            norm_rows: None,
            tokens: layouts.iter().map(|l| l.ids.len()).sum(),
        })
    }

    /// Weighs the batch's targets and thought outputs as `objective` forms the loss over
    /// `layouts` (those the batch was made of, in order).
    pub fn weigh(&mut self, layouts: &[&Layout], objective: &Objective) -> Result<()> {
        self.weigh_with(layouts, &objective.for_layouts(layouts, self.feeds_back))
    }

    /// Weighs the batch's targets and thought outputs with each example's given weights.
    pub fn weigh_with(&mut self, layouts: &[&Layout], weights: &[ExampleWeights]) -> Result<()> {
        ensure!(weights.len() == layouts.len(), "one weight per example");
        let device = self.targets.device().clone();
        let per_target: Vec<f32> = self
            .target_owner
            .iter()
            .map(|&i| weights[i].target)
            .collect();
        self.target_weights = Some(Tensor::new(per_target.as_slice(), &device)?);
        let t = self.ids.dim(1)?;
        let (mut rows, mut row_weights) = (Vec::new(), Vec::new());
        for (i, (layout, w)) in layouts.iter().zip(weights).enumerate() {
            if w.thought_norm != 0.0 && self.feeds_back {
                for pos in layout.thought_positions() {
                    rows.push((i * t + pos) as u32);
                    row_weights.push(w.thought_norm);
                }
            }
        }
        self.norm_rows = (!rows.is_empty()).then_some((
            Tensor::new(rows.as_slice(), &device)?,
            Tensor::new(row_weights.as_slice(), &device)?,
        ));
        Ok(())
    }

    pub fn size(&self) -> usize {
        self.first_thoughts.len()
    }
}

/// Final hidden states `(B, T, C)` of a batch, thoughts fed back position after position.
pub fn hidden_states(model: &Gpt, batch: &Batch) -> Result<Tensor> {
    hidden_states_with(model, batch, false)
}

/// [`hidden_states`], optionally cutting the gradient at each thought (to test that it flows).
fn hidden_states_with(model: &Gpt, batch: &Batch, detach_thoughts: bool) -> Result<Tensor> {
    let mut embeds = model.embed(&batch.ids)?; // (B, T, C)
    for pass in batch.thought_passes()? {
        let (b, _, c) = embeds.dims3()?;
        let prefix = model.forward_at(
            &embeds.narrow(1, 0, pass.end)?,
            Some(&batch.positions.narrow(1, 0, pass.end)?),
            None,
        )?; // (B, end, C)
        let mut thought = prefix
            .reshape((b * pass.end, c))?
            .index_select(&pass.sources, 0)?; // (B, C)
        if detach_thoughts {
            thought = thought.detach();
        }
        embeds = pass.feed(&embeds, &thought)?; // (B, T, C)
    }
    model.forward_at(&embeds, Some(&batch.positions), None)
}

/// Thought pass j of a batch: a forward over a prefix whose last outputs are the examples'
/// thoughts j, written into their slots.
pub(crate) struct ThoughtPass {
    /// The pass runs positions `0..end`: up to the last slot `f_i + j` (attention is causal, so
    /// the positions past an example's own slot never reach its thought).
    pub end: usize,
    /// Flat indices `i * end + f_i + j - 1` into the pass's outputs `(B * end, C)`: the thoughts
    /// (examples without a thought j take some row, left unused).
    pub sources: Tensor,
    /// 1 at each slot `f_i + j` of an example with a thought j, 0 elsewhere: `(B, T, 1)`.
    slot: Tensor,
    /// `1 - slot`.
    keep: Tensor,
}

impl ThoughtPass {
    /// The embeddings `(B, T, C)` with `thoughts` `(B, C)` written into the pass's slots.
    pub fn feed(&self, embeds: &Tensor, thoughts: &Tensor) -> Result<Tensor> {
        Ok((embeds.broadcast_mul(&self.keep)?
            + self.slot.broadcast_mul(&thoughts.unsqueeze(1)?)?)?)
    }

    /// The gradient of [`ThoughtPass::feed`]'s output `(B, T, C)` split into that of the
    /// embeddings it kept `(B, T, C)` and that of the thoughts `(B, C)`.
    pub fn feed_backward(&self, grad: &Tensor) -> Result<(Tensor, Tensor)> {
        let kept = grad.broadcast_mul(&self.keep)?;
        let thoughts = grad.broadcast_mul(&self.slot)?.sum(1)?;
        Ok((kept, thoughts))
    }
}

impl Batch {
    /// The thought passes, in order (none unless thoughts are fed back).
    pub(crate) fn thought_passes(&self) -> Result<Vec<ThoughtPass>> {
        if !self.feeds_back {
            return Ok(Vec::new());
        }
        let (b, t) = self.ids.dims2()?;
        let device = self.ids.device();
        let most = self.thoughts.iter().copied().max().unwrap_or(0);
        (0..most)
            .map(|j| {
                let has = |i: usize| self.thoughts[i] > j;
                let end = (0..b)
                    .filter(|&i| has(i))
                    .map(|i| self.first_thoughts[i] + j)
                    .max()
                    .unwrap_or(1);
                let sources: Vec<u32> = (0..b)
                    .map(|i| (i * end + (self.first_thoughts[i] + j - 1).min(end - 1)) as u32)
                    .collect();
                let mut slot = vec![0f32; b * t];
                for (i, first) in self.first_thoughts.iter().enumerate() {
                    if has(i) {
                        slot[i * t + first + j] = 1.0;
                    }
                }
                let slot = Tensor::from_vec(slot, (b, t, 1), device)?; // (B, T, 1)
                Ok(ThoughtPass {
                    end,
                    sources: Tensor::new(sources.as_slice(), device)?,
                    keep: slot.affine(-1.0, 1.0)?,
                    slot,
                })
            })
            .collect()
    }
}

/// Logits `(N, V)` of the outputs that predict the batch's N target tokens.
pub fn target_logits(model: &Gpt, batch: &Batch) -> Result<Tensor> {
    let hidden = hidden_states(model, batch)?; // (B, T, C)
    predicted_logits(model, batch, &hidden)
}

fn predicted_logits(model: &Gpt, batch: &Batch, hidden: &Tensor) -> Result<Tensor> {
    let (b, t, c) = hidden.dims3()?;
    let rows = hidden
        .reshape((b * t, c))?
        .index_select(&batch.predictors, 0)?; // (N, C)
    model.logits(&rows)
}

/// The batch's loss (a scalar tensor): the mean cross-entropy over its target tokens, or as
/// [`Batch::weigh`] weighed them, plus the weighted thought-output norms.
pub fn loss(model: &Gpt, batch: &Batch) -> Result<Tensor> {
    loss_of_hidden(model, batch, &hidden_states(model, batch)?)
}

/// [`loss`] from the batch's final hidden states `(B, T, C)`.
fn loss_of_hidden(model: &Gpt, batch: &Batch, hidden: &Tensor) -> Result<Tensor> {
    let loss = target_loss(model, batch, hidden, 0..batch.targets.dim(0)?)?;
    Ok(match thought_norm_loss(batch, hidden)? {
        Some(norms) => (loss + norms)?,
        None => loss,
    })
}

/// The share of [`loss`]'s cross-entropy that the targets `range` (of the batch's N) make,
/// weighed as the whole loss weighs them (the mean's 1/N included), from the final hidden
/// states `(B, T, C)`: the loss's head can be computed a part of the targets at a time.
pub(crate) fn target_loss(
    model: &Gpt,
    batch: &Batch,
    hidden: &Tensor,
    range: std::ops::Range<usize>,
) -> Result<Tensor> {
    let n = batch.targets.dim(0)?;
    let (b, t, c) = hidden.dims3()?;
    let predictors = batch.predictors.narrow(0, range.start, range.len())?;
    let rows = hidden.reshape((b * t, c))?.index_select(&predictors, 0)?; // (n, C)
    let targets = batch.targets.narrow(0, range.start, range.len())?;
    let log_p = candle_nn::ops::log_softmax(&model.logits(&rows)?, D::Minus1)?
        .gather(&targets.unsqueeze(1)?, 1)?; // (n, 1)
    Ok(match &batch.target_weights {
        // candle's cross_entropy (the mean over the targets), written out for a share of them.
        None => log_p.sum_all()?.affine(-1.0 / n as f64, 0.0)?,
        Some(w) => {
            let w = w.narrow(0, range.start, range.len())?;
            (log_p.squeeze(1)? * w)?.sum_all()?.neg()?
        }
    })
}

/// The weighted thought-output norms of [`loss`] (the seed's term), if the batch has any.
pub(crate) fn thought_norm_loss(batch: &Batch, hidden: &Tensor) -> Result<Option<Tensor>> {
    let Some((rows, weights)) = &batch.norm_rows else {
        return Ok(None);
    };
    let (b, t, c) = hidden.dims3()?;
    let outputs = hidden.reshape((b * t, c))?.index_select(rows, 0)?; // (K, C)
    let norms = outputs.sqr()?.sum(1)?.sqrt()?; // (K)
    Ok(Some((norms * weights)?.sum_all()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::to_host;
    use coconut_core::reference::ReferenceModel;
    use coconut_core::{ModelConfig, Problem};

    fn config() -> ModelConfig {
        ModelConfig {
            n_positions: 96,
            n_embd: 16,
            n_layer: 2,
            n_head: 2,
            ..ModelConfig::default()
        }
    }

    /// Problems with different prompt lengths, so `<bot>` sits at different positions.
    fn layouts(stage: &Stage) -> Vec<Layout> {
        let problems = [(7, 5), (347, 285), (9999, 1)].map(|(a, b)| Problem::new(a, b));
        crate::test_support::layouts(&problems, stage)
    }

    /// The reference engine's logits at every position of a layout, thoughts fed back one by one.
    fn reference_logits(
        reference: &ReferenceModel,
        layout: &Layout,
        stage: &Stage,
    ) -> Vec<Vec<f32>> {
        let mut cache = reference.new_cache();
        let mut hidden = Vec::new();
        let mut out = Vec::new();
        for (t, &id) in layout.ids.iter().enumerate() {
            let input = if layout.thought_positions().contains(&t) && stage.feeds_back() {
                hidden.clone()
            } else {
                reference.token_embedding(id).unwrap().to_vec()
            };
            hidden = reference
                .step(&mut cache, &input, layout.positions[t] as usize, None)
                .unwrap();
            out.push(reference.logits(&hidden));
        }
        out
    }

    #[test]
    fn batched_thought_feedback_matches_the_reference_engine() {
        let (weights, model) = crate::test_support::weights_and_candle(&config(), 17);
        let reference = ReferenceModel::new(&weights);
        for stage in crate::test_support::every_kind_of_stage() {
            let layouts = layouts(&stage);
            let batch = crate::test_support::batch(&layouts, &stage);
            let hidden = hidden_states(&model, &batch).unwrap();
            let logits = to_host(&model.logits(&hidden).unwrap()).unwrap();
            let t = batch.ids.dim(1).unwrap();
            for (i, layout) in layouts.iter().enumerate() {
                let want = reference_logits(&reference, layout, &stage);
                for (pos, want) in want.iter().enumerate() {
                    let got = &logits[(i * t + pos) * 22..(i * t + pos + 1) * 22];
                    let e = coconut_core::compare::relative_error(got, want);
                    assert!(
                        e < 1e-5,
                        "{} example {i} position {pos}: relative error {e}",
                        stage.id()
                    );
                }
            }
        }
    }

    #[test]
    fn loss_covers_exactly_the_masked_targets() {
        let stage = Stage::latent(2, 1, 5);
        let layouts = layouts(&stage);
        let batch = crate::test_support::batch(&layouts, &stage);
        let expected: usize = layouts
            .iter()
            .map(|l| l.loss_mask.iter().filter(|&&m| m).count())
            .sum();
        assert_eq!(batch.targets.dim(0).unwrap(), expected);
        // The first target of 7 + 5 follows its last thought: predicted from that thought's output.
        let l = &layouts[0];
        let first = l.loss_mask.iter().position(|&m| m).unwrap();
        assert_eq!(first, l.bot + 1 + l.thoughts);
        assert_eq!(
            batch.predictors.to_vec1::<u32>().unwrap()[0] as usize,
            first - 1
        );
    }

    #[test]
    fn gradients_flow_through_the_chain_of_thoughts() {
        let model = Gpt::new_random(&config(), 5, &Device::Cpu).unwrap();
        let stage = Stage::latent(4, 1, 5);
        let layouts = layouts(&stage);
        let batch = crate::test_support::batch(&layouts, &stage);
        let grads_of = |detach: bool| {
            let hidden = hidden_states_with(&model, &batch, detach).unwrap();
            let (b, t, c) = hidden.dims3().unwrap();
            let rows = hidden
                .reshape((b * t, c))
                .unwrap()
                .index_select(&batch.predictors, 0)
                .unwrap();
            let logits = model.logits(&rows).unwrap();
            let loss = candle_nn::loss::cross_entropy(&logits, &batch.targets).unwrap();
            (to_host(&loss).unwrap()[0], loss.backward().unwrap())
        };
        let (loss_full, full) = grads_of(false);
        let (loss_cut, cut) = grads_of(true);
        assert_eq!(
            loss_full, loss_cut,
            "detaching must not change the forward pass"
        );
        // Every parameter gets a gradient, and the part that flows back through the thoughts is
        // not negligible: the gradients differ from those of the cut chain.
        for (name, var) in model.named_vars() {
            let g = to_host(full.get(var.as_tensor()).unwrap()).unwrap();
            assert!(g.iter().any(|x| *x != 0.0), "{name}: zero gradient");
        }
        let w = model
            .named_vars()
            .into_iter()
            .find(|(n, _)| n == "h.0.mlp.c_fc.weight")
            .unwrap()
            .1;
        let (a, b) = (
            to_host(full.get(w.as_tensor()).unwrap()).unwrap(),
            to_host(cut.get(w.as_tensor()).unwrap()).unwrap(),
        );
        let diff: f32 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt();
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            diff > 1e-3 * norm,
            "through-thought gradient {diff} vs total {norm}"
        );
    }
}
