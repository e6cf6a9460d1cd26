//! Forward and backward pass of one shard of a batch, chunk by chunk (see `plan.rs`), into
//! buffers that are kept from step to step (no allocation once they have grown to the largest
//! batch). GPT-2 per row, with `x` its input embedding plus position embedding:
//! ```text
//! for each block l:  resid[l+1] = mid + c_proj(gelu(c_fc(ln_2(mid)))),
//!                    mid        = resid[l] + c_proj(attn(ln_1(resid[l])))
//! hidden = ln_f(resid[L]);  logits = hidden · wteᵀ at the rows that predict a target
//! ```
//! The backward pass runs the chunks in reverse. Attention adds the gradients of keys and values
//! into the rows of earlier chunks (kept per layer in `dqkv`), and a thought's input gradient goes
//! to the hidden state of the row it was fed from; both are complete before those rows' chunk
//! runs its own backward pass, so the gradient flows through every thought exactly.
//!
//! The linear layers' weight gradients wait until every chunk is done: then each is one product
//! `Xᵀ · dY` over all the shard's rows. Taken chunk by chunk, a thought chunk of one row per
//! example would read and write every weight's gradient for a handful of rows, and at the
//! all-latent stage that traffic, not arithmetic, bounded the step. The layers' output gradients
//! `dY` are kept in activations the backward pass no longer needs (see [`Workspace`]), so waiting
//! costs no memory.

use super::gemm::{accumulate_xt_dy, dy_times_wt, x_times_w, Dims};
use super::kernels::{self, AttentionRows};
use super::noise::{DropSite, Dropout};
use super::params::ParamLayout;
use super::plan::{Input, Plan};
use coconut_core::config::ModelConfig;
use coconut_core::decoder::{Decoder, Feed};
use coconut_core::decoding::{argmax, DecodePlan};
use coconut_core::skeleton::{Affine, Norm};
use std::ops::Range;

/// Activations saved by the forward pass and scratch of the backward pass, rows × width each.
///
/// Once a chunk's backward pass has gone past them, three activations of its rows are dead and
/// their rows take the gradient of a linear layer's output instead, for the weight gradients
/// taken after the last chunk: `resid[l + 1]` holds the MLP projection's (`mlp_proj`), `mid[l]`
/// the attention projection's (`attn_proj`), `fc[l]` that of `c_fc`; `dqkv[l]` is `c_attn`'s.
/// No chunk reads another's rows of these three (attention reads `qkv`, a thought `hidden`).
#[derive(Default)]
pub struct Workspace {
    resid: Vec<Vec<f32>>, // L + 1 of (R, C): resid[0] = input, resid[l + 1] = block l's output,
    //                       then d mlp_proj's output
    ln_1: Vec<Vec<f32>>,       // L of (R, C)
    ln_1_stats: Vec<Vec<f32>>, // L of (R, 2)
    qkv: Vec<Vec<f32>>,        // L of (R, 3C)
    probs: Vec<Vec<f32>>,      // L of (n_head, Σ triangles)
    attn: Vec<Vec<f32>>,       // L of (R, C): attention output before c_proj
    mid: Vec<Vec<f32>>,        // L of (R, C): then d attn_proj's output
    ln_2: Vec<Vec<f32>>,
    ln_2_stats: Vec<Vec<f32>>,
    fc: Vec<Vec<f32>>,   // L of (R, 4C), before GELU; then d c_fc's output
    gelu: Vec<Vec<f32>>, // L of (R, 4C)
    ln_f_stats: Vec<f32>,
    hidden: Vec<f32>, // (R, C)
    // Backward.
    d_hidden: Vec<f32>,    // (R, C)
    d_resid: Vec<f32>,     // (R, C)
    d_dropped: Vec<f32>,   // (R, C): d_resid through a dropout mask
    d_small: Vec<f32>,     // (R, C)
    d_big: Vec<f32>,       // (R, 4C)
    dqkv: Vec<Vec<f32>>,   // L of (R, 3C)
    predicted: Vec<f32>,   // (N, C): hidden states of the rows that predict a target
    logits: Vec<f32>,      // (N, V), then their gradient
    d_predicted: Vec<f32>, // (N, C)
    dp: Vec<f32>,
}

/// Resizes `count` buffers to `rows * width` values each, with room for `capacity` rows.
fn grow(buffers: &mut Vec<Vec<f32>>, count: usize, rows: usize, capacity: usize, width: usize) {
    buffers.resize_with(count, Vec::new);
    for b in buffers {
        b.reserve((capacity * width).saturating_sub(b.len()));
        b.resize(rows * width, 0.0);
    }
}

impl Workspace {
    /// Sizes the buffers for `plan`, with room for `capacity` rows (a generation grows its plan
    /// chunk by chunk: reserving once keeps the rows already computed from being copied).
    fn fit(&mut self, layout: &ParamLayout, plan: &Plan, capacity: usize) {
        let cfg = &layout.config;
        let (r, c, l) = (plan.rows(), cfg.n_embd, cfg.n_layer);
        let cap = capacity.max(r);
        let n = plan.predictors.len();
        grow(&mut self.resid, l + 1, r, cap, c);
        for (buffers, width) in [
            (&mut self.ln_1, c),
            (&mut self.ln_1_stats, 2),
            (&mut self.qkv, 3 * c),
            (&mut self.attn, c),
            (&mut self.mid, c),
            (&mut self.ln_2, c),
            (&mut self.ln_2_stats, 2),
            (&mut self.fc, 4 * c),
            (&mut self.gelu, 4 * c),
            (&mut self.dqkv, 3 * c),
        ] {
            grow(buffers, l, r, cap, width);
        }
        let probs = cfg.n_head * plan.attention_len_per_head;
        grow(&mut self.probs, l, 1, 1, probs);
        for (buffer, width) in [
            (&mut self.ln_f_stats, 2),
            (&mut self.hidden, c),
            (&mut self.d_hidden, c),
            (&mut self.d_resid, c),
            (&mut self.d_dropped, c),
            (&mut self.d_small, c),
            (&mut self.d_big, 4 * c),
        ] {
            buffer.reserve((cap * width).saturating_sub(buffer.len()));
            buffer.resize(r * width, 0.0);
        }
        for (buffer, len) in [
            (&mut self.predicted, n * c),
            (&mut self.logits, n * cfg.vocab_size),
            (&mut self.d_predicted, n * c),
        ] {
            buffer.resize(len, 0.0);
        }
    }

    /// Final hidden states `(R, C)` of the last forward pass, rows in the plan's order.
    pub fn hidden(&self) -> &[f32] {
        &self.hidden
    }
}

/// The runs of consecutive rows of one example inside `rows`: (example, its positions).
fn example_runs<'a>(
    plan: &'a Plan,
    rows: Range<usize>,
) -> impl Iterator<Item = (usize, Range<usize>)> + 'a {
    let mut r = rows.start;
    std::iter::from_fn(move || {
        if r >= rows.end {
            return None;
        }
        let e = plan.row_example[r];
        let first = plan.row_position[r];
        let mut end = r + 1;
        while end < rows.end && plan.row_example[end] == e {
            end += 1;
        }
        let positions = first..first + (end - r);
        r = end;
        Some((e, positions))
    })
}

/// `&buffer[rows * width]`.
fn span<'a>(buffer: &'a [f32], rows: &Range<usize>, width: usize) -> &'a [f32] {
    &buffer[rows.start * width..rows.end * width]
}

fn span_mut<'a>(buffer: &'a mut [f32], rows: &Range<usize>, width: usize) -> &'a mut [f32] {
    &mut buffer[rows.start * width..rows.end * width]
}

/// Runs the forward pass of `plan`: the logits `(N, V)` of the rows that predict its N targets.
pub fn target_logits<'a>(
    layout: &ParamLayout,
    params: &[f32],
    plan: &Plan,
    ws: &'a mut Workspace,
) -> &'a [f32] {
    ws.fit(layout, plan, plan.rows());
    for chunk in &plan.chunks {
        forward_chunk(layout, params, plan, ws, chunk.clone());
    }
    let cfg = &layout.config;
    let (c, v) = (cfg.n_embd, cfg.vocab_size);
    let n = plan.predictors.len();
    for (i, &row) in plan.predictors.iter().enumerate() {
        ws.predicted[i * c..(i + 1) * c].copy_from_slice(&ws.hidden[row * c..(row + 1) * c]);
    }
    let wte = &params[layout.wte.clone()];
    let threads = plan.product_threads;
    dy_times_wt(
        &mut ws.logits,
        &ws.predicted,
        wte,
        (n, v, c),
        threads,
        false,
    ); // (N, V)
    &ws.logits
}

/// Runs the forward pass of `plan` and the loss; returns the sum of the target tokens'
/// cross-entropies and the thought-output norms, each with its weight in the plan. With `grads`
/// given, also runs the backward pass, adding that loss's gradient to them.
pub fn forward_backward(
    layout: &ParamLayout,
    params: &[f32],
    plan: &Plan,
    ws: &mut Workspace,
    grads: Option<&mut [f32]>,
) -> f64 {
    target_logits(layout, params, plan, ws);
    let cfg = &layout.config;
    let (c, v) = (cfg.n_embd, cfg.vocab_size);
    let n = plan.predictors.len();
    let wte = &params[layout.wte.clone()];
    let norms: f64 = plan
        .norm_rows
        .iter()
        .map(|&(row, w)| w as f64 * norm(&ws.hidden[row * c..(row + 1) * c]))
        .sum();
    let Some(grads) = grads else {
        let mut logits = std::mem::take(&mut ws.logits);
        let loss = kernels::cross_entropy(&mut logits, &plan.targets, &plan.target_weights, v);
        ws.logits = logits;
        return loss + norms;
    };
    let loss = kernels::cross_entropy(&mut ws.logits, &plan.targets, &plan.target_weights, v);

    // The LM head: d hidden at the predicting rows, and the tied embedding's share.
    let threads = plan.product_threads;
    x_times_w(&mut ws.d_predicted, &ws.logits, wte, (n, v, c), threads); // (N, C)
    let d_wte = &mut grads[layout.wte.clone()];
    accumulate_xt_dy(d_wte, &ws.logits, &ws.predicted, (n, v, c), threads);
    ws.d_hidden.fill(0.0);
    for (i, &row) in plan.predictors.iter().enumerate() {
        let d = &ws.d_predicted[i * c..(i + 1) * c];
        kernels::add_assign(&mut ws.d_hidden[row * c..(row + 1) * c], d);
    }
    // d (w ||h||) / dh = w h / ||h||
    for &(row, w) in &plan.norm_rows {
        let h = &ws.hidden[row * c..(row + 1) * c];
        let scale = w / norm(h).max(f32::MIN_POSITIVE as f64) as f32;
        for (d, &x) in ws.d_hidden[row * c..(row + 1) * c].iter_mut().zip(h) {
            *d += scale * x;
        }
    }
    for d in &mut ws.dqkv {
        d.fill(0.0);
    }
    for chunk in plan.chunks.iter().rev() {
        backward_chunk(layout, params, plan, ws, grads, chunk.clone());
    }
    linear_weight_gradients(layout, plan, ws, grads);
    loss + norms
}

/// Adds the gradients of every block's linear layers, `dW = Xᵀ · dY` and `db = Σ dY` over all
/// `rows`, from the inputs the forward pass kept and the output gradients the backward pass left
/// (see [`Workspace`]).
fn linear_weight_gradients(layout: &ParamLayout, plan: &Plan, ws: &Workspace, g: &mut [f32]) {
    let (c, rows) = (layout.config.n_embd, plan.rows());
    for (l, b) in layout.blocks.iter().enumerate() {
        for (affine, input, d_out, (k, n)) in [
            (&b.c_attn, &ws.ln_1[l], &ws.dqkv[l], (c, 3 * c)),
            (&b.attn_proj, &ws.attn[l], &ws.mid[l], (c, c)),
            (&b.c_fc, &ws.ln_2[l], &ws.fc[l], (c, 4 * c)),
            (&b.mlp_proj, &ws.gelu[l], &ws.resid[l + 1], (4 * c, c)),
        ] {
            let d_out = &d_out[..rows * n];
            kernels::accumulate_column_sums(&mut g[affine.bias.clone()], d_out);
            let (dw, x) = (&mut g[affine.weight.clone()], &input[..rows * k]);
            accumulate_xt_dy(dw, x, d_out, (rows, k, n), plan.product_threads);
        }
    }
}

/// The L2 norm of `x`, summed in f64.
fn norm(x: &[f32]) -> f64 {
    x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt()
}

/// Greedy generation driven by core's [`Decoder`], as every engine does it: each prompt
/// (question and `<bot>`), the stage's thoughts, then the argmax token until the decoder stops
/// (in the last-steps order the thoughts start where the model generates `<latent>`).
/// Returns per prompt the whole sequence: prompt, `<latent>` slots, generated tokens.
pub fn generate(
    layout: &ParamLayout,
    params: &[f32],
    prompts: &[Vec<u32>],
    stage: &coconut_core::Stage,
    ws: &mut Workspace,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let cap = layout.config.n_positions;
    let decoders = prompts
        .iter()
        .map(|p| Decoder::new(p, stage, cap))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(run_decoders(layout, params, decoders, ws)?
        .into_iter()
        .map(Decoder::into_ids)
        .collect())
}

/// Runs decodings of any model family as their [`Decoder`]s drive them (the loop of
/// [`generate`]); returns the decoders, stopped. Examples advance together, one row each per chunk; a finished one drops out.
pub fn run_decoders(
    layout: &ParamLayout,
    params: &[f32],
    mut decoders: Vec<Decoder>,
    ws: &mut Workspace,
) -> anyhow::Result<Vec<Decoder>> {
    let cfg = &layout.config;
    let (c, v, cap) = (cfg.n_embd, cfg.vocab_size, cfg.n_positions);
    let prompts: Vec<Vec<u32>> = decoders
        .iter()
        .map(|d| d.ids()[..d.plan().prompt_len].to_vec())
        .collect();
    let decoding: Vec<DecodePlan> = decoders.iter().map(|d| d.plan().clone()).collect();
    // The prompts and the thoughts right after them run as the plan's first chunks, then a
    // token the plan feeds after those thoughts (the seed's `<eot>`), one chunk for all.
    let mut plan = Plan::for_generation(&prompts, &decoding, cap)?;
    let mut forced = Vec::new();
    for (e, d) in decoders.iter_mut().enumerate() {
        let after_thoughts = prompts[e].len() + decoding[e].thought_positions().len();
        for (t, feed) in d.prefix().into_iter().enumerate().skip(after_thoughts) {
            if let Feed::Token { id, position_id } = feed {
                forced.push((e, t, position_id, Input::Token(id)));
            }
        }
    }
    if !forced.is_empty() {
        plan.push_chunk(forced);
    }
    let capacity = prompts
        .iter()
        .zip(&decoding)
        .map(|(p, d)| p.len() + (d.thoughts + 64).min(cap))
        .sum();
    ws.fit(layout, &plan, capacity);
    for chunk in plan.chunks.clone() {
        forward_chunk(layout, params, &plan, ws, chunk);
    }
    let wte = &params[layout.wte.clone()];
    let mut logits = vec![0f32; v];
    let mut running: Vec<usize> = (0..prompts.len()).collect();
    loop {
        let mut next = Vec::with_capacity(running.len());
        for &e in &running {
            let t = decoders[e].ids().len(); // the position a token takes
            let before = plan.examples[e].rows[t - 1];
            let feed = decoders[e].next(|| {
                let h = &ws.hidden[before * c..][..c];
                for (z, w) in logits.iter_mut().zip(wte.chunks_exact(c)) {
                    *z = h.iter().zip(w).map(|(a, b)| a * b).sum();
                }
                argmax(&logits)
            });
            // A triggered thought's slot is pushed with it: it runs at the sequence's end.
            let at = decoders[e].ids().len() - 1;
            match feed {
                Feed::Token { id, position_id } => {
                    next.push((e, at, position_id, Input::Token(id)));
                }
                Feed::Thought { position_id, .. } => {
                    next.push((e, at, position_id, Input::Thought(before)));
                }
                Feed::Stop { .. } => {}
            }
        }
        if next.is_empty() {
            return Ok(decoders);
        }
        running = next.iter().map(|&(e, ..)| e).collect();
        plan.push_chunk(next);
        ws.fit(layout, &plan, capacity);
        let chunk = plan.chunks.last().expect("just pushed").clone();
        forward_chunk(layout, params, &plan, ws, chunk);
    }
}

fn forward_chunk(
    layout: &ParamLayout,
    p: &[f32],
    plan: &Plan,
    ws: &mut Workspace,
    rows: Range<usize>,
) {
    let cfg = &layout.config;
    let (c, m) = (cfg.n_embd, rows.len());
    let (eps, threads) = (cfg.layer_norm_epsilon, plan.product_threads);

    // Input embeddings: a token's row of wte, or the hidden state a thought is fed from.
    for r in rows.clone() {
        let pos = &p[layout.wpe.start + plan.row_wpe[r] * c..][..c];
        let source = match plan.row_input[r] {
            Input::Token(id) => &p[layout.wte.start + id as usize * c..][..c],
            Input::Thought(from) => &ws.hidden[from * c..(from + 1) * c],
        };
        let x = &mut ws.resid[0][r * c..(r + 1) * c];
        for ((x, s), q) in x.iter_mut().zip(source).zip(pos) {
            *x = s + q;
        }
        if let (Input::Thought(_), Some(noise)) = (plan.row_input[r], plan.noise.thoughts) {
            noise.add_to(x, r, source);
        }
        if let Some(dropout) = plan.noise.dropout {
            dropout.apply(x, DropSite::Input, r);
        }
    }

    for (l, b) in layout.blocks.iter().enumerate() {
        let (resid_in, resid_out) = ws.resid.split_at_mut(l + 1);
        let x = span(&resid_in[l], &rows, c);
        let ln_1 = span_mut(&mut ws.ln_1[l], &rows, c);
        let ln_1_stats = span_mut(&mut ws.ln_1_stats[l], &rows, 2);
        norm_forward(p, &b.ln_1, x, ln_1, ln_1_stats, eps);
        let qkv = span_mut(&mut ws.qkv[l], &rows, 3 * c);
        affine_forward(p, &b.c_attn, ln_1, qkv, (m, c, 3 * c), threads);

        for (e, positions) in example_runs(plan, rows.clone()) {
            let example = &plan.examples[e];
            let at = AttentionRows {
                rows: &example.rows,
                c,
                n_head: cfg.n_head,
            };
            let probs = &mut ws.probs[l][cfg.n_head * example.attention_base..]
                [..cfg.n_head * super::plan::triangle(example.len())];
            kernels::attention_forward(&mut ws.attn[l], probs, &ws.qkv[l], &at, positions);
        }

        let mid = span_mut(&mut ws.mid[l], &rows, c);
        let attn = span(&ws.attn[l], &rows, c);
        affine_forward(p, &b.attn_proj, attn, mid, (m, c, c), threads);
        if let Some(dropout) = plan.noise.dropout {
            dropout.apply_rows(mid, c, DropSite::Attention(l), rows.clone());
        }
        kernels::add_assign(mid, x);

        let ln_2 = span_mut(&mut ws.ln_2[l], &rows, c);
        let ln_2_stats = span_mut(&mut ws.ln_2_stats[l], &rows, 2);
        norm_forward(p, &b.ln_2, mid, ln_2, ln_2_stats, eps);
        let fc = span_mut(&mut ws.fc[l], &rows, 4 * c);
        affine_forward(p, &b.c_fc, ln_2, fc, (m, c, 4 * c), threads);
        let gelu = span_mut(&mut ws.gelu[l], &rows, 4 * c);
        kernels::gelu_forward(gelu, fc);

        let out = span_mut(&mut resid_out[0], &rows, c);
        affine_forward(p, &b.mlp_proj, gelu, out, (m, 4 * c, c), threads);
        if let Some(dropout) = plan.noise.dropout {
            dropout.apply_rows(out, c, DropSite::Mlp(l), rows.clone());
        }
        kernels::add_assign(out, mid);
    }

    let resid = span(&ws.resid[cfg.n_layer], &rows, c);
    let hidden = span_mut(&mut ws.hidden, &rows, c);
    let stats = span_mut(&mut ws.ln_f_stats, &rows, 2);
    norm_forward(p, &layout.ln_f, resid, hidden, stats, eps);
}

fn backward_chunk(
    layout: &ParamLayout,
    p: &[f32],
    plan: &Plan,
    ws: &mut Workspace,
    g: &mut [f32],
    rows: Range<usize>,
) {
    let cfg = &layout.config;
    let (c, m) = (cfg.n_embd, rows.len());
    let (last, threads) = (cfg.n_layer, plan.product_threads);

    // d resid[L] from d hidden through ln_f.
    let d_resid = span_mut(&mut ws.d_resid, &rows, c);
    d_resid.fill(0.0);
    let resid = span(&ws.resid[last], &rows, c);
    let resid_stats = span(&ws.ln_f_stats, &rows, 2);
    let d_hidden = span(&ws.d_hidden, &rows, c);
    norm_backward(g, p, &layout.ln_f, resid, resid_stats, d_hidden, d_resid);

    for (l, b) in layout.blocks.iter().enumerate().rev() {
        // MLP: resid[l+1] = mid + drop(gelu(fc) · W_proj + b_proj). d_resid passes through to
        // mid; the MLP's output gets it through the dropout mask.
        let site = DropSite::Mlp(l);
        let (dropout, scratch) = (plan.noise.dropout, &mut ws.d_dropped);
        let d_out = dropped_gradient(dropout, &ws.d_resid, scratch, site, &rows, c);
        span_mut(&mut ws.resid[l + 1], &rows, c).copy_from_slice(d_out);
        let d_big = span_mut(&mut ws.d_big, &rows, 4 * c);
        input_gradient(p, &b.mlp_proj, d_out, d_big, (m, 4 * c, c), threads);
        let d_fc = span_mut(&mut ws.fc[l], &rows, 4 * c);
        kernels::gelu_backward(d_fc, d_big);
        let d_small = span_mut(&mut ws.d_small, &rows, c);
        input_gradient(p, &b.c_fc, d_fc, d_small, (m, c, 4 * c), threads);
        let mid = span(&ws.mid[l], &rows, c);
        let mid_stats = span(&ws.ln_2_stats[l], &rows, 2);
        let d_resid = span_mut(&mut ws.d_resid, &rows, c);
        norm_backward(g, p, &b.ln_2, mid, mid_stats, d_small, d_resid);

        // Attention: mid = resid[l] + drop(attn · W_proj + b_proj).
        let site = DropSite::Attention(l);
        let (dropout, scratch) = (plan.noise.dropout, &mut ws.d_dropped);
        let d_out = dropped_gradient(dropout, &ws.d_resid, scratch, site, &rows, c);
        span_mut(&mut ws.mid[l], &rows, c).copy_from_slice(d_out);
        let d_small = span_mut(&mut ws.d_small, &rows, c);
        input_gradient(p, &b.attn_proj, d_out, d_small, (m, c, c), threads);
        attention_backward(cfg, plan, ws, l, rows.clone());
        let dqkv = span(&ws.dqkv[l], &rows, 3 * c);
        let d_small = span_mut(&mut ws.d_small, &rows, c);
        input_gradient(p, &b.c_attn, dqkv, d_small, (m, c, 3 * c), threads);
        let resid = span(&ws.resid[l], &rows, c);
        let resid_stats = span(&ws.ln_1_stats[l], &rows, 2);
        let d_resid = span_mut(&mut ws.d_resid, &rows, c);
        norm_backward(g, p, &b.ln_1, resid, resid_stats, d_small, d_resid);
    }

    // d input: to the position table, and to the token's embedding or the fed-back hidden state.
    for r in rows {
        if let Some(dropout) = plan.noise.dropout {
            dropout.apply(&mut ws.d_resid[r * c..(r + 1) * c], DropSite::Input, r);
        }
        let d = &ws.d_resid[r * c..(r + 1) * c];
        let pos = layout.wpe.start + plan.row_wpe[r] * c;
        kernels::add_assign(&mut g[pos..pos + c], d);
        match plan.row_input[r] {
            Input::Token(id) => {
                let at = layout.wte.start + id as usize * c;
                kernels::add_assign(&mut g[at..at + c], d);
            }
            Input::Thought(from) => {
                kernels::add_assign(&mut ws.d_hidden[from * c..(from + 1) * c], d);
            }
        }
    }
}

/// The gradient at dropout site `site`'s output (before its mask) over `rows`, given the
/// gradient after it, `d_resid`: that itself without dropout, else its masked copy in `scratch`.
fn dropped_gradient<'a>(
    dropout: Option<Dropout>,
    d_resid: &'a [f32],
    scratch: &'a mut [f32],
    site: DropSite,
    rows: &Range<usize>,
    c: usize,
) -> &'a [f32] {
    let d_resid = span(d_resid, rows, c);
    match dropout {
        None => d_resid,
        Some(dropout) => {
            let d = span_mut(scratch, rows, c);
            d.copy_from_slice(d_resid);
            dropout.apply_rows(d, c, site, rows.clone());
            d
        }
    }
}

/// Block `l`'s attention backward over `rows`, example by example (each attends within itself):
/// `d qkv[l]` from `d_small` (the gradient at the attention's output).
fn attention_backward(
    cfg: &ModelConfig,
    plan: &Plan,
    ws: &mut Workspace,
    l: usize,
    rows: Range<usize>,
) {
    for (e, positions) in example_runs(plan, rows) {
        let example = &plan.examples[e];
        let at = AttentionRows {
            rows: &example.rows,
            c: cfg.n_embd,
            n_head: cfg.n_head,
        };
        let probs = &ws.probs[l][cfg.n_head * example.attention_base..]
            [..cfg.n_head * super::plan::triangle(example.len())];
        kernels::attention_backward(
            &mut ws.dqkv[l],
            &mut ws.dp,
            &ws.d_small,
            probs,
            &ws.qkv[l],
            &at,
            positions,
        );
    }
}

/// Two disjoint ranges of one buffer, mutably (`a` before `b`).
/// `out = input · W + b` over `m` rows (`input` k wide, `out` n wide).
fn affine_forward(
    p: &[f32],
    affine: &Affine<Range<usize>>,
    input: &[f32],
    out: &mut [f32],
    dims: Dims,
    threads: usize,
) {
    x_times_w(out, input, &p[affine.weight.clone()], dims, threads);
    kernels::add_bias(out, &p[affine.bias.clone()]);
}

/// LayerNorm of the rows of `x` into `out`, keeping each row's (mean, 1 / std) in `stats`.
fn norm_forward(
    p: &[f32],
    norm: &Norm<Range<usize>>,
    x: &[f32],
    out: &mut [f32],
    stats: &mut [f32],
    eps: f32,
) {
    let weight = &p[norm.weight.clone()];
    kernels::layer_norm_forward(
        out,
        stats,
        x,
        weight,
        &p[norm.bias.clone()],
        weight.len(),
        eps,
    );
}

/// The backward of [`norm_forward`] given its input rows `x` and their `stats` and the output's
/// gradient `dy`: adds the gain's and bias's gradients to `g` and the input's to `dx`.
fn norm_backward(
    g: &mut [f32],
    p: &[f32],
    norm: &Norm<Range<usize>>,
    x: &[f32],
    stats: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) {
    let weight = &p[norm.weight.clone()];
    let (dw, db) = two_mut(g, &norm.weight, &norm.bias);
    kernels::layer_norm_backward(dx, dw, db, dy, x, stats, weight, weight.len());
}

/// The input's gradient of `out = input · W + b` over `m` rows (`input` k wide, `out` n wide),
/// written to `d_input`; W's and b's wait for [`linear_weight_gradients`].
fn input_gradient(
    p: &[f32],
    affine: &Affine<Range<usize>>,
    d_out: &[f32],
    d_input: &mut [f32],
    dims: Dims,
    threads: usize,
) {
    dy_times_wt(
        d_input,
        d_out,
        &p[affine.weight.clone()],
        dims,
        threads,
        false,
    );
}

fn two_mut<'a>(
    g: &'a mut [f32],
    a: &Range<usize>,
    b: &Range<usize>,
) -> (&'a mut [f32], &'a mut [f32]) {
    assert!(a.end <= b.start, "ranges must be ordered and disjoint");
    let (lo, hi) = g.split_at_mut(b.start);
    (&mut lo[a.clone()], &mut hi[..b.len()])
}
