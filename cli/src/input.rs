//! The input of `coconut solve` (and of the seed's solve): problems as lines, from arguments or
//! a byte stream, each line giving exactly one item whatever its bytes, in bounded memory; and
//! how a line becomes a problem or a refusal.

use anyhow::Result;
use coconut_core::problem::{ParseError, Problem};

/// The longest input line answered. A problem is a few dozen bytes; a longer line is refused
/// without being held in memory.
pub const MAX_LINE_BYTES: usize = 4096;
/// How much of a refused line is shown back.
const SHOWN_CHARS: usize = 64;

/// One line of input: its text, or why it cannot be a problem before it is even parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Text(String),
    /// `shown` is what can be shown of the line (lossy, shortened); `reason` why it was refused.
    Refused {
        shown: String,
        reason: String,
    },
}

impl From<String> for Line {
    fn from(text: String) -> Line {
        Line::Text(text)
    }
}

/// The start of a line as text, lossily decoded and cut at [`SHOWN_CHARS`] characters.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

/// Splits a byte stream into [`Line`]s, every line (blank ones too) giving exactly one item. A
/// line is read through a `take` of [`MAX_LINE_BYTES`] + 1 bytes: a longer one is refused and the
/// rest of it skipped chunk by chunk, so memory stays bounded whatever the input. Bytes that are
/// not UTF-8 refuse their line only.
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
}

impl<R: std::io::BufRead> Lines<R> {
    pub fn new(reader: R) -> Lines<R> {
        Lines {
            reader,
            buf: Vec::new(),
        }
    }

    /// Consumes input up to and including the next newline (or to the end).
    fn skip_line(&mut self) -> std::io::Result<()> {
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok(());
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.reader.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let n = chunk.len();
                    self.reader.consume(n);
                }
            }
        }
    }

    fn read_line(&mut self) -> std::io::Result<Option<Line>> {
        use std::io::{BufRead, Read};
        self.buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        } else if self.buf.len() > MAX_LINE_BYTES {
            self.skip_line()?;
            return Ok(Some(Line::Refused {
                shown: shown(&self.buf),
                reason: format!(
                    "the line is longer than {MAX_LINE_BYTES} bytes: a problem is two numbers \
                     joined by '+'"
                ),
            }));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(match std::str::from_utf8(&self.buf) {
            Ok(text) => Line::Text(text.to_string()),
            Err(e) => Line::Refused {
                shown: shown(&self.buf),
                reason: format!(
                    "not valid UTF-8 (byte 0x{:02x} at byte {}): save the input as UTF-8",
                    self.buf[e.valid_up_to()],
                    e.valid_up_to() + 1
                ),
            },
        }))
    }
}

impl<R: std::io::BufRead> Iterator for Lines<R> {
    type Item = std::io::Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_line().transpose()
    }
}

/// Why a line of text is refused before parsing, if it is.
fn refuse_text(line: &str) -> Option<&'static str> {
    if line.starts_with('\u{feff}') {
        Some("the line starts with a byte-order mark (U+FEFF): save the input as UTF-8 without BOM")
    } else {
        None
    }
}

/// The problems given as arguments, one line each. A shell splits an unquoted `347 + 285` into
/// three arguments; arguments that form a problem only together (two or three in a row, whatever
/// the digit bound, which is checked later) are joined, so `coconut solve 347 + 285` answers one
/// problem instead of refusing three fragments. Anything else stays one line per argument; a blank
/// argument is never a fragment (joined, it would vanish without a result).
pub fn argument_lines(args: &[String]) -> Vec<String> {
    // Shaped like a problem: it parses, or fails only on its operands' digits.
    let is_problem = |text: &str| {
        matches!(
            Problem::parse(text, usize::MAX),
            Ok(_) | Err(ParseError::TooManyDigits { .. } | ParseError::LeadingZero(_))
        )
    };
    let mut lines = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let joined = (2..=3)
            .take_while(|n| {
                i + n <= args.len()
                    && !is_problem(&args[i])
                    && args[i..i + n].iter().all(|a| !a.trim().is_empty())
            })
            .map(|n| (n, args[i..i + n].join(" ")))
            .find(|(_, text)| is_problem(text));
        let (taken, line) = joined.unwrap_or_else(|| (1, args[i].clone()));
        lines.push(line);
        i += taken;
    }
    lines
}

/// A line as it is shown back, and its problem or why it cannot be one.
pub fn parse_line(line: Line, max_digits: usize) -> (String, Result<Problem>) {
    match line {
        Line::Text(text) => {
            let input = text.trim_end_matches(['\r', '\n']).to_string();
            let problem = match refuse_text(&input) {
                Some(reason) => Err(anyhow::anyhow!(reason)),
                None => Problem::parse(&input, max_digits).map_err(anyhow::Error::from),
            };
            (input, problem)
        }
        Line::Refused { shown, reason } => (shown, Err(anyhow::anyhow!(reason))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_problems_are_joined_and_nothing_else() {
        let lines =
            |args: &[&str]| argument_lines(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        assert_eq!(lines(&["347", "+", "285"]), ["347 + 285"]);
        assert_eq!(lines(&["347+", "285", "1", "+1"]), ["347+ 285", "1 +1"]);
        // Longer than the stage takes: joined all the same, so the refusal names the digits.
        assert_eq!(lines(&["99999", "+", "1"]), ["99999 + 1"]);
        assert_eq!(
            lines(&["123456789012345678901", "+", "07"]),
            ["123456789012345678901 + 07"]
        );
        // Quoted problems, and fragments that never form one, stay one line each.
        assert_eq!(lines(&["347 + 285", "1+1"]), ["347 + 285", "1+1"]);
        assert_eq!(lines(&["347", "285"]), ["347", "285"]);
        assert_eq!(lines(&["1", "+", "x", "+", "2"]), ["1", "+", "x", "+", "2"]);
        assert_eq!(lines(&["1+1", "+", "2"]), ["1+1", "+", "2"]);
        // A blank argument is a line of its own, refused like a blank input line.
        assert_eq!(lines(&["", "1 + 2"]), ["", "1 + 2"]);
        assert_eq!(lines(&["1", " ", "+ 2"]), ["1", " ", "+ 2"]);
    }

    fn read_all(bytes: &[u8]) -> Vec<Line> {
        Lines::new(bytes).map(Result::unwrap).collect()
    }

    fn text(s: &str) -> Line {
        Line::Text(s.to_string())
    }

    #[test]
    fn every_line_is_one_item_whatever_its_bytes() {
        let lines = read_all(b"1 + 2\ncaf\xe9 + 1\n\n3 + 4\r\n\xef\xbb\xbf5 + 6\n7 + 8");
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], text("1 + 2"));
        assert_eq!(
            lines[1],
            Line::Refused {
                shown: "caf\u{fffd} + 1".into(),
                reason: "not valid UTF-8 (byte 0xe9 at byte 4): save the input as UTF-8".into(),
            }
        );
        assert_eq!(lines[2], text(""));
        assert_eq!(lines[3], text("3 + 4"));
        assert_eq!(lines[4], text("\u{feff}5 + 6"));
        assert!(refuse_text("\u{feff}5 + 6")
            .unwrap()
            .contains("byte-order mark"));
        assert_eq!(lines[5], text("7 + 8"));
        assert!(read_all(b"").is_empty());
        assert_eq!(read_all(b"\n"), [text("")]);
    }

    #[test]
    fn a_huge_line_is_refused_in_bounded_memory() {
        use std::io::Read;
        // 100 MB without a newline, generated as it is read: never held anywhere.
        let huge = std::io::repeat(b'7').take(100_000_000);
        let input = b"1 + 2\n".chain(huge).chain(&b"\n3 + 4\n"[..]);
        let mut lines = Lines::new(std::io::BufReader::new(input));
        assert_eq!(lines.next().unwrap().unwrap(), text("1 + 2"));
        match lines.next().unwrap().unwrap() {
            Line::Refused { shown, reason } => {
                assert_eq!(shown, format!("{}…", "7".repeat(SHOWN_CHARS)));
                assert!(reason.contains("longer than 4096 bytes"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(lines.buf.capacity() <= 2 * MAX_LINE_BYTES + 64);
        assert_eq!(lines.next().unwrap().unwrap(), text("3 + 4"));
        assert!(lines.next().is_none());
        // Exactly the limit is still a line.
        let long = "1".repeat(MAX_LINE_BYTES);
        assert_eq!(read_all(long.as_bytes()), [text(&long)]);
        assert!(matches!(
            read_all(format!("{long}1").as_bytes())[0],
            Line::Refused { .. }
        ));
    }
}
