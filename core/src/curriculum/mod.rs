//! This project's own model family as text and as a curriculum: the 22-token vocabulary
//! ([`tokenizer`]; [`plain_tokenizer`] the same rules without the `tokenizers` crate;
//! [`vocabulary`]), which steps a stage writes and which it thinks ([`stage`]), a problem laid
//! out for a stage ([`layout`]) with its position ids ([`positions`]; [`position_table`] the same
//! ids as tables a GPU kernel follows), and how every engine
//! decodes it ([`decoding`]: the plan and the stop rule; [`decoder`]: the one decoding loop).
//! The seed's GPT-2 family has its own counterparts in [`crate::seed`].

pub mod decoder;
pub mod decoding;
pub mod layout;
pub mod plain_tokenizer;
pub mod position_table;
pub mod positions;
pub mod stage;
pub mod tokenizer;
pub mod vocabulary;
