//! The seed's tokenizer: GPT-2's byte-level BPE (`core/assets/gpt2/`) with `<|endoftext|>` and
//! the four added tokens `<bot> <sep> <eot> <act>` at 50257-50260, as transformers'
//! `GPT2Tokenizer` (4.44.2) encodes and decodes for the seed (docs/seed-format.md, section 4).
//! Encoding runs through the `tokenizers` crate, for any text; token texts, decoding and the
//! answer rule are [`Gpt2Vocab`]'s (this derefs to it), which also encodes the seed's own texts
//! without the crate (the browser's build).

use std::collections::HashMap;

use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

pub use super::vocab::{python_strip, DigitKind, Gpt2Vocab, SeedTokenizerError};
use super::vocab::{ENDOFTEXT_TEXT, PROBE, PROBE_IDS};
use super::{BOT, ENDOFTEXT, SPECIALS, VOCAB};

const ENCODER_JSON: &[u8] = include_bytes!("../../assets/gpt2/encoder.json");
const VOCAB_BPE: &[u8] = include_bytes!("../../assets/gpt2/vocab.bpe");

/// The seed's tokenizer, built with the `tokenizers` crate's byte-level BPE.
#[derive(Clone)]
pub struct Gpt2Tokenizer {
    inner: tokenizers::Tokenizer,
    /// The same vocabulary without the crate: token texts, decoding and the answer rule.
    vocab: Gpt2Vocab,
}

impl std::ops::Deref for Gpt2Tokenizer {
    type Target = Gpt2Vocab;

    fn deref(&self) -> &Gpt2Vocab {
        &self.vocab
    }
}

impl Gpt2Tokenizer {
    /// Built from the vocabulary files compiled into this binary (`core/assets/gpt2/`).
    pub fn new() -> Gpt2Tokenizer {
        Gpt2Tokenizer::from_vocab_files(ENCODER_JSON, VOCAB_BPE)
            .expect("the embedded GPT-2 vocabulary builds the seed's tokenizer")
    }

    /// Built from GPT-2's `encoder.json` / `vocab.json` and `vocab.bpe` / `merges.txt` contents.
    pub fn from_vocab_files(
        encoder_json: &[u8],
        vocab_bpe: &[u8],
    ) -> Result<Gpt2Tokenizer, SeedTokenizerError> {
        let load = |e: String| SeedTokenizerError::Load(e);
        let vocab: HashMap<String, u32> =
            serde_json::from_slice(encoder_json).map_err(|e| load(format!("vocabulary: {e}")))?;
        let merges = parse_merges(vocab_bpe)?;
        let vocab: Vocab = vocab.into_iter().collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| load(format!("BPE: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        // GPT-2's pre-tokenizer: its regex, bytes mapped to printable characters, no prefix space.
        inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        inner.with_decoder(Some(ByteLevel::default()));
        // Special, hence not normalized and never stripped: a space before one stays token 220.
        let specials: Vec<AddedToken> = std::iter::once(ENDOFTEXT_TEXT)
            .chain(SPECIALS)
            .map(|s| AddedToken::from(s, true))
            .collect();
        inner.add_special_tokens(&specials);
        Gpt2Tokenizer::checked(inner)
    }

    /// Reads `tokenizer.json` content (ours, or a Hugging Face GPT-2 one with the four tokens
    /// added) and checks that it is the seed's: 50261 ids, the specials at their ids, and
    /// transformers' ids for a probe text.
    pub fn from_json(json: &[u8]) -> Result<Gpt2Tokenizer, SeedTokenizerError> {
        let inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| SeedTokenizerError::Load(e.to_string()))?;
        Gpt2Tokenizer::checked(inner)
    }

    /// `tokenizer.json` content that [`Gpt2Tokenizer::from_json`] and the Python `tokenizers`
    /// library read back to the same ids; compact, since a browser may download it.
    pub fn to_json(&self) -> String {
        let json = self
            .inner
            .to_string(false)
            .expect("a BPE tokenizer always serializes");
        let mut value: serde_json::Value =
            serde_json::from_str(&json).expect("tokenizers writes valid JSON");
        // This crate writes each merge as a pair; the `tokenizers` 0.19 that the seed's
        // transformers 4.44.2 pins reads only `"left right"` strings, which every version reads
        // (byte-level tokens never hold a space, so the join is unambiguous).
        if let Some(merges) = value["model"]["merges"].as_array_mut() {
            for merge in merges.iter_mut() {
                let joined = match merge.as_array().map(Vec::as_slice) {
                    Some([serde_json::Value::String(l), serde_json::Value::String(r)]) => {
                        format!("{l} {r}")
                    }
                    _ => continue,
                };
                *merge = serde_json::Value::String(joined);
            }
        }
        value.to_string()
    }

    fn checked(inner: tokenizers::Tokenizer) -> Result<Gpt2Tokenizer, SeedTokenizerError> {
        let mismatch = |e: String| Err(SeedTokenizerError::Mismatch(e));
        let size = inner.get_vocab_size(true);
        if size != VOCAB {
            return mismatch(format!("{size} tokens, expected {VOCAB}"));
        }
        let added = inner.get_added_tokens_decoder();
        let expected = std::iter::once((ENDOFTEXT, ENDOFTEXT_TEXT)).chain((BOT..).zip(SPECIALS));
        for (id, text) in expected {
            if inner.token_to_id(text) != Some(id) || !added.get(&id).is_some_and(|t| t.special) {
                return mismatch(format!("{text} is not the special token {id}"));
            }
        }
        let probe = inner
            .encode(PROBE, false)
            .map_err(|e| SeedTokenizerError::Mismatch(e.to_string()))?;
        if probe.get_ids() != PROBE_IDS {
            return mismatch(format!("{PROBE:?} encodes as {:?}", probe.get_ids()));
        }
        let json = inner
            .to_string(false)
            .map_err(|e| SeedTokenizerError::Load(e.to_string()))?;
        let vocab = Gpt2Vocab::from_json(json.as_bytes())?;
        Ok(Gpt2Tokenizer { inner, vocab })
    }

    /// The ids transformers' `GPT2Tokenizer.encode(text)` gives (no BOS): specials split out
    /// first, with the spaces around them kept (`"= <bot>"` is `[796, 220, 50257]`).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.inner
            .encode(text, false)
            .expect("byte-level BPE encodes every text: each byte is a token")
            .get_ids()
            .to_vec()
    }
}

impl Default for Gpt2Tokenizer {
    fn default() -> Self {
        Gpt2Tokenizer::new()
    }
}

fn parse_merges(vocab_bpe: &[u8]) -> Result<Merges, SeedTokenizerError> {
    let text = std::str::from_utf8(vocab_bpe)
        .map_err(|e| SeedTokenizerError::Load(format!("merges: {e}")))?;
    text.lines()
        .filter(|line| !line.starts_with("#version") && !line.is_empty())
        .enumerate()
        .map(
            |(rank, line)| match line.split(' ').collect::<Vec<_>>()[..] {
                [left, right] => Ok((left.to_string(), right.to_string())),
                _ => Err(SeedTokenizerError::Load(format!(
                    "merge {} is not two tokens: {line:?}",
                    rank + 1
                ))),
            },
        )
        .collect()
}

/// One tokenizer for all the tests of the crate (building one takes a good part of a second).
#[cfg(test)]
pub(crate) fn shared() -> &'static Gpt2Tokenizer {
    static SHARED: std::sync::OnceLock<Gpt2Tokenizer> = std::sync::OnceLock::new();
    SHARED.get_or_init(Gpt2Tokenizer::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{EOT, SEP};
    use serde_json::Value;

    fn parity() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/seed-standin/tokenizer-parity.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn every_parity_string_gets_transformers_ids() {
        let fx = parity();
        let tok = shared();
        let strings = fx["strings"].as_array().unwrap();
        let ids = fx["ids"].as_array().unwrap();
        assert_eq!(strings.len(), 2774);
        for (text, want) in strings.iter().zip(ids) {
            let want: Vec<u32> = serde_json::from_value(want.clone()).unwrap();
            assert_eq!(tok.encode(text.as_str().unwrap()), want, "{text}");
        }
        // The crate-free encoder, as the browser builds it from the file an import writes.
        let vocab = Gpt2Vocab::from_json(tok.to_json().as_bytes()).unwrap();
        let mut printable = 0;
        for (text, want) in strings.iter().zip(ids) {
            let want: Vec<u32> = serde_json::from_value(want.clone()).unwrap();
            match vocab.encode(text.as_str().unwrap()) {
                Ok(got) => {
                    assert_eq!(got, want, "{text}");
                    printable += 1;
                }
                Err(SeedTokenizerError::Unsupported(_)) => {}
                Err(e) => panic!("{text}: {e}"),
            }
        }
        // The three others hold a newline, a tab or a non-ASCII character.
        assert_eq!(printable, 2771);
        for (i, name) in SPECIALS.iter().enumerate() {
            assert_eq!(fx["special_ids"][name], BOT + i as u32);
        }
    }

    #[test]
    fn the_issue_example_and_the_specials() {
        let tok = shared();
        assert_eq!(
            tok.encode("347 + 285 = <bot>"),
            [30995, 1343, 33015, 796, 220, 50257]
        );
        assert_eq!(tok.encode("<sep><eot>"), [SEP, EOT]);
        assert_eq!(tok.encode("<|endoftext|>"), [ENDOFTEXT]);
    }

    #[test]
    fn json_round_trip_keeps_every_id_and_refuses_another_tokenizer() {
        let tok = Gpt2Tokenizer::new();
        let json = tok.to_json();
        let back = Gpt2Tokenizer::from_json(json.as_bytes()).unwrap();
        let plain = tokenizers::Tokenizer::from_bytes(json.as_bytes()).unwrap();
        let fx = parity();
        for text in fx["strings"].as_array().unwrap().iter().step_by(7) {
            let text = text.as_str().unwrap();
            let want = tok.encode(text);
            assert_eq!(back.encode(text), want);
            assert_eq!(plain.encode(text, false).unwrap().get_ids(), want);
        }
        assert_eq!(back.token_bytes(), tok.token_bytes());
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["model"]["merges"][0], "Ġ t");
        let ours = crate::tokenizer::Tokenizer::new().to_json();
        assert!(matches!(
            Gpt2Tokenizer::from_json(ours.as_bytes()),
            Err(SeedTokenizerError::Mismatch(_))
        ));
        // The same file with <eot> renamed: refused by name.
        let renamed = json.replace("\"<eot>\"", "\"<end>\"");
        let err = Gpt2Tokenizer::from_json(renamed.as_bytes()).err().unwrap();
        assert!(err.to_string().contains("<eot>"), "{err}");
        assert!(Gpt2Tokenizer::from_json(b"{").is_err());
        let err = Gpt2Vocab::from_json(renamed.as_bytes()).err().unwrap();
        assert!(err.to_string().contains("<eot>"), "{err}");
        assert!(Gpt2Vocab::from_json(ours.as_bytes()).is_err());
        assert!(Gpt2Vocab::from_json(b"{").is_err());
    }

    #[test]
    fn the_crate_free_encoder_equals_the_crate_on_any_printable_ascii() {
        use rand::{Rng, SeedableRng};
        let tok = shared();
        let vocab = Gpt2Vocab::from_json(tok.to_json().as_bytes()).unwrap();
        // Spaces, digits, letters and punctuation weighted towards runs and contractions,
        // specials among them.
        let pieces = [
            " ",
            "  ",
            "7",
            "12",
            "a",
            "Zq",
            "'",
            "'s",
            "'ll",
            "+",
            "=",
            "!?",
            "<bot>",
            "<eot>",
            "<|endoftext|>",
            "<",
            ">",
            "write",
            "~",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
        for _ in 0..5000 {
            let n = rng.random_range(0..12);
            let text: String = (0..n)
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect();
            assert_eq!(vocab.encode(&text).unwrap(), tok.encode(&text), "{text:?}");
        }
        for text in ["a\tb", "é", "x\n"] {
            assert!(matches!(
                vocab.encode(text),
                Err(SeedTokenizerError::Unsupported(_))
            ));
        }
    }

    #[test]
    fn decode_and_token_text_equal_transformers() {
        // GPT2Tokenizer.decode / convert_tokens_to_string in transformers 4.44.2.
        let tok = shared();
        let cases: [(&[u32], &str); 12] = [
            (&[860, 50259, 860], " 9 <eot>  9"),
            (&[50259, 50258], "<eot> <sep>"),
            (&[860, 50256, 860], " 9<|endoftext|> 9"),
            (&[220, 50259, 220], "  <eot>  "),
            (&[642, 796], " 5 ="),
            (&[1343, 764, 13, 220], " +.. "),
            (&[447, 247, 82], "\u{2019}s"),
            (&[220, 447, 82], " \u{FFFD}s"),
            (&[705, 82], "'s"),
            (&[11, 220, 11], ",,"),
            (&[447, 247, 82, 220, 77, 470], "\u{2019}sn't"),
            (&[352, 220, 50259, 220, 718, 2624], " 1  <eot>   632"),
        ];
        for (ids, want) in cases {
            assert_eq!(tok.decode(ids), want, "{ids:?}");
        }
        assert_eq!(python_strip(&tok.decode(&[1849, 6])), "'");
        assert_eq!(python_strip("\u{1c} 12\u{a0}\n"), "12");
        let texts = [
            (220, " "),
            (718, " 6"),
            (2624, "32"),
            (50256, "<|endoftext|>"),
        ];
        for (id, want) in texts {
            assert_eq!(tok.token_text(id).unwrap(), want);
        }
        assert_eq!(tok.token_text(EOT).unwrap(), "<eot>");
        assert_eq!(tok.token_text(447).unwrap(), "\u{FFFD}");
        assert_eq!(tok.token_text(VOCAB as u32), None);
    }

    #[test]
    fn digit_table_and_answer_rule() {
        let tok = shared();
        let count = |k| tok.digit_table().iter().filter(|&&d| d == k).count();
        // Counted with transformers over GPT-2's vocabulary.
        assert_eq!(count(DigitKind::Digits), 994);
        assert_eq!(count(DigitKind::SpacedDigits), 697);
        assert_eq!(tok.digit_kind(718), DigitKind::SpacedDigits);
        assert_eq!(tok.digit_kind(2624), DigitKind::Digits);
        assert_eq!(tok.digit_kind(220), DigitKind::NotDigits);
        assert_eq!(tok.digit_kind(EOT), DigitKind::NotDigits);
        assert_eq!(tok.answer_from(&[718, 2624, 50256]), Some("632".into()));
        assert_eq!(
            tok.answer_from(&[1367, 3134, 796, 220]),
            Some("1167".into())
        );
        // A later spaced number ends the answer; a leading lone space is not a digit.
        assert_eq!(tok.answer_from(&[1367, 718]), Some("11".into()));
        assert_eq!(tok.answer_from(&[220, 718]), None);
        assert_eq!(tok.answer_from(&[EOT, 718]), None);
        assert_eq!(tok.answer_from(&[]), None);
    }
}
