//! Activation checkpointing for the candle model: a batch's loss and gradient computed while
//! holding one block's activations at a time, not every block's of every thought pass.
//!
//! Autograd keeps every intermediate tensor of the forward graph until the backward pass: for
//! a GPT-2, some twenty floats per token and width in each block, for every token of every pass,
//! and the candle path runs one pass per thought over its prefix ([`crate::batch`]). Here the
//! forward runs without a graph (each block's output detached), keeping only each block's input
//! `(B, T, C)`. The backward then walks the blocks from the last: it recomputes a block from its
//! kept input, made a leaf variable, with a graph, and back-propagates the gradient of the
//! block's output as the gradient of the scalar `sum(output * grad)`, which yields the
//! parameters' gradients and the gradient of the block's input. The chain of thoughts is undone
//! the same way, pass by pass: the gradient reaching a thought's slot is the gradient of the
//! previous pass's output where the thought was read. The price is one more forward per step.
//! The result is autograd's over the whole graph, up to the order of float sums (tested).

use crate::batch::{target_loss, thought_norm_loss, Batch};
use crate::model::{causal_mask, Gpt};
use crate::optim::detached;
use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// The loss of `batch` under `model` and its gradient for every parameter, as
/// `loss(model, batch)?.backward()` gives them ([`crate::batch::loss`]).
pub fn loss_and_grads(model: &Gpt, batch: &Batch) -> Result<(f32, GradStore)> {
    loss_and_grads_by(model, batch, LOSS_ROWS)
}

/// [`loss_and_grads`] with the loss's head computed `loss_rows` targets at a time.
fn loss_and_grads_by(model: &Gpt, batch: &Batch, loss_rows: usize) -> Result<(f32, GradStore)> {
    // Forward without a graph: each pass's kept block inputs, then its thoughts fed on.
    let mut embeds = model.embed(&batch.ids)?.detach(); // (B, T, C)
    let (b, t, c) = embeds.dims3()?;
    let passes = batch.thought_passes()?;
    let mut prefixes = Vec::with_capacity(passes.len());
    for pass in &passes {
        let positions = batch.positions.narrow(1, 0, pass.end)?;
        let prefix = KeptPass::new(model, &embeds.narrow(1, 0, pass.end)?, &positions)?;
        let thoughts = prefix
            .output
            .reshape((b * pass.end, c))?
            .index_select(&pass.sources, 0)?; // (B, C)
        embeds = pass.feed(&embeds, &thoughts)?;
        prefixes.push(prefix);
    }
    let last = KeptPass::new(model, &embeds, &batch.positions)?;

    // Backward: the loss from the final hidden states, then pass after pass in reverse.
    let (loss, grad, mut grads) = loss_backward(model, batch, &last.output, loss_rows)?;
    let mut grad = last.backward(model, &grad, &mut grads)?; // of the last pass's input embeddings
    for (pass, prefix) in passes.iter().zip(&prefixes).rev() {
        let (kept, thoughts) = pass.feed_backward(&grad)?; // (B, T, C), (B, C)
        let output_grad = Tensor::zeros((b * pass.end, c), thoughts.dtype(), thoughts.device())?
            .index_add(&pass.sources, &thoughts, 0)?
            .reshape((b, pass.end, c))?;
        let input_grad = prefix.backward(model, &output_grad, &mut grads)?; // (B, end, C)
        grad = (kept + input_grad.pad_with_zeros(1, 0, t - pass.end)?)?;
    }
    // The token embeddings the passes started from.
    let embedded = (model.embed(&batch.ids)? * &grad)?.sum_all()?;
    let mut step = detached(embedded.backward()?);
    step.remove(&grad);
    grads.extend(step)?;
    Ok((loss as f32, grads))
}

/// The loss from the final hidden states `(B, T, C)`, its gradient with respect to them and the
/// parameters' (the head's); the head `loss_rows` targets at a time, since their logits (N x
/// vocabulary) outweigh a GPT-2's activations.
fn loss_backward(
    model: &Gpt,
    batch: &Batch,
    hidden: &Tensor,
    loss_rows: usize,
) -> Result<(f64, Tensor, GradStore)> {
    let hidden = Var::from_tensor(hidden)?;
    let n = batch.targets.dim(0)?;
    let shares = (0..n).step_by(loss_rows).map(|start| {
        let range = start..(start + loss_rows).min(n);
        target_loss(model, batch, hidden.as_tensor(), range).map(Some)
    });
    let norms = std::iter::once_with(|| thought_norm_loss(batch, hidden.as_tensor()));
    let (mut loss, mut grad, mut grads) = (0f64, None::<Tensor>, None::<GradStore>);
    for share in shares.chain(norms) {
        let Some(share) = share? else { continue };
        loss += share.to_scalar::<f32>()? as f64;
        let mut step = detached(share.backward()?);
        let g = take(&mut step, &hidden)?;
        grad = Some(match grad {
            Some(sum) => (sum + g)?,
            None => g,
        });
        match &mut grads {
            Some(all) => all.extend(step)?,
            None => grads = Some(step),
        }
    }
    match (grad, grads) {
        (Some(grad), Some(grads)) => Ok((loss, grad, grads)),
        _ => anyhow::bail!("a batch without targets has no loss"),
    }
}

/// Targets whose logits are held at once (a GPT-2's 50,257-token rows: 26 MB).
const LOSS_ROWS: usize = 128;

/// One forward pass over input embeddings run without a graph, each block's input kept.
struct KeptPass {
    embeds: Tensor,
    positions: Tensor,
    mask: Option<Tensor>,
    /// Block l's input at `l`, the last block's output at the end: `(B, T, C)` each.
    inputs: Vec<Tensor>,
    /// The final hidden states `(B, T, C)`.
    output: Tensor,
}

impl KeptPass {
    fn new(model: &Gpt, embeds: &Tensor, positions: &Tensor) -> Result<KeptPass> {
        let mask = causal_mask(embeds.dim(1)?, 0, model.device())?;
        let mut x = model.block_input(embeds, Some(positions), 0)?.detach();
        let mut inputs = Vec::with_capacity(model.config().n_layer + 1);
        for l in 0..model.config().n_layer {
            let next = model.block(l, &x, mask.as_ref(), None)?.detach();
            inputs.push(std::mem::replace(&mut x, next));
        }
        let output = model.final_norm(&x)?.detach();
        inputs.push(x);
        Ok(KeptPass {
            embeds: embeds.detach(),
            positions: positions.clone(),
            mask,
            inputs,
            output,
        })
    }

    /// Back-propagates `grad` `(B, T, C)` of the pass's output, block by block, adding the
    /// parameters' gradients to `grads`; returns the gradient of its input embeddings.
    fn backward(&self, model: &Gpt, grad: &Tensor, grads: &mut GradStore) -> Result<Tensor> {
        let (blocks, last) = self.inputs.split_at(self.inputs.len() - 1);
        let mut grad = through(grads, &last[0], grad, |x| model.final_norm(x))?;
        for (l, input) in blocks.iter().enumerate().rev() {
            let mask = self.mask.as_ref();
            grad = through(grads, input, &grad, |x| model.block(l, x, mask, None))?;
        }
        let positions = Some(&self.positions);
        through(grads, &self.embeds, &grad, |e| {
            model.block_input(e, positions, 0)
        })
    }
}

/// The gradient reaching `input` when `grad` reaches `f(input)`, `f` recomputed with a graph
/// from `input` as a leaf; the parameters' gradients are added to `grads`. Every gradient is
/// detached as it comes, so no block's recomputed activations outlive its step.
fn through(
    grads: &mut GradStore,
    input: &Tensor,
    grad: &Tensor,
    f: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let leaf = Var::from_tensor(input)?;
    let mut step = detached((f(leaf.as_tensor())? * grad)?.sum_all()?.backward()?);
    let input_grad = take(&mut step, &leaf)?;
    step.remove(grad); // candle also gives the constant factor one
    grads.extend(step)?;
    Ok(input_grad)
}

/// The gradient of `var` out of `grads`.
fn take(grads: &mut GradStore, var: &Var) -> Result<Tensor> {
    grads
        .remove(var.as_tensor())
        .context("the recomputed part does not depend on its input")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::loss;
    use crate::model::{to_host, Precision};
    use crate::objective::ExampleWeights;
    use coconut_core::compare::relative_error;
    use coconut_core::{ModelConfig, Problem};

    /// `loss_and_grads_by(model, batch, loss_rows)` against autograd over the whole graph:
    /// the loss within 1e-6 and every parameter's gradient within `tolerance` (relative).
    fn assert_equal(model: &Gpt, batch: &Batch, loss_rows: usize, tolerance: f64, what: &str) {
        let want = loss(model, batch).unwrap();
        let want_grads = want.backward().unwrap();
        let want = want.to_scalar::<f32>().unwrap();
        let (got, got_grads) = loss_and_grads_by(model, batch, loss_rows).unwrap();
        assert!(
            (got - want).abs() <= 1e-6 * want.abs(),
            "{what}: {got} vs {want}"
        );
        for (name, var) in model.named_vars() {
            let grad = |g: &GradStore| to_host(g.get(var.as_tensor()).unwrap()).unwrap();
            let e = relative_error(&grad(&got_grads), &grad(&want_grads));
            assert!(e < tolerance, "{what}, {name}: gradient relative error {e}");
        }
    }

    /// At every kind of stage (thoughts fed back or not, either order, coupled ids): the mean
    /// over the targets with the whole head at once; the seed's per-example weights and
    /// thought-norm term with the head 5 targets at a time (several shares, the last one
    /// short), in f32 and with bf16 products.
    #[test]
    fn recomputed_gradients_equal_autograds() {
        let config = ModelConfig {
            n_positions: 96,
            n_embd: 16,
            n_layer: 2,
            n_head: 2,
            ..ModelConfig::default()
        };
        let (_, model) = crate::test_support::weights_and_candle(&config, 5);
        let problems = [(7, 5), (347, 285), (9999, 1)].map(|(a, b)| Problem::new(a, b));
        for stage in crate::test_support::every_kind_of_stage() {
            let layouts = crate::test_support::layouts(&problems, &stage);
            let refs: Vec<&_> = layouts.iter().collect();
            let mut batch = crate::test_support::batch(&layouts, &stage);
            assert_equal(&model, &batch, LOSS_ROWS, 1e-5, &stage.id());
            let weights =
                [(0.5, 0.25), (0.125, 0.0), (0.375, 0.5)].map(|(target, norm)| ExampleWeights {
                    target,
                    thought_norm: norm,
                });
            batch.weigh_with(&refs, &weights).unwrap();
            assert!(batch.targets.dim(0).unwrap() > 10);
            // At bf16 autograd sums a weight's gradient over the passes in bf16 (the gradient
            // of the weight's bf16 copy), this path in f32: they differ by bf16's rounding.
            for (precision, tolerance) in [(Precision::F32, 1e-5), (Precision::Bf16, 1e-2)] {
                let what = format!("{} weighed, at {precision}", stage.id());
                assert_equal(
                    &model.autocast(precision).unwrap(),
                    &batch,
                    5,
                    tolerance,
                    &what,
                );
            }
        }
    }
}
