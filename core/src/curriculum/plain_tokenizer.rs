//! The tokenizer's rules written out by hand, for the browser build, where the `tokenizers` crate
//! (with its regex engines) would be most of the download. Same splitting as the `tokenizers`
//! pipeline of [`crate::tokenizer::Tokenizer::new`]: special tokens matched first, anywhere; the
//! rest split at white space (`char::is_whitespace`), every numeric character its own piece, every
//! ASCII punctuation character its own piece; each piece looked up in [`VOCAB`]. Tested against
//! the `tokenizers` pipeline on every layout the project writes and on malformed text: the same
//! ids, or a refusal from both.

use crate::vocabulary::{TokenizerError, SPECIAL, UNK, VOCAB};

/// Token ids of `text`; refuses a piece outside the vocabulary.
pub fn encode(text: &str) -> Result<Vec<u32>, TokenizerError> {
    let mut ids = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // The leftmost special token (the longest at one place: none is a prefix of another).
        let next = SPECIAL
            .iter()
            .filter_map(|s| rest.find(s).map(|at| (at, *s)))
            .min_by_key(|&(at, s)| (at, usize::MAX - s.len()));
        let (plain, special) = match next {
            Some((at, s)) => (&rest[..at], Some(s)),
            None => (rest, None),
        };
        encode_plain(text, plain, &mut ids)?;
        match special {
            Some(s) => {
                // `<unk>` is a special token too, and refused like any unknown piece.
                push_piece(text, s, &mut ids)?;
                rest = &rest[plain.len() + s.len()..];
            }
            None => rest = "",
        }
    }
    Ok(ids)
}

fn id_of(piece: &str) -> Option<u32> {
    VOCAB
        .iter()
        .position(|&t| t == piece)
        .map(|id| id as u32)
        .filter(|&id| id != UNK)
}

/// Splits text without special tokens into pieces and appends their ids.
fn encode_plain(text: &str, plain: &str, ids: &mut Vec<u32>) -> Result<(), TokenizerError> {
    for word in plain.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        let mut start = 0;
        for (at, c) in word.char_indices() {
            if c.is_numeric() || c.is_ascii_punctuation() {
                push_piece(text, &word[start..at], ids)?;
                push_piece(text, &word[at..at + c.len_utf8()], ids)?;
                start = at + c.len_utf8();
            }
        }
        push_piece(text, &word[start..], ids)?;
    }
    Ok(())
}

fn push_piece(text: &str, piece: &str, ids: &mut Vec<u32>) -> Result<(), TokenizerError> {
    if piece.is_empty() {
        return Ok(());
    }
    ids.push(id_of(piece).ok_or_else(|| TokenizerError::Encode {
        text: text.to_string(),
        reason: format!("{piece:?} is not in the vocabulary"),
    })?);
    Ok(())
}

/// Checks that `tokenizer.json` holds this build's vocabulary: every token of [`VOCAB`] at its id,
/// nothing else.
pub fn check_json(json: &[u8]) -> Result<(), TokenizerError> {
    #[derive(serde::Deserialize)]
    struct File {
        model: Model,
    }
    #[derive(serde::Deserialize)]
    struct Model {
        vocab: std::collections::BTreeMap<String, u32>,
    }
    let file: File =
        serde_json::from_slice(json).map_err(|e| TokenizerError::Load(e.to_string()))?;
    for (id, token) in VOCAB.iter().enumerate() {
        if file.model.vocab.get(*token) != Some(&(id as u32)) {
            return Err(TokenizerError::Vocabulary(format!(
                "token {token:?} should have id {id}"
            )));
        }
    }
    if file.model.vocab.len() != VOCAB.len() {
        return Err(TokenizerError::Vocabulary(format!(
            "{} tokens, expected {}",
            file.model.vocab.len(),
            VOCAB.len()
        )));
    }
    Ok(())
}
