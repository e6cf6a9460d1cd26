//! Addition problems, their parser and their written, column-by-column chain of thought.
//!
//! `347 + 285` is solved from the least significant column up, one step per column, a missing digit
//! counting (and written) as 0:
//! `7+5=12 write 2 carry 1`, `4+8+1=13 write 3 carry 1`, `3+2+1=6 write 6`; answer 632.
//! A carry out of the last column adds the step `carry 1 write 1`.

use std::fmt;

/// One `a + b` problem with non-negative integer operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Problem {
    pub a: u64,
    pub b: u64,
}

/// One step of the written chain of thought.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// One column: `x+y(+1)=sum write digit( carry 1)`.
    Column {
        x: u8,
        y: u8,
        carry_in: bool,
        sum: u8,
        digit: u8,
        carry_out: bool,
    },
    /// The carry out of the most significant column: `carry 1 write 1`.
    FinalCarry,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Step::Column {
                x,
                y,
                carry_in,
                sum,
                digit,
                carry_out,
            } => {
                write!(f, "{x}+{y}")?;
                if carry_in {
                    f.write_str("+1")?;
                }
                write!(f, "={sum} write {digit}")?;
                if carry_out {
                    f.write_str(" carry 1")?;
                }
                Ok(())
            }
            Step::FinalCarry => f.write_str("carry 1 write 1"),
        }
    }
}

/// Number of decimal digits of `n` (0 has one digit).
pub fn digit_count(n: u64) -> usize {
    let mut n = n;
    let mut count = 1;
    while n >= 10 {
        n /= 10;
        count += 1;
    }
    count
}

/// The most digits an operand may have: the sum of two 18-digit numbers still fits a `u64`.
pub const MAX_DIGITS: usize = 18;

/// The largest number of steps a problem whose operands have at most `max_digits` digits can need:
/// one per column plus the final carry.
pub fn max_steps(max_digits: usize) -> usize {
    max_digits + 1
}

impl Problem {
    pub fn new(a: u64, b: u64) -> Self {
        Problem { a, b }
    }

    pub fn answer(&self) -> u64 {
        self.a + self.b
    }

    /// Number of columns, i.e. the digit count of the longer operand.
    pub fn columns(&self) -> usize {
        digit_count(self.a).max(digit_count(self.b))
    }

    /// The digit counts of the operands, in the order written: the problem's length pair.
    pub fn digit_counts(&self) -> (usize, usize) {
        (digit_count(self.a), digit_count(self.b))
    }

    /// The longest run of consecutive columns that carry out (0 when nothing carries; the
    /// column count when a carry runs through every column, as in `999 + 1`). Long chains are
    /// where a model that tracks the carry column by column is most likely to lose it.
    pub fn carry_chain(&self) -> usize {
        let (mut longest, mut run) = (0, 0);
        for step in self.steps() {
            match step {
                Step::Column {
                    carry_out: true, ..
                } => {
                    run += 1;
                    longest = longest.max(run);
                }
                _ => run = 0,
            }
        }
        longest
    }

    /// Columns whose two digits sum to 9 (a missing digit counts as 0): where only the carry
    /// coming in decides between writing 9 and carrying on.
    pub fn nine_columns(&self) -> usize {
        self.steps()
            .iter()
            .filter(|s| matches!(s, Step::Column { x, y, .. } if x + y == 9))
            .count()
    }

    /// The chain of thought, least significant column first.
    pub fn steps(&self) -> Vec<Step> {
        self.steps_through(self.columns())
    }

    /// The chain of thought over `columns` columns (at least [`Problem::columns`]): the columns
    /// above the longer operand add two zeros and the carry, so the final carry is written as
    /// such a column's (`0+0+1=1 write 1`) instead of a step of its own.
    pub fn steps_through(&self, columns: usize) -> Vec<Step> {
        let columns = columns.max(self.columns());
        let mut steps = Vec::with_capacity(columns + 1);
        let (mut a, mut b) = (self.a, self.b);
        let mut carry = false;
        for _ in 0..columns {
            let (x, y) = ((a % 10) as u8, (b % 10) as u8);
            a /= 10;
            b /= 10;
            let sum = x + y + carry as u8;
            steps.push(Step::Column {
                x,
                y,
                carry_in: carry,
                sum,
                digit: sum % 10,
                carry_out: sum >= 10,
            });
            carry = sum >= 10;
        }
        if carry {
            steps.push(Step::FinalCarry);
        }
        steps
    }

    /// The question as written before `<bot>`: `347 + 285 =`.
    pub fn question(&self) -> String {
        format!("{} + {} =", self.a, self.b)
    }

    /// The question with both operands written with `columns` digits (at least
    /// [`Problem::columns`]), leading zeros filling them: `00347 + 00085 =` for 5.
    pub fn padded_question(&self, columns: usize) -> String {
        let w = columns.max(self.columns());
        format!("{:0w$} + {:0w$} =", self.a, self.b)
    }

    /// The full training text of stage 0 (everything written out):
    /// `347 + 285 = <bot> 7+5=12 write 2 carry 1 <sep> ... <eot> 632 <eos>`.
    pub fn full_text(&self) -> String {
        let steps: Vec<String> = self.steps().iter().map(Step::to_string).collect();
        format!(
            "{} <bot> {} <eot> {} <eos>",
            self.question(),
            steps.join(" <sep> "),
            self.answer()
        )
    }

    /// Parses `347+285`, `347 + 285` or `347 + 285 =` (surrounding white space allowed), refusing
    /// operands with more than `max_digits` digits.
    pub fn parse(input: &str, max_digits: usize) -> Result<Problem, ParseError> {
        let lexemes = lex(input)?;
        let mut numbers = Vec::new();
        let mut pluses = 0;
        let mut equals_seen = false;
        let mut prev_was_number = false;
        for lexeme in &lexemes {
            if equals_seen {
                return Err(ParseError::TextAfterEquals);
            }
            match lexeme {
                Lexeme::Number(digits) => {
                    if prev_was_number {
                        return Err(ParseError::SpaceInsideNumber);
                    }
                    numbers.push(digits.as_str());
                    prev_was_number = true;
                }
                Lexeme::Plus => {
                    if !prev_was_number {
                        return Err(if numbers.is_empty() {
                            ParseError::Sign('+')
                        } else {
                            ParseError::MissingOperand
                        });
                    }
                    pluses += 1;
                    prev_was_number = false;
                }
                Lexeme::Equals => {
                    equals_seen = true;
                    prev_was_number = false;
                }
            }
        }
        if pluses > 1 || numbers.len() > 2 {
            return Err(ParseError::TooManyOperands(numbers.len().max(pluses + 1)));
        }
        if pluses == 0 && numbers.len() < 2 {
            return Err(ParseError::MissingPlus);
        }
        if numbers.len() < 2 {
            return Err(ParseError::MissingOperand);
        }
        let mut values = [0u64; 2];
        for (i, digits) in numbers.iter().enumerate() {
            if digits.len() > max_digits {
                return Err(ParseError::TooManyDigits {
                    operand: digits.to_string(),
                    digits: digits.len(),
                    max: max_digits,
                });
            }
            if digits.len() > 1 && digits.starts_with('0') {
                return Err(ParseError::LeadingZero(digits.to_string()));
            }
            // At most 19 digits fit a u64; longer operands were refused above for any sane model.
            values[i] = digits.parse().map_err(|_| ParseError::TooManyDigits {
                operand: digits.to_string(),
                digits: digits.len(),
                max: max_digits,
            })?;
        }
        Ok(Problem::new(values[0], values[1]))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} + {}", self.a, self.b)
    }
}

/// Why an input is not a problem the model can be asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the problem is empty: type two numbers, like 347 + 285")]
    Empty,
    #[error("'{0}' is not allowed: only digits, '+' and an optional '=' at the end")]
    UnexpectedChar(char),
    #[error("letters are not allowed ('{0}'): type two numbers, like 347 + 285")]
    Letter(char),
    #[error("signs are not allowed ('{0}'): operands are non-negative whole numbers")]
    Sign(char),
    #[error("decimals are not allowed: operands are whole numbers")]
    Decimal,
    #[error("'{0}' is not an ASCII digit: use the digits 0-9")]
    NonAsciiDigit(char),
    #[error("a number must not contain spaces: write 1234, not 12 34")]
    SpaceInsideNumber,
    #[error("expected two numbers joined by '+', like 347 + 285")]
    MissingPlus,
    #[error("an operand is missing: expected two numbers joined by '+'")]
    MissingOperand,
    #[error("only two operands are allowed, found {0}")]
    TooManyOperands(usize),
    #[error("nothing may follow the '='")]
    TextAfterEquals,
    #[error(
        "{operand} has {digits} digits; operands of at most {max} digits are answered here (the \
         lengths the stage was trained on, or measured on with coupled position ids)"
    )]
    TooManyDigits {
        operand: String,
        digits: usize,
        max: usize,
    },
    #[error("{0} has a leading zero: write the number without it")]
    LeadingZero(String),
}

enum Lexeme {
    Number(String),
    Plus,
    Equals,
}

fn lex(input: &str) -> Result<Vec<Lexeme>, ParseError> {
    if input.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let chars: Vec<char> = input.chars().collect();
    let mut lexemes = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '0'..='9' => {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                if i < chars.len()
                    && (chars[i] == '.' || chars[i] == ',')
                    && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())
                {
                    return Err(ParseError::Decimal);
                }
                lexemes.push(Lexeme::Number(chars[start..i].iter().collect()));
            }
            '+' => {
                lexemes.push(Lexeme::Plus);
                i += 1;
            }
            '=' => {
                lexemes.push(Lexeme::Equals);
                i += 1;
            }
            '-' | '\u{2212}' | '\u{00b1}' => return Err(ParseError::Sign(c)),
            '.' | ',' => return Err(ParseError::Decimal),
            c if c.is_numeric() => return Err(ParseError::NonAsciiDigit(c)),
            c if c.is_alphabetic() => return Err(ParseError::Letter(c)),
            c => return Err(ParseError::UnexpectedChar(c)),
        }
    }
    Ok(lexemes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps_text(p: Problem) -> Vec<String> {
        p.steps().iter().map(Step::to_string).collect()
    }

    #[test]
    fn worked_example_matches_the_design() {
        let p = Problem::new(347, 285);
        assert_eq!(
            steps_text(p),
            [
                "7+5=12 write 2 carry 1",
                "4+8+1=13 write 3 carry 1",
                "3+2+1=6 write 6"
            ]
        );
        assert_eq!(
            p.full_text(),
            "347 + 285 = <bot> 7+5=12 write 2 carry 1 <sep> 4+8+1=13 write 3 carry 1 <sep> \
             3+2+1=6 write 6 <eot> 632 <eos>"
        );
    }

    #[test]
    fn padded_columns_add_zeros_and_take_the_final_carry() {
        let p = Problem::new(999, 1);
        assert_eq!(p.padded_question(5), "00999 + 00001 =");
        // Never fewer digits than the longer operand has.
        assert_eq!(p.padded_question(1), "999 + 001 =");
        let text = |steps: Vec<Step>| steps.iter().map(Step::to_string).collect::<Vec<_>>();
        assert_eq!(text(p.steps_through(3)), steps_text(p));
        assert_eq!(text(p.steps_through(0)), steps_text(p));
        assert_eq!(
            text(p.steps_through(5)),
            [
                "9+1=10 write 0 carry 1",
                "9+0+1=10 write 0 carry 1",
                "9+0+1=10 write 0 carry 1",
                "0+0+1=1 write 1",
                "0+0=0 write 0"
            ]
        );
    }

    #[test]
    fn carry_chain_is_the_longest_run_of_carrying_columns() {
        for (a, b, chain) in [
            (0, 0, 0),
            (347, 285, 2),
            (999, 1, 3),
            (999_999, 999_999, 6),
            (5_050, 5_050, 1),
            (19_191, 1_919, 4),
            (123, 456, 0),
        ] {
            assert_eq!(Problem::new(a, b).carry_chain(), chain, "{a} + {b}");
        }
        assert_eq!(Problem::new(654_122, 299).digit_counts(), (6, 3));
        assert_eq!(Problem::new(6, 681_553).digit_counts(), (1, 6));
    }

    #[test]
    fn final_carry_adds_a_step() {
        assert_eq!(
            steps_text(Problem::new(999, 1)),
            [
                "9+1=10 write 0 carry 1",
                "9+0+1=10 write 0 carry 1",
                "9+0+1=10 write 0 carry 1",
                "carry 1 write 1"
            ]
        );
        assert_eq!(Problem::new(999, 1).answer(), 1000);
    }

    #[test]
    fn unequal_lengths_write_missing_digits_as_zero() {
        assert_eq!(
            steps_text(Problem::new(5, 1234)),
            [
                "5+4=9 write 9",
                "0+3=3 write 3",
                "0+2=2 write 2",
                "0+1=1 write 1"
            ]
        );
    }

    #[test]
    fn zeros() {
        assert_eq!(steps_text(Problem::new(0, 0)), ["0+0=0 write 0"]);
        assert_eq!(
            Problem::new(0, 0).full_text(),
            "0 + 0 = <bot> 0+0=0 write 0 <eot> 0 <eos>"
        );
        assert_eq!(
            steps_text(Problem::new(100, 0)),
            ["0+0=0 write 0", "0+0=0 write 0", "1+0=1 write 1"]
        );
    }

    #[test]
    fn parses_the_accepted_forms() {
        for s in [
            "347+285",
            "347 + 285",
            "347 + 285 =",
            "  347+ 285=  ",
            "347 +285 =",
        ] {
            assert_eq!(Problem::parse(s, 4), Ok(Problem::new(347, 285)), "{s:?}");
        }
        assert_eq!(Problem::parse("0+0", 4), Ok(Problem::new(0, 0)));
        assert_eq!(Problem::parse("9999+9999", 4), Ok(Problem::new(9999, 9999)));
    }

    #[test]
    fn nine_columns_are_those_where_only_the_carry_decides() {
        assert_eq!(Problem::new(3206, 2795).nine_columns(), 2); // 0+9, 2+7
        assert_eq!(Problem::new(1453, 8546).nine_columns(), 4);
        assert_eq!(Problem::new(9, 0).nine_columns(), 1);
        assert_eq!(Problem::new(9000, 9).nine_columns(), 2); // 9+0 and 0+9: a missing digit is 0
        assert_eq!(Problem::new(347, 285).nine_columns(), 0);
    }

    #[test]
    fn refuses_bad_input_with_a_specific_error() {
        use ParseError::*;
        let cases: &[(&str, ParseError)] = &[
            ("", Empty),
            ("   ", Empty),
            ("abc", Letter('a')),
            ("12 + x", Letter('x')),
            ("-3 + 4", Sign('-')),
            ("3 + -4", Sign('-')),
            ("+3 + 4", Sign('+')),
            ("1.5 + 2", Decimal),
            ("1,5 + 2", Decimal),
            ("٣ + 4", NonAsciiDigit('٣')),
            ("３ + 4", NonAsciiDigit('３')),
            ("1 + 2 + 3", TooManyOperands(3)),
            (
                "12345 + 1",
                TooManyDigits {
                    operand: "12345".into(),
                    digits: 5,
                    max: 4,
                },
            ),
            ("12 34 + 5", SpaceInsideNumber),
            ("1234", MissingPlus),
            ("12 +", MissingOperand),
            ("12 + + 3", MissingOperand),
            ("1 + 2 = 3", TextAfterEquals),
            ("1 * 2", UnexpectedChar('*')),
            ("007 + 1", LeadingZero("007".into())),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Problem::parse(input, 4).as_ref(),
                Err(expected),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn errors_read_as_sentences() {
        let e = Problem::parse("12345 + 1", 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "12345 has 5 digits; operands of at most 4 digits are answered here (the lengths the \
             stage was trained on, or measured on with coupled position ids)"
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_round_trips_display(a in 0u64..100_000, b in 0u64..100_000) {
            let p = Problem::new(a, b);
            proptest::prop_assert_eq!(Problem::parse(&p.to_string(), 5), Ok(p));
            proptest::prop_assert_eq!(Problem::parse(&format!("{a}+{b}="), 5), Ok(p));
        }

        #[test]
        fn written_digits_spell_the_answer(a in 0u64..1_000_000, b in 0u64..1_000_000) {
            let p = Problem::new(a, b);
            let mut answer = String::new();
            for step in p.steps() {
                let d = match step {
                    Step::Column { x, y, carry_in, sum, digit, .. } => {
                        proptest::prop_assert_eq!(sum, x + y + carry_in as u8);
                        digit
                    }
                    Step::FinalCarry => 1,
                };
                answer.insert(0, char::from(b'0' + d));
            }
            proptest::prop_assert_eq!(answer, p.answer().to_string());
            proptest::prop_assert!(p.steps().len() <= max_steps(p.columns()));
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,12}") {
            let _ = Problem::parse(&s, 4);
        }
    }
}
