//! What the two number fields accept, with a message per kind of mistake that a visitor can act on
//! (the message appears next to the field).

/// Parses one operand field: digits only, no sign, no leading zero, at most `accepted` digits:
/// the `trained` range, or more for a stage whose figures measured longer operands.
pub fn parse_operand(text: &str, trained: usize, accepted: usize) -> Result<u64, String> {
    let max_digits = accepted.max(trained);
    let range = range_text(max_digits);
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("Enter a number from {range}."));
    }
    if t.starts_with('-') {
        return Err(format!(
            "Negative numbers are not part of the task: enter a number from {range}."
        ));
    }
    if let Some(bad) = t.chars().find(|c| !c.is_ascii_digit()) {
        return Err(format!(
            "Only the digits 0-9 are allowed ('{bad}' is not one): enter a number from {range}."
        ));
    }
    if t.len() > max_digits && max_digits == trained {
        return Err(format!(
            "{t} has {} digits; the model was trained on numbers from {range} \
             (1 to {max_digits} digits), so larger ones are outside what it learned.",
            t.len()
        ));
    }
    if t.len() > max_digits {
        return Err(format!(
            "{t} has {} digits; this stage was trained on 1 to {trained} digits and measured on \
             up to {max_digits}, so longer numbers were never checked: enter a number from {range}.",
            t.len()
        ));
    }
    if t.len() > 1 && t.starts_with('0') {
        let stripped = t.trim_start_matches('0');
        let shown = if stripped.is_empty() { "0" } else { stripped };
        return Err(format!("Write {t} without leading zeros ({shown})."));
    }
    t.parse()
        .map_err(|_| format!("Enter a number from {range}."))
}

/// "0 to 9999" for four digits.
pub fn range_text(max_digits: usize) -> String {
    let max = 10u64.saturating_pow(max_digits.min(19) as u32) - 1;
    format!("0 to {max}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_numbers_in_the_trained_range() {
        assert_eq!(parse_operand("347", 4, 4), Ok(347));
        assert_eq!(parse_operand(" 0 ", 4, 4), Ok(0));
        assert_eq!(parse_operand("9999", 4, 4), Ok(9999));
    }

    #[test]
    fn a_stage_measured_on_longer_operands_accepts_them_and_no_more() {
        assert_eq!(parse_operand("12345678", 4, 8), Ok(12_345_678));
        let refused = parse_operand("123456789", 4, 8).unwrap_err();
        assert!(refused.contains("9 digits"), "{refused}");
        assert!(
            refused.contains("1 to 4 digits and measured on up to 8"),
            "{refused}"
        );
        assert!(refused.contains("0 to 99999999"), "{refused}");
    }

    #[test]
    fn refuses_each_kind_of_mistake_with_its_own_message() {
        let message = |t: &str| parse_operand(t, 4, 4).unwrap_err();
        assert!(message("").starts_with("Enter a number from 0 to 9999"));
        assert!(message("-5").starts_with("Negative numbers"));
        assert!(message("12a").contains("'a' is not one"));
        assert!(message("1.5").contains("'.' is not one"));
        assert!(message("12345").contains("5 digits"));
        assert!(message("12345").contains("0 to 9999"));
        assert_eq!(message("007"), "Write 007 without leading zeros (7).");
        assert_eq!(message("00"), "Write 00 without leading zeros (0).");
    }
}
