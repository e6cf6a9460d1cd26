//! The vocabulary of this project's own models: one token per digit, the words and symbols of
//! the chain of thought and the special tokens, with their ids. [`crate::tokenizer`] builds the
//! `tokenizers` pipeline from it and [`crate::plain_tokenizer`] writes the same rules out; both
//! read this file, neither the other.

/// Every token, in id order. The ids are part of the weight files' contract: never reorder.
pub const VOCAB: [&str; 22] = [
    "<pad>", "<bot>", "<sep>", "<eot>", "<eos>", "<latent>", "<act>", "<unk>", "0", "1", "2", "3",
    "4", "5", "6", "7", "8", "9", "+", "=", "write", "carry",
];

/// The tokens that are never split and never produced by the pre-tokenizer.
pub(crate) const SPECIAL: [&str; 8] = [
    "<pad>", "<bot>", "<sep>", "<eot>", "<eos>", "<latent>", "<act>", "<unk>",
];

pub const PAD: u32 = 0;
pub const BOT: u32 = 1;
pub const SEP: u32 = 2;
pub const EOT: u32 = 3;
pub const EOS: u32 = 4;
pub const LATENT: u32 = 5;
pub const UNK: u32 = 7;
/// Id of the digit 0; digit d is `DIGIT0 + d`.
pub const DIGIT0: u32 = 8;
pub const PLUS: u32 = 18;
pub const EQUALS: u32 = 19;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer.json could not be read: {0}")]
    Load(String),
    #[error("tokenizer.json does not match this build's vocabulary: {0}")]
    Vocabulary(String),
    #[error("could not encode {text:?}: {reason}")]
    Encode { text: String, reason: String },
    #[error("token id {0} is outside the vocabulary")]
    UnknownId(u32),
}
