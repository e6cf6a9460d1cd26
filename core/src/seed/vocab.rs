//! The seed's vocabulary without the `tokenizers` crate, for the browser: GPT-2's byte-level BPE
//! read from a weights folder's `tokenizer.json`, with the encoder restated for the texts the
//! seed's layouts are made of (printable ASCII and the spaces between), and everything a
//! decoding needs of token texts: their bytes, transformers' `decode`, which tokens are digits
//! and the answer rule. [`super::tokenizer::Gpt2Tokenizer`] (native) keeps the crate for any
//! text and builds on this for the rest; the two are tested equal on every seed-format string
//! of the parity fixture.
//!
//! GPT-2's pre-tokenizer is the regex
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`; on printable
//! ASCII with spaces, `\p{L}` is `[A-Za-z]`, `\p{N}` is `[0-9]` and `\s` is the space, which
//! [`pre_tokens`] follows alternative by alternative. Other characters (tabs, newlines, any
//! non-ASCII) are refused rather than guessed: their classes depend on Unicode tables.

use std::collections::HashMap;

use super::{ACT, BOT, ENDOFTEXT, SPECIALS, VOCAB};

pub(crate) const ENDOFTEXT_TEXT: &str = "<|endoftext|>";

/// A text whose ids every loaded tokenizer must reproduce (transformers' ids): it pins the BPE,
/// the byte-level splitting and that no special token strips the spaces around it.
pub(crate) const PROBE: &str =
    "347 + 285 = <bot> 7+5=12 write 2 carry 1 <sep><eot> 632 <act><|endoftext|>";
pub(crate) const PROBE_IDS: [u32; 23] = [
    30995, 1343, 33015, 796, 220, 50257, 767, 10, 20, 28, 1065, 3551, 362, 3283, 352, 220, 50258,
    50259, 718, 2624, 220, 50260, 50256,
];

#[derive(Debug, thiserror::Error)]
pub enum SeedTokenizerError {
    #[error("the GPT-2 tokenizer could not be read: {0}")]
    Load(String),
    #[error("the tokenizer is not the seed's GPT-2 tokenizer: {0}")]
    Mismatch(String),
    #[error("{0:?} holds a character other than printable ASCII and spaces (the seed's texts)")]
    Unsupported(String),
}

/// What a token's text is to the answer rule ([`Gpt2Vocab::answer_from`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigitKind {
    /// Anything else (a special token, a lone space, a letter, a partial UTF-8 sequence...).
    NotDigits,
    /// One or more ASCII digits, nothing else (`"32"`).
    Digits,
    /// One space, then one or more ASCII digits (`" 6"`, GPT-2's `Ġ6`).
    SpacedDigits,
}

/// The seed's vocabulary: GPT-2's 50,257 byte-level tokens and merges, `<|endoftext|>` and the
/// four added tokens at 50257-50260.
#[derive(Clone, Debug)]
pub struct Gpt2Vocab {
    /// Byte-level token text (`"Ġ6"`) to id, for the BPE's last step.
    ids: HashMap<String, u32>,
    /// A merge's rank (its line in `merges.txt`), by the pair it joins.
    ranks: HashMap<(String, String), u32>,
    /// Per id, the bytes its text stands for (specials: their ASCII content).
    token_bytes: Vec<Vec<u8>>,
    digits: Vec<DigitKind>,
}

#[derive(serde::Deserialize)]
struct TokenizerFile {
    model: BpeModel,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
}

#[derive(serde::Deserialize)]
struct BpeModel {
    vocab: HashMap<String, u32>,
    merges: Vec<Merge>,
}

/// A merge as `tokenizers` writes it: `"Ġ t"` (every version) or `["Ġ", "t"]` (0.20 and later).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Merge {
    Joined(String),
    Pair(String, String),
}

#[derive(serde::Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
    #[serde(default)]
    special: bool,
}

impl Gpt2Vocab {
    /// Reads `tokenizer.json` content (a byte-level BPE with the four tokens added) and checks
    /// that it is the seed's: 50261 ids, the specials at their ids, and transformers' ids for a
    /// probe text.
    pub fn from_json(json: &[u8]) -> Result<Gpt2Vocab, SeedTokenizerError> {
        let load = |e: String| SeedTokenizerError::Load(e);
        let mismatch = |e: String| Err(SeedTokenizerError::Mismatch(e));
        let file: TokenizerFile = serde_json::from_slice(json).map_err(|e| load(e.to_string()))?;
        let ranks = file
            .model
            .merges
            .into_iter()
            .enumerate()
            .map(|(rank, merge)| {
                let pair = match merge {
                    Merge::Pair(l, r) => (l, r),
                    Merge::Joined(text) => match text.split_once(' ') {
                        Some((l, r)) if !r.contains(' ') => (l.to_string(), r.to_string()),
                        _ => return Err(load(format!("merge {rank} is not two tokens: {text:?}"))),
                    },
                };
                Ok((pair, rank as u32))
            })
            .collect::<Result<HashMap<_, _>, _>>()?;
        let mut token_bytes = vec![None; VOCAB];
        for (token, &id) in &file.model.vocab {
            match token_bytes.get_mut(id as usize) {
                Some(slot @ None) => *slot = Some(byte_level_bytes(token)),
                Some(Some(_)) => return mismatch(format!("two tokens have id {id}")),
                None => return mismatch(format!("{token:?} has id {id}, past {VOCAB} ids")),
            }
        }
        let expected = std::iter::once((ENDOFTEXT, ENDOFTEXT_TEXT)).chain((BOT..).zip(SPECIALS));
        for (id, text) in expected {
            let added = file.added_tokens.iter().find(|t| t.content == text);
            if !added.is_some_and(|t| t.id == id && t.special) {
                return mismatch(format!("{text} is not the special token {id}"));
            }
            token_bytes[id as usize] = Some(text.as_bytes().to_vec());
        }
        let token_bytes = token_bytes
            .into_iter()
            .enumerate()
            .map(|(id, b)| {
                b.ok_or_else(|| SeedTokenizerError::Mismatch(format!("no token has id {id}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let digits = token_bytes.iter().map(|b| digit_kind(b)).collect();
        let vocab = Gpt2Vocab {
            ids: file.model.vocab,
            ranks,
            token_bytes,
            digits,
        };
        match vocab.encode(PROBE) {
            Ok(ids) if ids == PROBE_IDS => Ok(vocab),
            Ok(ids) => mismatch(format!("{PROBE:?} encodes as {ids:?}")),
            Err(e) => mismatch(e.to_string()),
        }
    }

    /// The ids transformers' `GPT2Tokenizer.encode(text)` gives (no BOS) for a text of printable
    /// ASCII and spaces: the five specials split out first, with the spaces around them kept
    /// (`"= <bot>"` is `[796, 220, 50257]`); other characters are refused.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, SeedTokenizerError> {
        if !text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(SeedTokenizerError::Unsupported(text.to_string()));
        }
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let special = (ENDOFTEXT..=ACT)
                .filter_map(|id| {
                    let content = self.text_of_special(id);
                    rest.find(content).map(|at| (at, id, content.len()))
                })
                .min_by_key(|&(at, id, _)| (at, id));
            let (plain, next) = match special {
                Some((at, id, len)) => (&rest[..at], Some((id, &rest[at + len..]))),
                None => (rest, None),
            };
            for piece in pre_tokens(plain) {
                self.bpe(piece, &mut ids)?;
            }
            match next {
                Some((id, after)) => {
                    ids.push(id);
                    rest = after;
                }
                None => break,
            }
        }
        Ok(ids)
    }

    fn text_of_special(&self, id: u32) -> &str {
        std::str::from_utf8(&self.token_bytes[id as usize]).expect("special tokens are ASCII")
    }

    /// GPT-2's BPE on one pre-token: its bytes as byte-level symbols, then the lowest-ranked
    /// adjacent pair merged everywhere, until no pair has a merge.
    fn bpe(&self, piece: &str, ids: &mut Vec<u32>) -> Result<(), SeedTokenizerError> {
        let mut symbols: Vec<String> = piece
            .bytes()
            .map(|b| byte_level_char(b).to_string())
            .collect();
        loop {
            let best = symbols
                .windows(2)
                .filter_map(|w| self.ranks.get(&(w[0].clone(), w[1].clone())))
                .min();
            let Some(&best) = best else { break };
            let mut merged = Vec::with_capacity(symbols.len());
            let mut i = 0;
            while i < symbols.len() {
                let pair_rank = symbols
                    .get(i + 1)
                    .and_then(|next| self.ranks.get(&(symbols[i].clone(), next.clone())));
                if pair_rank == Some(&best) {
                    merged.push(format!("{}{}", symbols[i], symbols[i + 1]));
                    i += 2;
                } else {
                    merged.push(symbols[i].clone());
                    i += 1;
                }
            }
            symbols = merged;
        }
        for symbol in symbols {
            let id = self.ids.get(&symbol).ok_or_else(|| {
                SeedTokenizerError::Mismatch(format!("the BPE made {symbol:?}, which has no id"))
            })?;
            ids.push(*id);
        }
        Ok(())
    }

    /// `GPT2Tokenizer.decode(ids)` with transformers 4.44's defaults: the byte-level tokens
    /// between added tokens decoded together (invalid UTF-8 as U+FFFD), each of `<bot> <sep>
    /// <eot> <act>` a piece of its own, the pieces joined by one space, then
    /// `clean_up_tokenization` (`" ."` to `"."`, `" 's"` to `"'s"`, ...). Ids outside the
    /// vocabulary (Python raises) decode as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut pieces: Vec<String> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        for &id in ids {
            // The added tokens above GPT-2's vocabulary are transformers' "legacy added tokens";
            // <|endoftext|> is not: it decodes as part of the byte-level text.
            if (BOT..=ACT).contains(&id) {
                if !bytes.is_empty() {
                    pieces.push(String::from_utf8_lossy(&bytes).into_owned());
                    bytes.clear();
                }
                pieces.push(SPECIALS[(id - BOT) as usize].to_string());
            } else {
                match self.token_bytes.get(id as usize) {
                    Some(b) => bytes.extend_from_slice(b),
                    None => bytes.extend_from_slice("\u{FFFD}".as_bytes()),
                }
            }
        }
        if !bytes.is_empty() {
            pieces.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        clean_up_tokenization(&pieces.join(" "))
    }

    /// One token's text (`convert_tokens_to_string([token])`): `" 6"` for 718, `"<eot>"` for
    /// 50259, U+FFFD for a byte that is only part of a character; `None` outside the vocabulary.
    pub fn token_text(&self, id: u32) -> Option<String> {
        let bytes = self.token_bytes.get(id as usize)?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    }

    /// The bytes of every token, in id order.
    pub fn token_bytes(&self) -> &[Vec<u8>] {
        &self.token_bytes
    }

    /// What token `id`'s text is to the answer rule (`NotDigits` outside the vocabulary).
    pub fn digit_kind(&self, id: u32) -> DigitKind {
        self.digits
            .get(id as usize)
            .copied()
            .unwrap_or(DigitKind::NotDigits)
    }

    /// [`DigitKind`] of every id, in id order: the table a decoding loop (on any device)
    /// needs to find where an answer ends.
    pub fn digit_table(&self) -> &[DigitKind] {
        &self.digits
    }

    /// The seed family's answer rule (issue 31): the answer is the digits of the tokens after
    /// `<eot>`, up to the first token whose text is not all ASCII digits; the first token may
    /// instead be one space followed by digits (GPT-2's `Ġ`), which adds only its digits; a
    /// later spaced token ends the answer, as do special tokens, `<|endoftext|>` and the end of
    /// `ids_after_eot`. `None` when the first token already ends it. (The seed's own loops read
    /// answers otherwise: docs/seed-format.md, section 9.)
    pub fn answer_from(&self, ids_after_eot: &[u32]) -> Option<String> {
        let mut answer = String::new();
        for (n, &id) in ids_after_eot.iter().enumerate() {
            let bytes = &self.token_bytes[..];
            match (n, self.digit_kind(id)) {
                (_, DigitKind::Digits) => answer.push_str(ascii(&bytes[id as usize])),
                (0, DigitKind::SpacedDigits) => answer.push_str(ascii(&bytes[id as usize][1..])),
                _ => break,
            }
        }
        (!answer.is_empty()).then_some(answer)
    }
}

/// GPT-2's pre-tokenizer on printable ASCII and spaces (the module doc's regex), its matches in
/// order; they cover `text`.
fn pre_tokens(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let class = |b: u8| -> u8 {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' => b'L',
            b'0'..=b'9' => b'N',
            b' ' => b' ',
            _ => b'P',
        }
    };
    // The end of the run of bytes of `class` from `at`.
    let run = |at: usize, c: u8| at + bytes[at..].iter().take_while(|&&b| class(b) == c).count();
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &text[at..];
        let end = if let Some(c) = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
            .iter()
            .find(|c| rest.starts_with(**c))
        {
            at + c.len()
        } else {
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then one class.
            let start = at + usize::from(bytes[at] == b' ');
            match bytes.get(start).map(|&b| class(b)) {
                Some(c) if c != b' ' => run(start, c),
                // `\s+(?!\S)`, else `\s+`: a run of spaces leaves its last one to the next
                // piece when one follows (` ?` takes it), unless the run is that one space.
                _ => {
                    let end = run(at, b' ');
                    if end < bytes.len() && end - at > 1 {
                        end - 1
                    } else {
                        end
                    }
                }
            }
        };
        pieces.push(&text[at..end]);
        at = end;
    }
    pieces
}

/// Python's `str.strip()`: its white space is Rust's plus the separators U+001C-U+001F.
pub fn python_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// transformers' `clean_up_tokenization`, in its order.
fn clean_up_tokenization(text: &str) -> String {
    const RULES: [(&str, &str); 10] = [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ];
    RULES
        .iter()
        .fold(text.to_string(), |t, (from, to)| t.replace(from, to))
}

fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("digit tokens are ASCII")
}

fn digit_kind(bytes: &[u8]) -> DigitKind {
    let all_digits = |b: &[u8]| !b.is_empty() && b.iter().all(u8::is_ascii_digit);
    match bytes {
        b if all_digits(b) => DigitKind::Digits,
        [b' ', rest @ ..] if all_digits(rest) => DigitKind::SpacedDigits,
        _ => DigitKind::NotDigits,
    }
}

/// Whether GPT-2's `bytes_to_unicode` maps byte `b` to the character of the same code: the
/// printable bytes `!`-`~`, `¡`-`¬`, `®`-`ÿ`. The other 68 map, in order, to U+0100.. (so a
/// space is `Ġ`, U+0120).
fn printable(b: u32) -> bool {
    matches!(b, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff)
}

/// The character GPT-2's `bytes_to_unicode` gives byte `b`.
fn byte_level_char(b: u8) -> char {
    let code = b as u32;
    if printable(code) {
        return char::from(b);
    }
    // The unprintable bytes in order: 0x00-0x20 (33), 0x7f-0xa0 (34), 0xad.
    let nth = match b {
        0x00..=0x20 => code,
        0x7f..=0xa0 => 33 + code - 0x7f,
        _ => 67,
    };
    char::from_u32(0x100 + nth).expect("U+0100..U+0143 are characters")
}

/// The bytes a byte-level token stands for: [`byte_level_char`] inverted. A character outside
/// that alphabet (not in GPT-2's files) is kept as its UTF-8 bytes.
pub(crate) fn byte_level_bytes(token: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len());
    for c in token.chars() {
        let code = c as u32;
        if printable(code) {
            out.push(code as u8);
        } else if (0x100..0x100 + 68).contains(&code) {
            let nth = code - 0x100;
            out.push(match nth {
                0..=32 => nth as u8,
                33..=66 => (0x7f + nth - 33) as u8,
                _ => 0xad,
            });
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_characters_invert() {
        for b in 0..=255u8 {
            let c = byte_level_char(b);
            assert_eq!(byte_level_bytes(&c.to_string()), [b], "byte {b}");
        }
        assert_eq!(byte_level_char(b' '), 'Ġ');
    }

    #[test]
    fn pre_tokens_follow_gpt2_s_regex() {
        let cases: [(&str, &[&str]); 8] = [
            ("347 + 285 = ", &["347", " +", " 285", " =", " "]),
            (
                " 7+5=12 write 2",
                &[" 7", "+", "5", "=", "12", " write", " 2"],
            ),
            ("a  b", &["a", " ", " b"]),
            ("a   ", &["a", "   "]),
            ("  ", &["  "]),
            ("it's ok'll", &["it", "'s", " ok", "'ll"]),
            ("x +'s", &["x", " +'", "s"]),
            (" ", &[" "]),
        ];
        for (text, want) in cases {
            assert_eq!(pre_tokens(text), want, "{text:?}");
        }
    }
}
