//! Where a decoding's trace lies in what comes back from the GPU, for both paths: the per-layer
//! path copies its buffers into this layout, solve.wgsl writes it directly (its `logits_at`,
//! `residual_at`, `attention_at`), and one [`TraceLayout::unpack`] reads it. In f32 offsets from
//! the trace's start, `rows` positions reserved:
//!
//! `[logits rows×V][residual L×rows×C][attention L×H×rows×P]`
//!
//! (an attention row is `P` wide; position `t` uses its first `t + 1` values).

use coconut_core::config::ModelConfig;
use coconut_core::decoding::{PositionTrace, Trace};

#[derive(Clone, Copy, Debug)]
pub(crate) struct TraceLayout {
    c: usize,
    v: usize,
    p: usize,
    l: usize,
    h: usize,
    /// Positions reserved: those run (per-layer path) or the model's (the solver).
    pub rows: usize,
}

impl TraceLayout {
    pub fn new(cfg: &ModelConfig, rows: usize) -> TraceLayout {
        TraceLayout {
            c: cfg.n_embd,
            v: cfg.vocab_size,
            p: cfg.n_positions,
            l: cfg.n_layer,
            h: cfg.n_head,
            rows,
        }
    }

    /// The logits of position `t`.
    pub fn logits(&self, t: usize) -> usize {
        t * self.v
    }

    /// The residual stream after block `layer` at position `t`.
    pub fn residual(&self, layer: usize, t: usize) -> usize {
        self.logits(self.rows) + (layer * self.rows + t) * self.c
    }

    /// Head `head`'s attention row of position `t` in block `layer` (`P` wide).
    pub fn attention(&self, layer: usize, head: usize, t: usize) -> usize {
        self.residual(self.l, 0) + ((layer * self.h + head) * self.rows + t) * self.p
    }

    /// Floats in the trace.
    pub fn floats(&self) -> usize {
        self.attention(self.l, 0, 0)
    }

    /// The trace of positions `0..positions` (at most `rows`) from `data`, the trace's floats.
    pub fn unpack(&self, data: &[f32], positions: usize) -> Trace {
        debug_assert!(positions <= self.rows && data.len() >= self.floats());
        let logits = (0..positions)
            .map(|t| data[self.logits(t)..][..self.v].to_vec())
            .collect();
        let positions = (0..positions)
            .map(|t| PositionTrace {
                residual: (0..self.l)
                    .map(|layer| data[self.residual(layer, t)..][..self.c].to_vec())
                    .collect(),
                attention: (0..self.l)
                    .map(|layer| {
                        (0..self.h)
                            .map(|head| data[self.attention(layer, head, t)..][..t + 1].to_vec())
                            .collect()
                    })
                    .collect(),
            })
            .collect();
        Trace { positions, logits }
    }
}
