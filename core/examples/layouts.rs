//! Shows how the curriculum lays out one problem: the written chain of thought, then what each
//! stage replaces by continuous thoughts, the loss targets, and the token ids.
//!
//! `cargo run -p coconut-core --example layouts -- "347 + 285"`

use coconut_core::layout::Layout;
use coconut_core::problem::{max_steps, Problem};
use coconut_core::stage::{Stage, StageKind};
use coconut_core::tokenizer::Tokenizer;

const MAX_DIGITS: usize = 4;

fn main() {
    let input = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let input = if input.trim().is_empty() {
        "347 + 285".to_string()
    } else {
        input
    };
    let problem = match Problem::parse(&input, MAX_DIGITS) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let tokenizer = Tokenizer::new();
    println!("problem: {problem} = {}", problem.answer());
    println!("chain of thought:");
    for (i, step) in problem.steps().iter().enumerate() {
        println!("  step {}: {step}", i + 1);
    }
    let base = Stage::latent(0, 1, max_steps(MAX_DIGITS));
    let mut stages = Stage::curriculum(1, max_steps(MAX_DIGITS));
    stages.extend([
        base.with_kind(StageKind::NoCot),
        base.with_kind(StageKind::Pause),
    ]);
    println!("\nlayouts (thoughts shown as [T]; targets of the loss underlined with ^):");
    for stage in &stages {
        let layout = Layout::new(&tokenizer, &problem, stage).expect("our own text encodes");
        let (mut line, mut marks) = (String::new(), String::new());
        for (t, &id) in layout.ids.iter().enumerate() {
            let token = if layout.thought_positions().contains(&t) {
                "[T]"
            } else {
                tokenizer.token(id).expect("ids come from the tokenizer")
            };
            let mark = if layout.loss_mask[t] { "^" } else { " " };
            line.push_str(token);
            line.push(' ');
            marks.push_str(&mark.repeat(token.len()));
            marks.push(' ');
        }
        let feedback = if stage.feeds_back() {
            "fed-back"
        } else {
            "fixed"
        };
        println!(
            "\n{} ({} {feedback} thoughts, {} tokens)",
            stage.id(),
            stage.thoughts(),
            layout.ids.len()
        );
        println!("  {line}\n  {marks}");
        println!("  ids: {:?}", layout.ids);
    }
}
