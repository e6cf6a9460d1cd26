//! The seed's model family (issue 31, `docs/seed-format.md`): GPT-2 Coconut checkpoints with
//! GPT-2's byte-level BPE plus `<bot> <sep> <eot> <act>`, and layouts that differ from this
//! project's own 22-token family. Restated here so that its checkpoints can be evaluated the way
//! they were trained and measured, and also honestly:
//!
//! - [`random`]: CPython's `random.Random`, which drew the seed's problems;
//! - [`problems`]: the seed's four splits and its training set, regenerated bit for bit;
//! - [`vocab`]: the seed's vocabulary, its decoding and the answer rule of the free runs, and an
//!   encoder of the seed's texts that needs no `tokenizers` crate (the browser's);
//! - [`tokenizer`] (feature `hf-tokenizer`): the same tokenizer through the `tokenizers` crate,
//!   for any text, and the `tokenizer.json` an import writes;
//! - [`layout`]: the seed's layouts of stages 0-3, the thought-count protocols of the free runs;
//! - [`metric`]: the seed's published teacher-forced judgement;
//! - [`decode`]: its free runs through core's decoder, the answer read.

pub mod decode;
pub mod layout;
pub mod metric;
pub mod problems;
pub mod random;
#[cfg(feature = "hf-tokenizer")]
pub mod tokenizer;
pub mod vocab;

/// `<|endoftext|>`: GPT-2's own end token (the seed's padding, never a training target).
pub const ENDOFTEXT: u32 = 50256;
/// `<bot>`: the last token of every prompt; thoughts or written steps follow.
pub const BOT: u32 = 50257;
/// `<sep>`: ends every written step.
pub const SEP: u32 = 50258;
/// `<eot>`: fed after the last thought (stages 1-3), written by the model at stage 0.
pub const EOT: u32 = 50259;
/// `<act>`: added by the seed, unused by its Coconut stages.
pub const ACT: u32 = 50260;
/// The vocabulary after `resize_token_embeddings(50261)`.
pub const VOCAB: usize = 50261;
/// The four added tokens, in id order from [`BOT`].
pub const SPECIALS: [&str; 4] = ["<bot>", "<sep>", "<eot>", "<act>"];
