//! The vocabulary: one token per digit, the words and symbols of the chain of thought and the
//! special tokens. Built with the `tokenizers` crate and saved as `tokenizer.json` (feature
//! `hf-tokenizer`, on for the trainer and the command line). The browser build loads the same
//! `tokenizer.json` but splits text with [`crate::plain_tokenizer`], the same rules written out,
//! which spares the page the crate's regex engines.

#[cfg(feature = "hf-tokenizer")]
use tokenizers::models::wordlevel::WordLevel;
#[cfg(feature = "hf-tokenizer")]
use tokenizers::pre_tokenizers::{
    digits::Digits, punctuation::Punctuation, sequence::Sequence, whitespace::WhitespaceSplit,
};
#[cfg(feature = "hf-tokenizer")]
use tokenizers::{AddedToken, PreTokenizerWrapper};

#[cfg(feature = "hf-tokenizer")]
use crate::vocabulary::SPECIAL;
pub use crate::vocabulary::{
    TokenizerError, BOT, DIGIT0, EOS, EOT, EQUALS, LATENT, PAD, PLUS, SEP, UNK, VOCAB,
};

/// The project's tokenizer: a `tokenizers` word-level model over [`VOCAB`] (or, without the
/// `hf-tokenizer` feature, [`crate::plain_tokenizer`]'s rules, the same splitting).
#[derive(Clone)]
pub struct Tokenizer {
    #[cfg(feature = "hf-tokenizer")]
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// Builds the tokenizer from [`VOCAB`]: white space separates words, every digit and every
    /// `+` / `=` is its own token, and the special tokens are matched before any splitting.
    #[cfg(not(feature = "hf-tokenizer"))]
    pub fn new() -> Tokenizer {
        Tokenizer {}
    }

    /// Checks that `tokenizer.json` content holds this build's ids.
    #[cfg(not(feature = "hf-tokenizer"))]
    pub fn from_json(json: &[u8]) -> Result<Tokenizer, TokenizerError> {
        crate::plain_tokenizer::check_json(json)?;
        Ok(Tokenizer {})
    }

    /// Token ids of `text`; refuses text with a word outside the vocabulary.
    #[cfg(not(feature = "hf-tokenizer"))]
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        crate::plain_tokenizer::encode(text)
    }

    /// Builds the tokenizer from [`VOCAB`]: white space separates words, every digit and every
    /// `+` / `=` is its own token, and the special tokens are matched before any splitting.
    #[cfg(feature = "hf-tokenizer")]
    pub fn new() -> Tokenizer {
        let vocab = VOCAB
            .iter()
            .enumerate()
            .map(|(id, token)| (token.to_string(), id as u32))
            .collect();
        let model = WordLevel::builder()
            .vocab(vocab)
            .unk_token("<unk>".into())
            .build()
            .expect("the built-in vocabulary is a valid word-level model");
        let mut inner = tokenizers::Tokenizer::new(model);
        let pre = Sequence::new(vec![
            PreTokenizerWrapper::WhitespaceSplit(WhitespaceSplit),
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::Punctuation(Punctuation::default()),
        ]);
        inner.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(pre)));
        let special: Vec<AddedToken> = SPECIAL
            .iter()
            .map(|t| AddedToken::from(t.to_string(), true))
            .collect();
        inner.add_special_tokens(&special);
        Tokenizer { inner }
    }

    /// Loads `tokenizer.json` content and checks that its ids are this build's ids.
    #[cfg(feature = "hf-tokenizer")]
    pub fn from_json(json: &[u8]) -> Result<Tokenizer, TokenizerError> {
        let inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| TokenizerError::Load(e.to_string()))?;
        for (id, token) in VOCAB.iter().enumerate() {
            if inner.token_to_id(token) != Some(id as u32) {
                return Err(TokenizerError::Vocabulary(format!(
                    "token {token:?} should have id {id}"
                )));
            }
        }
        let size = inner.get_vocab_size(true);
        if size != VOCAB.len() {
            return Err(TokenizerError::Vocabulary(format!(
                "{size} tokens, expected {}",
                VOCAB.len()
            )));
        }
        Ok(Tokenizer { inner })
    }

    /// The content of `tokenizer.json`.
    #[cfg(feature = "hf-tokenizer")]
    pub fn to_json(&self) -> String {
        self.inner
            .to_string(true)
            .expect("a word-level tokenizer always serializes")
    }

    pub fn vocab_size(&self) -> usize {
        VOCAB.len()
    }

    /// Token ids of `text`; refuses text with a word outside the vocabulary.
    #[cfg(feature = "hf-tokenizer")]
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Encode {
                text: text.to_string(),
                reason: e.to_string(),
            })?;
        if let Some(i) = encoding.get_ids().iter().position(|&id| id == UNK) {
            return Err(TokenizerError::Encode {
                text: text.to_string(),
                reason: format!("{:?} is not in the vocabulary", encoding.get_tokens()[i]),
            });
        }
        Ok(encoding.get_ids().to_vec())
    }

    /// The token's text, e.g. `"7"`, `"write"`, `"<bot>"`.
    pub fn token(&self, id: u32) -> Result<&'static str, TokenizerError> {
        VOCAB
            .get(id as usize)
            .copied()
            .ok_or(TokenizerError::UnknownId(id))
    }

    /// The canonical text of a token sequence: the inverse of [`Tokenizer::encode`] on every text
    /// this project writes (see [`render`]).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let tokens = ids
            .iter()
            .map(|&id| self.token(id))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(render(&tokens))
    }
}

impl Default for Tokenizer {
    fn default() -> Self {
        Tokenizer::new()
    }
}

fn is_digit(token: &str) -> bool {
    token.len() == 1 && token.as_bytes()[0].is_ascii_digit()
}

/// Joins tokens the way the project writes text: digits of one number stick together; inside the
/// chain of thought (after `<bot>`) `+` and `=` stick to their digits (`4+8+1=13`), while the
/// question keeps spaces around them (`347 + 285 =`); everything else is separated by one space.
pub fn render(tokens: &[&str]) -> String {
    let mut out = String::new();
    let mut in_steps = false;
    let mut prev: Option<&str> = None;
    for &token in tokens {
        if let Some(p) = prev {
            let tight_symbol = |t: &str| t == "+" || t == "=";
            let glue = (is_digit(p) && is_digit(token))
                || (in_steps
                    && ((tight_symbol(p) && is_digit(token))
                        || (is_digit(p) && tight_symbol(token))));
            if !glue {
                out.push(' ');
            }
        }
        out.push_str(token);
        match token {
            "<bot>" => in_steps = true,
            "<eot>" => in_steps = false,
            _ => {}
        }
        prev = Some(token);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Problem;

    #[test]
    fn every_token_has_its_fixed_id() {
        let t = Tokenizer::new();
        for (id, token) in VOCAB.iter().enumerate().filter(|(id, _)| *id as u32 != UNK) {
            assert_eq!(t.encode(token).unwrap(), [id as u32], "{token}");
        }
        assert_eq!(VOCAB[DIGIT0 as usize], "0");
        assert_eq!(VOCAB[LATENT as usize], "<latent>");
        assert_eq!((VOCAB[PLUS as usize], VOCAB[EQUALS as usize]), ("+", "="));
    }

    #[test]
    fn splits_digits_and_symbols() {
        let t = Tokenizer::new();
        let ids = t.encode("4+8+1=13 write 3 carry 1 <sep>").unwrap();
        let tokens: Vec<_> = ids.iter().map(|&i| t.token(i).unwrap()).collect();
        assert_eq!(
            tokens,
            ["4", "+", "8", "+", "1", "=", "1", "3", "write", "3", "carry", "1", "<sep>"]
        );
    }

    #[test]
    #[cfg(feature = "hf-tokenizer")]
    fn json_round_trip_and_decode() {
        let t = Tokenizer::new();
        let loaded = Tokenizer::from_json(t.to_json().as_bytes()).unwrap();
        let text = Problem::new(347, 285).full_text();
        let ids = loaded.encode(&text).unwrap();
        assert_eq!(ids, t.encode(&text).unwrap());
        assert_eq!(loaded.decode(&ids).unwrap(), text);
    }

    #[test]
    fn refuses_unknown_words_and_ids() {
        let t = Tokenizer::new();
        let err = t.encode("3 plus 4").unwrap_err().to_string();
        assert!(err.contains("plus"), "{err}");
        assert!(matches!(
            t.decode(&[99]),
            Err(TokenizerError::UnknownId(99))
        ));
    }

    #[test]
    fn refuses_a_foreign_tokenizer_file() {
        assert!(Tokenizer::from_json(b"{not json").is_err());
        let swapped = Tokenizer::new()
            .to_json()
            .replace("\"write\": 20", "\"write\": 21")
            .replace("\"carry\": 21", "\"carry\": 20");
        assert!(matches!(
            Tokenizer::from_json(swapped.as_bytes()),
            Err(TokenizerError::Vocabulary(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn text_round_trips(a in 0u64..100_000, b in 0u64..100_000) {
            let t = Tokenizer::new();
            let text = Problem::new(a, b).full_text();
            let ids = t.encode(&text).unwrap();
            proptest::prop_assert_eq!(t.decode(&ids).unwrap(), text);
        }

        #[test]
        fn ids_round_trip(ids in proptest::collection::vec(0u32..22, 0..40)) {
            // Any id sequence without the unknown token survives decode then encode.
            let t = Tokenizer::new();
            let ids: Vec<u32> = ids.into_iter().filter(|&i| i != UNK).collect();
            let text = t.decode(&ids).unwrap();
            proptest::prop_assert_eq!(t.encode(&text).unwrap(), ids);
        }
    }
}
