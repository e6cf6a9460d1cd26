//! The hand-written tokenizer of the browser build ([`coconut_core::plain_tokenizer`]) against
//! the `tokenizers` pipeline: the same ids, or a refusal from both, on every text the project
//! writes, every layout decoded, malformed text and random mixtures.
#![cfg(feature = "hf-tokenizer")]

use coconut_core::plain_tokenizer::{check_json, encode};
use coconut_core::problem::Problem;
use coconut_core::tokenizer::Tokenizer;
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
    for token in coconut_core::tokenizer::VOCAB {
        agree(token);
    }
}

#[test]
fn agrees_on_every_layout_decoded() {
    use coconut_core::stage::Positions;
    use coconut_core::stage::{Stage, StageKind};
    let tokenizer = Tokenizer::new();
    let written = Stage::latent(0, 1, 5);
    let mut stages: Vec<Stage> = (0..=5).map(|k| Stage::latent(k, 1, 5)).collect();
    stages.extend([
        Stage::latent(3, 2, 5),
        written.with_kind(StageKind::Pause),
        written.with_kind(StageKind::NoCot),
        Stage::latent(2, 2, 5).with_positions(Positions::COUPLED),
    ]);
    for stage in &stages {
        for problem in [
            Problem::new(347, 285),
            Problem::new(9999, 1),
            Problem::new(0, 7),
        ] {
            let layout = coconut_core::layout::Layout::new(&tokenizer, &problem, stage).unwrap();
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
            proptest::sample::select(coconut_core::tokenizer::VOCAB.to_vec()).prop_map(String::from),
            proptest::sample::select(vec![" ", "  ", "\t", "\n", "<", ">", "x", "é", "٣", "—", "!", "\u{a0}"])
                .prop_map(String::from),
            any::<char>().prop_map(String::from),
        ],
        0..12,
    )) {
        agree(&pieces.concat());
    }
}
