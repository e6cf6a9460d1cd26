//! The tokenizer's rules written out by hand, for the browser build, where the `tokenizers` crate
//! (with its regex engines) would be most of the download. Same splitting as the `tokenizers`
//! pipeline of [`crate::tokenizer::Tokenizer::new`]: special tokens matched first, anywhere; the
//! rest split at white space (`char::is_whitespace`), every numeric character its own piece, every
//! ASCII punctuation character its own piece; each piece looked up in [`VOCAB`]. Tested against
//! the `tokenizers` pipeline on every layout the project writes and on malformed text: the same
//! ids, or a refusal from both.

use crate::tokenizer::{TokenizerError, SPECIAL, UNK, VOCAB};

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

#[cfg(all(test, feature = "hf-tokenizer"))]
mod tests {
    use super::*;
    use crate::problem::Problem;
    use crate::tokenizer::Tokenizer;
    use proptest::prelude::*;

    /// The same ids, or a refusal from both.
    fn agree(text: &str) {
        let hf = Tokenizer::new().encode(text).ok();
        assert_eq!(encode(text).ok(), hf, "{text:?}");
    }

    #[test]
    fn agrees_with_tokenizers_on_every_text_the_project_writes() {
        for (a, b) in [
            (0, 0),
            (7, 5),
            (347, 285),
            (9999, 9999),
            (1, 9999),
            (99999, 1),
        ] {
            let problem = Problem::new(a, b);
            agree(&problem.full_text());
            agree(&problem.question());
            for step in problem.steps() {
                agree(&step.to_string());
            }
        }
        for token in crate::tokenizer::VOCAB {
            agree(token);
        }
    }

    #[test]
    fn agrees_on_every_layout_decoded() {
        use crate::positions::PositionScheme;
        use crate::stage::{Stage, StageKind};
        let tokenizer = Tokenizer::new();
        let written = Stage::latent(0, 1, 5);
        let mut stages: Vec<Stage> = (0..=5).map(|k| Stage::latent(k, 1, 5)).collect();
        stages.extend([
            Stage::latent(3, 2, 5),
            written.with_kind(StageKind::Pause),
            written.with_kind(StageKind::NoCot),
            Stage::latent(2, 2, 5).with_positions(PositionScheme::Coupled),
        ]);
        for stage in &stages {
            for problem in [
                Problem::new(347, 285),
                Problem::new(9999, 1),
                Problem::new(0, 7),
            ] {
                let layout = crate::layout::Layout::new(&tokenizer, &problem, stage).unwrap();
                let text = tokenizer.decode(&layout.ids).unwrap();
                assert_eq!(encode(&text).unwrap(), layout.ids, "{text}");
            }
        }
    }

    #[test]
    fn agrees_on_malformed_text() {
        for text in [
            "",
            " ",
            "\t\n",
            "3 plus 4",
            "<bot><eot>",
            "<bot",
            "<<bot>>",
            "<unk>",
            "12<sep>3",
            "write3carry1",
            "3 + 4 = ?",
            "٣ + ٤",
            "3\u{a0}+\u{a0}4",
            "１２",
            "«3»",
            "<latent><latent>",
            "carry1write",
            "<pad>x",
            "x<eos>",
            "7+5=12",
        ] {
            agree(text);
        }
    }

    #[test]
    fn check_json_accepts_the_shipped_vocabulary_only() {
        let json = Tokenizer::new().to_json();
        check_json(json.as_bytes()).unwrap();
        let swapped = json.replace("\"write\": ", "\"wrote\": ");
        assert_ne!(swapped, json);
        assert!(check_json(swapped.as_bytes()).is_err());
        assert!(check_json(b"{}").is_err());
        assert!(check_json(&json.as_bytes()[..json.len() / 2]).is_err());
    }

    proptest! {
        #[test]
        fn agrees_on_random_mixtures(pieces in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(crate::tokenizer::VOCAB.to_vec()).prop_map(String::from),
                proptest::sample::select(vec![" ", "  ", "\t", "\n", "<", ">", "x", "é", "٣", "—", "!", "\u{a0}"])
                    .prop_map(String::from),
                any::<char>().prop_map(String::from),
            ],
            0..12,
        )) {
            agree(&pieces.concat());
        }
    }
}
