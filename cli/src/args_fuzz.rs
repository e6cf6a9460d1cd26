//! Fuzzing the argument parser of every command: argument vectors built from each subcommand's
//! own flags with hostile values (huge, negative, not finite, repeated names, stray bytes) must
//! parse into values within [`crate::limits`] or be refused by clap, never panic; a training
//! command that parses must also build its settings (or refuse them) without a panic.
//!
//! In CI it runs a few dozen cases; `scripts/fuzz.sh` runs it for as long as it is told, with
//! PROPTEST_CASES large.

use crate::args::{Cli, Command, TrainArgs};
use crate::limits::{
    MAX_BATCH, MAX_DIGITS, MAX_EPOCHS, MAX_HEADS, MAX_ID_SPREAD, MAX_LAYERS, MAX_MEASURED,
    MAX_POSITIONS, MAX_PROBLEMS, MAX_THOUGHTS_PER_STEP, MAX_TRAIN_PROBLEMS, MAX_VAL_PROBLEMS,
    MAX_WIDTH, SEED_TRAIN_PROBLEMS,
};
use clap::{CommandFactory, Parser};
use proptest::prelude::*;

/// PROPTEST_CASES when set (the fuzz script), a quick 48 otherwise.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Every subcommand with its long flags, each with whether it takes a value.
fn commands() -> Vec<(String, Vec<(String, bool)>)> {
    Cli::command()
        .get_subcommands()
        .map(|sub| {
            let flags = sub
                .get_arguments()
                .filter_map(|a| {
                    let long = a.get_long()?;
                    Some((format!("--{long}"), a.get_action().takes_values()))
                })
                .collect();
            (sub.get_name().to_string(), flags)
        })
        .collect()
}

/// A value a hostile user might give any flag.
fn hostile() -> impl Strategy<Value = String> {
    let fixed = [
        "",
        "0",
        "1",
        "2",
        "5",
        "-1",
        "-0",
        "+3",
        " 7",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1e999",
        "1e-400",
        "0.5",
        "1.5",
        "99.9",
        "100",
        "101",
        "4294967296",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999999",
        "stage0",
        "stage5",
        "stage9",
        "stage0,stage0",
        "0,0",
        "6,6",
        "5,6,8",
        "nocot",
        "pause",
        "=",
        "stage0=1,stage0=2",
        "stage1=nan",
        "stage1=-3",
        "stage1=1e308",
        "1=zero",
        "0=flip:0",
        "4=from:999+1",
        "99999999999999999999=zero",
        "\u{feff}1",
        "٣",
        "347 + 285",
        "/dev/null",
        "/dev/full",
        "/",
        "cuda:99",
        "cpu",
        "hf",
        "int8",
        "wgpu",
    ];
    prop_oneof![
        4 => proptest::sample::select(fixed.to_vec()).prop_map(String::from),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| f.to_string()),
        1 => "\\PC{0,12}",
    ]
}

/// Arguments a subcommand cannot parse without.
fn required(command: &str) -> &'static [&'static str] {
    match command {
        "eval" => &["--weights", "w", "--stage", "2"],
        "intervene" => &["--patch", "0=zero", "1 + 2"],
        "export" => &["--stage", "2"],
        "import" => &["--pt", "s.pt", "--stage", "stage0", "--out", "o"],
        _ => &[],
    }
}

/// An argument vector for one subcommand: its flags (with hostile values) and stray words.
fn argv() -> impl Strategy<Value = Vec<String>> {
    let commands = commands();
    (0..commands.len()).prop_flat_map(move |i| {
        let (name, flags) = commands[i].clone();
        let item = (0..flags.len().max(1), hostile(), any::<bool>());
        let items = proptest::collection::vec(item, 0..8);
        (items, any::<bool>()).prop_map(move |(items, with_required)| {
            let mut argv = vec!["coconut".to_string(), name.clone()];
            // Half the time what the command requires comes first, so that more vectors parse.
            if with_required {
                argv.extend(required(&name).iter().map(|a| a.to_string()));
            }
            for (f, value, stray) in items {
                match flags.get(f) {
                    Some((flag, takes)) if !stray => {
                        argv.push(flag.clone());
                        if *takes {
                            argv.push(value);
                        }
                    }
                    _ => argv.push(value),
                }
            }
            argv
        })
    })
}

fn unique<T: PartialEq>(items: &[T]) -> bool {
    items
        .iter()
        .enumerate()
        .all(|(i, a)| !items[..i].contains(a))
}

fn within(n: usize, min: usize, max: usize) -> bool {
    (min..=max).contains(&n)
}

fn train_within_limits(t: &TrainArgs) -> bool {
    let counts = [
        (t.thoughts_per_step, 1, MAX_THOUGHTS_PER_STEP),
        (t.max_position_offset, 0, MAX_ID_SPREAD),
        (t.n_positions, 1, MAX_POSITIONS),
        (t.max_column_gap, 0, MAX_ID_SPREAD),
        (t.max_extra_thoughts, 0, MAX_THOUGHTS_PER_STEP),
        (t.max_answer_pad, 0, MAX_ID_SPREAD),
        (t.operand_pad, 0, MAX_ID_SPREAD),
        (t.max_operand_pad, 0, MAX_ID_SPREAD),
        (t.batch_size, 1, MAX_BATCH),
        (t.n_train, 1, MAX_TRAIN_PROBLEMS),
        (t.max_digits, 1, MAX_DIGITS),
        (t.layers, 1, MAX_LAYERS),
        (t.width, 1, MAX_WIDTH),
        (t.heads, 1, MAX_HEADS),
        (t.val_problems, 0, MAX_VAL_PROBLEMS),
        (t.train_problems, 1, SEED_TRAIN_PROBLEMS),
        (t.micro_batch, 1, MAX_BATCH),
    ];
    let floats = [
        t.thought_noise,
        t.dropout,
        t.ema_decay,
        t.lr,
        t.weight_decay,
        t.time_budget,
        t.until_val,
        t.mix,
    ];
    // Each list with whether it may say `off` (parsed as infinity: no stopping rule).
    let settings = [
        (&t.stage_lr, false),
        (&t.stage_mix, false),
        (&t.stage_until_val, true),
        (&t.stage_repeat_nines, false),
        (&t.stage_seed, false),
        (&t.stage_max_operand_pad, false),
        (&t.stage_dropout, false),
        (&t.stage_thought_noise, false),
    ];
    counts
        .iter()
        .all(|(v, lo, hi)| v.is_none_or(|v| within(v, *lo, *hi)))
        && floats.iter().flatten().all(|x| x.is_finite() && *x >= 0.0)
        && t.epochs
            .iter()
            .flatten()
            .all(|e| e.is_finite() && *e > 0.0 && *e <= MAX_EPOCHS)
        && t.stages.as_deref().is_none_or(unique)
        && settings.iter().all(|(s, may_be_off)| {
            let stages: Vec<&String> = s.iter().flatten().map(|s| &s.stage).collect();
            unique(&stages)
                && s.iter().flatten().all(|s| {
                    let off = *may_be_off && s.value == f64::INFINITY;
                    off || (s.value.is_finite() && s.value >= 0.0)
                })
        })
        && t.stage_max_operand_pad
            .iter()
            .flatten()
            .all(|s| s.value <= MAX_ID_SPREAD as f64)
}

/// Whether every value parsed is within its limits (and no list names a thing twice).
fn within_limits(cli: &Cli) -> bool {
    match &cli.command {
        Command::Train(t) => train_within_limits(t),
        Command::Eval(e) => {
            within(e.n, 1, MAX_PROBLEMS)
                && within(e.n_ood, 0, MAX_PROBLEMS)
                && within(e.batch_size, 1, MAX_BATCH)
                && e.longer.iter().all(|&d| within(d, 1, MAX_DIGITS))
                && unique(&e.longer)
                && e.pairs.iter().all(|&d| within(d, 2, MAX_DIGITS))
                && unique(&e.pairs)
                && within(e.n_per_pair, 1, MAX_PROBLEMS)
        }
        Command::Probe(p) => {
            within(p.n_fit, 1, MAX_PROBLEMS)
                && within(p.n_test, 1, MAX_PROBLEMS)
                && unique(&p.stages)
        }
        Command::Intervene(i) => {
            let slots: Vec<usize> = i.patch.iter().map(|p| p.slot()).collect();
            [i.measure, i.measure_flips]
                .iter()
                .flatten()
                .all(|&n| within(n, 1, MAX_MEASURED))
                && unique(&slots)
        }
        Command::Import(i) => i.n_head.is_none_or(|n| within(n, 1, MAX_HEADS)),
        Command::Solve(_) | Command::Export(_) | Command::Plot(_) | Command::Golden(_) => true,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_command_parses_within_its_limits_or_is_refused(argv in argv()) {
        let Ok(cli) = Cli::try_parse_from(&argv) else { return Ok(()) };
        if cli.check().is_err() {
            return Ok(());
        }
        prop_assert!(within_limits(&cli), "{argv:?}");
        if let Command::Train(t) = &cli.command {
            // Settings from the flags alone (no file to read): built or refused, never a panic.
            if t.config.is_none() && t.branch_from.is_none() && !t.resume {
                if let Ok(c) = t.config() {
                    let _ = c.validate();
                }
                if t.init.is_some() {
                    let _ = crate::finetune::recipe(t);
                }
            }
        }
    }
}

#[test]
fn the_argument_vectors_reach_every_command_and_its_flags() {
    let commands = commands();
    assert_eq!(commands.len(), 9, "{commands:?}");
    let train = &commands.iter().find(|(n, _)| n == "train").unwrap().1;
    assert!(train.iter().any(|(f, takes)| f == "--stage-seed" && *takes));
    assert!(train.iter().any(|(f, takes)| f == "--resume" && !*takes));
}

#[test]
fn many_argument_vectors_parse_so_the_limits_are_exercised() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = argv();
    let mut parsed = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..2000 {
        let argv = strategy.new_tree(&mut runner).unwrap().current();
        if Cli::try_parse_from(&argv).is_ok_and(|c| c.check().is_ok()) {
            *parsed.entry(argv[1].clone()).or_default() += 1;
        }
    }
    // Every command parses some of its vectors (so within_limits is asked about each).
    assert_eq!(parsed.len(), 9, "{parsed:?}");
}
