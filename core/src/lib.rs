//! Shared contracts of the Coconut latent-reasoning lab.
//!
//! Everything the trainer, the shader engine and the browser must agree on lives here,
//! in plain Rust that also compiles to `wasm32-unknown-unknown`, in five folders: problems and
//! data ([`problems`]), this project's vocabulary, stages, layouts and decoding ([`curriculum`]),
//! the model and its files ([`model`]), the reference engine and what is measured with it
//! ([`engine`]), and the seed's GPT-2 family ([`seed`]). Each module is also at the root:
//!
//! - [`problem`]: `a + b` problems, their parser and their column-by-column chain of thought;
//! - [`data`]: seeded, disjoint train / validation / test splits and the out-of-distribution set;
//!   [`stratified`]: the splits by digit-count class; [`lengths`]: held-out sets by operand-length
//!   pair, carry chains included;
//! - [`tokenizer`]: the vocabulary, built with the `tokenizers` crate and saved as `tokenizer.json`;
//! - [`stage`]: the curriculum: which steps are written and which are continuous thoughts;
//! - [`layout`]: a problem laid out for a stage: token ids, thought slots and loss mask;
//! - [`positions`]: position ids, absolute or coupled by column;
//! - [`config`]: the GPT-2 model configuration; [`skeleton`]: the model's tree of tensors, which
//!   every engine maps into its own storage;
//! - [`weights`] and [`manifest`]: stage weight files (f32, f16, int8) and their manifest;
//!   [`family`]: which tokenizer and layouts a folder's stages follow (ours, or the seed's GPT-2);
//! - [`files`]: bounded reading of regular files only (no devices, FIFOs or endless reads);
//! - [`decoding`]: the decoding plan every engine follows (prompt, thoughts, the stop rule), the
//!   argmax rule and what a generation produces; [`decoder`]: the one decoding loop, a per-row
//!   state machine every engine drives;
//! - [`compare`]: the relative error every parity check measures;
//! - [`effects`]: what patching and carry flips do to the answers, measured;
//! - [`probes`]: linear probes of the thoughts (what each holds) and their file;
//! - [`seed`]: the seed's GPT-2 family (issue 31): its problems, tokenizer, layouts and metric;
//! - [`reference`]: a plain-Rust forward pass with a KV cache and thought feedback, the oracle
//!   of every other engine and the browser's CPU fallback.

pub mod curriculum;
pub mod engine;
pub mod model;
pub mod problems;
pub mod seed;

// Each module also at the crate's root, where every caller names it (`coconut_core::manifest`).
pub use curriculum::{
    decoder, decoding, layout, plain_tokenizer, position_table, positions, stage, tokenizer,
    vocabulary,
};
pub use engine::{compare, effects, golden, intervention, probes, reference};
pub use model::{config, family, files, manifest, skeleton, stored, weights};
pub use problems::{data, draw, lengths, problem, stratified};

pub use config::ModelConfig;
pub use problem::{ParseError, Problem};
pub use stage::{Stage, StageKind};
