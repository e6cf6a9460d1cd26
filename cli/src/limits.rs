//! The limits of every count, size and number the command takes, in one place, and the parsers
//! that hold arguments to them (clap's `value_parser`): a value outside its range is refused while
//! the arguments are parsed, before any file is read, with the range in the message. Floats must be
//! finite (no `nan`, `inf`) and in their range too.

/// Problems of one evaluated or probed set (`eval --n`, `--n-ood`, `probe --n-fit`, `--n-test`).
pub const MAX_PROBLEMS: usize = 1_000_000;
/// Pairs measured by `intervene --measure`, problems by `--measure-flips`.
pub const MAX_MEASURED: usize = 100_000;
/// Problems per batch (`eval --batch-size`, `train --batch-size`).
pub const MAX_BATCH: usize = 65_536;
/// Training problems (`train --n-train`; the digit range may allow fewer).
pub const MAX_TRAIN_PROBLEMS: usize = 10_000_000;
/// The seed's training split (`train --init --train-problems`: the first N of it).
pub const SEED_TRAIN_PROBLEMS: usize = 100_000;
/// Validation problems per check (`train --val-problems`; at most the run's validation set).
pub const MAX_VAL_PROBLEMS: usize = 1_000_000;
/// Operand digits (`--max-digits`, `eval --longer`): sums must fit in 64 bits.
pub const MAX_DIGITS: usize = 18;
/// Thoughts per step (`--thoughts-per-step`) and the extra ones of `--max-extra-thoughts`.
pub const MAX_THOUGHTS_PER_STEP: usize = 16;
/// Coupled-id settings (`--max-position-offset`, `--max-column-gap`, `--max-answer-pad`).
pub const MAX_ID_SPREAD: usize = 1024;
/// Model shape flags (`--layers`, `--width`, `--heads`, `--n-positions`).
pub const MAX_LAYERS: usize = 64;
pub const MAX_WIDTH: usize = 4096;
pub const MAX_HEADS: usize = 64;
pub const MAX_POSITIONS: usize = 4096;
/// Steps (`--warmup-steps`, `--checkpoint-every`, `--val-every`).
pub const MAX_STEPS: usize = 1_000_000_000;
/// Epochs of one stage.
pub const MAX_EPOCHS: f64 = 10_000.0;
/// Seconds of `--time-budget` (about 30 years).
pub const MAX_SECONDS: f64 = 1e9;

/// A whole number in `MIN..=MAX`.
pub fn count<const MIN: usize, const MAX: usize>(text: &str) -> Result<usize, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{text}' is not a whole number (from {MIN} to {MAX})"
        ));
    }
    match text.parse::<usize>() {
        Ok(n) if (MIN..=MAX).contains(&n) => Ok(n),
        _ => Err(format!("{text} is outside {MIN}..={MAX}")),
    }
}

/// A [`count`] as u64 (step counts).
pub fn steps<const MIN: usize, const MAX: usize>(text: &str) -> Result<u64, String> {
    count::<MIN, MAX>(text).map(|n| n as u64)
}

/// A finite number in `lo..=hi` (`lo` itself excluded when `open_low`).
fn real(text: &str, lo: f64, hi: f64, open_low: bool) -> Result<f64, String> {
    let range = if open_low {
        format!("more than {lo} and at most {hi}")
    } else {
        format!("from {lo} to {hi}")
    };
    let x: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number ({range})"))?;
    let above = if open_low { x > lo } else { x >= lo };
    if x.is_finite() && above && x <= hi {
        Ok(x)
    } else {
        Err(format!("{text} is not {range}"))
    }
}

/// A learning rate: more than 0, at most 1.
pub fn rate(text: &str) -> Result<f64, String> {
    real(text, 0.0, 1.0, true)
}

/// A probability or weight decay: 0 to 1.
pub fn fraction(text: &str) -> Result<f64, String> {
    real(text, 0.0, 1.0, false)
}

/// A number below 1: more than 0 (`open_low`) or at least 0.
fn below_one(text: &str, open_low: bool) -> Result<f64, String> {
    let x = real(text, 0.0, 1.0, open_low)?;
    if x < 1.0 {
        Ok(x)
    } else {
        let low = if open_low { "more than" } else { "at least" };
        Err(format!("{text} is not {low} 0 and less than 1"))
    }
}

/// A moving average's decay: more than 0, less than 1 (1 would never move).
pub fn decay(text: &str) -> Result<f64, String> {
    below_one(text, true)
}

/// A dropout probability: at least 0, less than 1 (1 would drop everything).
pub fn dropout(text: &str) -> Result<f64, String> {
    below_one(text, false)
}

/// A percentage goal: more than 0, at most 100.
pub fn percent(text: &str) -> Result<f64, String> {
    real(text, 0.0, 100.0, true)
}

/// A percentage, or `off` (read as infinity: a stopping rule that is not there).
pub fn percent_or_off(text: &str) -> Result<f64, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(f64::INFINITY);
    }
    percent(text).map_err(|e| format!("{e}, or off"))
}

/// Seconds: 0 to [`MAX_SECONDS`].
pub fn seconds(text: &str) -> Result<f64, String> {
    real(text, 0.0, MAX_SECONDS, false)
}

/// A noise scale (a fraction of a thought's root mean square): 0 to 100.
pub fn noise(text: &str) -> Result<f64, String> {
    real(text, 0.0, 100.0, false)
}

/// Epochs of a stage: more than 0, at most [`MAX_EPOCHS`].
pub fn epochs(text: &str) -> Result<f64, String> {
    real(text, 0.0, MAX_EPOCHS, true)
}

/// The first name in `names` given twice (as `key` says it), if any.
pub fn first_repeat<T, K: PartialEq>(names: &[T], key: impl Fn(&T) -> K) -> Option<&T> {
    names
        .iter()
        .enumerate()
        .find(|(i, a)| names[..*i].iter().any(|b| key(b) == key(a)))
        .map(|(_, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_numbers_name_their_range() {
        assert_eq!(count::<1, 10>("10"), Ok(10));
        assert_eq!(count::<1, 10>("0").unwrap_err(), "0 is outside 1..=10");
        assert_eq!(
            count::<0, 10>("18446744073709551616").unwrap_err(),
            "18446744073709551616 is outside 0..=10"
        );
        for bad in ["", "-1", "+3", " 3", "3.0", "1e3", "٣"] {
            assert!(count::<0, 10>(bad)
                .unwrap_err()
                .contains("not a whole number"));
        }
        assert_eq!(rate("0.001"), Ok(0.001));
        for bad in ["nan", "NaN", "inf", "-inf", "0", "-1", "1.5", "1e999"] {
            let e = rate(bad).unwrap_err();
            assert!(e.contains("more than 0 and at most 1"), "{bad}: {e}");
        }
        assert_eq!(fraction("0"), Ok(0.0));
        assert!(fraction("-5").unwrap_err().contains("from 0 to 1"));
        assert!(seconds("nan").is_err() && seconds("-1").is_err());
        assert_eq!(seconds("0"), Ok(0.0));
    }

    #[test]
    fn a_repeat_is_found_by_its_key() {
        let names = ["stage0", "1", "0"];
        let stage = |s: &&str| s.trim_start_matches("stage").to_string();
        assert_eq!(first_repeat(&names, stage), Some(&"0"));
        assert_eq!(first_repeat(&names[..2], stage), None);
    }
}
