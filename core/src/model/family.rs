//! Model families: the tokenizer and the layouts a weights folder's stages follow.
//!
//! This project's own models (the default, absent from older manifests) use the 22-token
//! vocabulary of [`crate::tokenizer`] and the stages of [`crate::layout`]. An imported GPT-2
//! trained as the seed was (docs/seed-format.md) uses GPT-2's byte-level BPE with `<bot>`,
//! `<sep>`, `<eot>` and `<act>` added after its 50,257 tokens, and the seed's layouts: two
//! operands of equal length, units-first steps, the last k steps as one thought each (stage 3:
//! every step, so the thought count follows the problem), `<eot>` fed after the thoughts, and
//! an answer that runs to the first token that is not digits (the seed's model never learned an
//! end token). The manifest names the family so every reader picks the right decoding.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a folder's stages lay problems out and decode them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutFamily {
    /// This project's layouts ([`crate::layout`]).
    #[default]
    Coconut,
    /// The seed's layouts (module doc).
    Seed,
}

/// Which tokenizer a folder's `tokenizer.json` is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// This project's 22-token word-level vocabulary ([`crate::tokenizer::VOCAB`]).
    #[default]
    Coconut,
    /// GPT-2's byte-level BPE with added special tokens, by name and id.
    Gpt2Bpe { specials: BTreeMap<String, u32> },
}

/// The seed's special tokens and their ids: GPT-2's `<|endoftext|>` and the four it added.
pub const SEED_SPECIALS: [(&str, u32); 5] = [
    ("<|endoftext|>", 50256),
    ("<bot>", 50257),
    ("<sep>", 50258),
    ("<eot>", 50259),
    ("<act>", 50260),
];

/// The model family of a weights folder (manifest field `family`; absent: this project's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub layout: LayoutFamily,
    pub tokenizer: TokenizerKind,
}

impl Family {
    /// The seed's family: its layouts over GPT-2's BPE with [`SEED_SPECIALS`].
    pub fn seed() -> Family {
        Family {
            layout: LayoutFamily::Seed,
            tokenizer: TokenizerKind::Gpt2Bpe {
                specials: SEED_SPECIALS
                    .iter()
                    .map(|&(name, id)| (name.to_string(), id))
                    .collect(),
            },
        }
    }

    pub fn is_coconut(&self) -> bool {
        *self == Family::default()
    }

    /// Refuses a family whose parts do not fit each other or a model of `vocab_size` tokens.
    pub fn check(&self, vocab_size: usize) -> Result<(), String> {
        match (&self.layout, &self.tokenizer) {
            (LayoutFamily::Coconut, TokenizerKind::Coconut) => {
                let n = crate::tokenizer::VOCAB.len();
                if vocab_size != n {
                    return Err(format!(
                        "this project's tokenizer has {n} tokens, the model {vocab_size}"
                    ));
                }
                Ok(())
            }
            (LayoutFamily::Seed, TokenizerKind::Gpt2Bpe { specials }) => {
                for (name, id) in SEED_SPECIALS {
                    if specials.get(name) != Some(&id) {
                        return Err(format!(
                            "the seed's layout needs {name} at id {id}, the tokenizer has {:?}",
                            specials.get(name)
                        ));
                    }
                }
                if let Some((name, id)) = specials.iter().find(|(_, &id)| id as usize >= vocab_size)
                {
                    return Err(format!(
                        "special token {name} has id {id}, outside the model's {vocab_size} tokens"
                    ));
                }
                Ok(())
            }
            (layout, tokenizer) => Err(format!(
                "layout {layout:?} does not go with tokenizer {tokenizer:?}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_check_their_parts_and_the_vocabulary() {
        assert!(Family::default().check(22).is_ok());
        assert!(Family::default().check(50261).is_err());
        assert!(Family::seed().check(50261).is_ok());
        let small = Family::seed().check(50000).unwrap_err();
        assert!(
            small.contains("outside the model's 50000 tokens"),
            "{small}"
        );
        let mixed = Family {
            layout: LayoutFamily::Seed,
            tokenizer: TokenizerKind::Coconut,
        };
        assert!(mixed.check(50261).unwrap_err().contains("does not go with"));
        let mut wrong = Family::seed();
        if let TokenizerKind::Gpt2Bpe { specials } = &mut wrong.tokenizer {
            specials.insert("<eot>".into(), 50260);
        }
        assert!(wrong
            .check(50261)
            .unwrap_err()
            .contains("<eot> at id 50259"));
        let json = serde_json::to_string(&Family::seed()).unwrap();
        assert!(
            json.contains(r#""layout":"seed""#) && json.contains(r#""gpt2_bpe""#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<Family>(&json).unwrap(),
            Family::seed()
        );
    }
}
