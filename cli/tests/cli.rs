//! The `coconut` binary: a training run killed with SIGKILL resumes to the same weights as an
//! uninterrupted run, and `eval` prints a table and writes JSON; `solve` answers every stdin line
//! once, a second writer of a run is refused, run.json follows each start, `export` checks its
//! eval file's stage, and errors (a full disk included) name their file.

use candle_core::Device;
use coconut_core::data::DataConfig;
use coconut_core::ModelConfig;
use coconut_trainer::train::{train, RunDir, Silent, TrainOptions};
use coconut_trainer::{StagePlan, TrainConfig};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[path = "../../trainer/tests/common/mod.rs"]
mod common;
use common::weight_bits;

fn config() -> TrainConfig {
    TrainConfig {
        model: ModelConfig {
            n_positions: 64,
            n_layer: 1,
            ..ModelConfig::tiny()
        },
        data: DataConfig {
            n_train: 800,
            n_val: 100,
            n_test: 200,
            n_ood: 20,
            max_digits: 2,
            ood_digits: 3,
            ..DataConfig::default()
        },
        stages: vec![StagePlan::new("stage0", 4.0), StagePlan::new("stage1", 2.0)],
        batch_size: 16,
        warmup_steps: 5,
        checkpoint_every: 10,
        val_problems: 0,
        ..TrainConfig::default()
    }
}

fn coconut(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coconut"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The small weights folder the tests share.
fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-weights")
}

/// Waits for `child` and returns its status with its peak resident memory in KiB, where this
/// platform reports it (Linux: the child's own `VmHWM`, read every few milliseconds until it
/// exits). Not `wait4`'s `ru_maxrss`: a spawned child keeps the high-water mark of the test
/// process it was forked from (kept across exec), which grows with the tests running beside it.
fn wait_with_peak_memory(mut child: Child) -> (ExitStatus, Option<u64>) {
    let status_file = format!("/proc/{}/status", child.id());
    let hwm = || -> Option<u64> {
        let text = std::fs::read_to_string(&status_file).ok()?;
        let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let mut peak = None;
    loop {
        // Read before asking whether it exited: a reading is taken while the child is alive.
        let reading = hwm();
        peak = peak.max(reading);
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn solve_answers_every_stdin_line_and_refuses_the_bad_ones() {
    let mut child = coconut(&[
        "solve",
        "--weights",
        path(&fixture()),
        "--stage",
        "0",
        "--json",
    ])
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    // Good lines around a Latin-1 byte, a blank line, a byte-order mark and a 100 MB line,
    // streamed from here so that only `coconut` could hold the long line whole.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        stdin.write_all(b"1 + 2\ncaf\xe9 + 1\n\n\xef\xbb\xbf3 + 4\n12 + 7\n")?;
        let chunk = vec![b'7'; 1 << 20];
        for _ in 0..100 {
            stdin.write_all(&chunk)?;
        }
        stdin.write_all(b"\n5 + 6\n")
    });
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });
    let (status, peak_kib) = wait_with_peak_memory(child);
    writer.join().unwrap().unwrap();
    let text = reader.join().unwrap().unwrap();
    let stderr = errors.join().unwrap().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "refused lines give exit 1: {stderr}"
    );
    let objects: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let inputs: Vec<&str> = objects
        .iter()
        .map(|o| o["input"].as_str().unwrap())
        .collect();
    let long_shown = format!("{}…", "7".repeat(64));
    assert_eq!(
        inputs,
        [
            "1 + 2",
            "caf\u{fffd} + 1",
            "",
            "\u{feff}3 + 4",
            "12 + 7",
            long_shown.as_str(),
            "5 + 6"
        ],
        "one object per input line, in order"
    );
    let answered: Vec<bool> = objects.iter().map(|o| o.get("error").is_none()).collect();
    assert_eq!(answered, [true, false, false, false, true, false, true]);
    assert!(error_has(&objects[1], "UTF-8"));
    assert!(error_has(&objects[2], "empty"));
    assert!(error_has(&objects[3], "byte-order mark"));
    assert!(error_has(&objects[5], "longer than 4096 bytes"));
    assert_eq!(objects[6]["stage"], "stage0");
    if let Some(kib) = peak_kib {
        assert!(
            kib < 64 * 1024,
            "solve peaked at {kib} KiB reading a 100 MB line"
        );
    }
}

#[test]
fn train_survives_kill_9_and_eval_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg_path = tmp.path().join("config.json");
    std::fs::write(&cfg_path, serde_json::to_string(&config()).unwrap()).unwrap();
    let killed = tmp.path().join("killed");
    let run = RunDir(killed.clone());

    // Start the binary and kill it (SIGKILL) once it has written a mid-stage checkpoint.
    let mut child = coconut(&[
        "train",
        "--config",
        path(&cfg_path),
        "--run-dir",
        path(&killed),
    ])
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !run.checkpoint().exists() {
        assert!(
            Instant::now() < deadline,
            "no checkpoint within two minutes"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before a checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        still_running,
        "the run finished before it could be killed: make it longer"
    );

    let resumed = coconut(&["train", "--resume", "--run-dir", path(&killed)])
        .output()
        .unwrap();
    assert_success(&resumed);

    // The same settings, never interrupted, through the library.
    let whole = tmp.path().join("whole");
    train(
        &config(),
        &whole,
        &Device::Cpu,
        &TrainOptions::default(),
        &mut Silent,
    )
    .unwrap();
    for stage in ["stage0", "stage1"] {
        assert!(
            weight_bits(&killed, stage) == weight_bits(&whole, stage),
            "{stage}: weights differ after kill -9 and resume"
        );
    }
    let metrics = std::fs::read_to_string(run.metrics()).unwrap();
    assert!(metrics.lines().any(|l| l.contains("\"event\":\"resume\"")));

    // eval: a table on stdout, the numbers in JSON.
    let json = tmp.path().join("eval.json");
    let eval = |more: &[&str]| {
        let mut args = vec!["eval", "--run-dir", path(&killed), "--stage", "1"];
        args.extend(more);
        coconut(&args)
    };
    let out = eval(&["--n", "50", "--n-ood", "10", "--json", path(&json)])
        .output()
        .unwrap();
    assert_success(&out);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("greedy%") && table.contains("ood"),
        "{table}"
    );
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(value["stage"], "stage1");
    assert_eq!(value["sets"][0]["n"], 50);
    assert_eq!(value["sets"][1]["n"], 10);
    let by_digits = value["sets"][0]["by_digits"].as_array().unwrap();
    assert_eq!(
        by_digits
            .iter()
            .map(|d| d["n"].as_u64().unwrap())
            .sum::<u64>(),
        50
    );

    // Without --json nothing is written: not even into the working directory.
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let out = eval(&["--n", "20"]).current_dir(&cwd).output().unwrap();
    assert_success(&out);
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "eval wrote a file"
    );
}

/// A run of a few steps per stage: 64 problems in batches of 16, one epoch each.
fn quick_config() -> TrainConfig {
    let mut c = config();
    c.data.n_train = 64;
    c.data.n_val = 20;
    c.data.n_test = 20;
    c.data.n_ood = 0;
    for plan in &mut c.stages {
        plan.epochs = 1.0;
    }
    c
}

fn write_config(dir: &Path, config: &TrainConfig) -> PathBuf {
    let path = dir.join("settings.json");
    std::fs::write(&path, serde_json::to_string(config).unwrap()).unwrap();
    path
}

/// `coconut <command> --weights <the fixture> <args>`, run to its end.
fn on_fixture(command: &str, args: &[&str]) -> std::process::Output {
    let weights = fixture();
    let mut all = vec![command, "--weights", path(&weights)];
    all.extend(args);
    coconut(&all).output().unwrap()
}

/// Whether a `solve --json` object is an error that mentions `part`.
fn error_has(object: &serde_json::Value, part: &str) -> bool {
    object["error"].as_str().is_some_and(|e| e.contains(part))
}

fn assert_success(out: &std::process::Output) {
    assert!(out.status.success(), "{}", stderr_of(out));
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_second_writer_is_refused_naming_the_holder() {
    use coconut_trainer::run_lock::RunLock;
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        RunDir(run.clone()).config(),
        serde_json::to_string(&quick_config()).unwrap(),
    )
    .unwrap();
    let settings = write_config(tmp.path(), &quick_config());
    // This test process plays the first writer: it holds the run's lock like a running `train`.
    let first = RunLock::acquire(&run).unwrap();
    let holder = format!("is in use by process {} (", std::process::id());
    for args in [
        vec!["train", "--resume", "--run-dir", path(&run)],
        vec![
            "train",
            "--config",
            path(&settings),
            "--run-dir",
            path(&run),
        ],
    ] {
        let out = coconut(&args).output().unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&holder), "{stderr}");
        assert!(stderr.contains(path(first.path())), "{stderr}");
    }
    assert!(
        !RunDir(run.clone()).metrics().exists(),
        "a refused writer wrote"
    );
    assert!(!run.join("run.json").exists(), "a refused writer wrote");
    // Once the first writer is gone (its lock goes with it), the run can go on.
    drop(first);
    let out = coconut(&["train", "--resume", "--run-dir", path(&run)])
        .output()
        .unwrap();
    assert_success(&out);
    let metrics = std::fs::read_to_string(RunDir(run).metrics()).unwrap();
    assert_eq!(metrics.matches("\"event\":\"resume\"").count(), 1);
}

#[test]
fn provenance_follows_each_start_and_export_checks_the_eval_stage() {
    use coconut_trainer::provenance::RunInfo;
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let settings = write_config(tmp.path(), &quick_config());
    // Run outside any git work tree: the commit recorded must be the build's anyway.
    let in_tmp = |args: &[&str]| {
        let out = coconut(args).current_dir(tmp.path()).output().unwrap();
        (out.status.code(), stderr_of(&out))
    };
    let train_args = [
        "train",
        "--config",
        path(&settings),
        "--run-dir",
        path(&run),
    ];

    // Refused settings leave nothing behind: no run.json, no directory.
    for extra in [["--stages", "9"], ["--n-train", "100000000"]] {
        let (code, stderr) = in_tmp(&[&train_args[..], &extra[..]].concat());
        assert_eq!(code, Some(2), "{stderr}");
        assert!(!run.exists(), "{extra:?} left {}", run.display());
    }

    // An attempt that died before its first checkpoint, with other settings.
    let dead = TrainConfig {
        batch_size: 8,
        ..quick_config()
    };
    let options = TrainOptions {
        stop_at_step: Some(1),
        run_info: Some(RunInfo {
            command: "coconut train --batch-size 8".into(),
            ..RunInfo::default()
        }),
        ..TrainOptions::default()
    };
    train(&dead, &run, &Device::Cpu, &options, &mut Silent).unwrap();
    assert!(RunDir(run.clone()).metrics().exists() && !RunDir(run.clone()).checkpoint().exists());

    // A new start replaces its provenance and its metrics; a zero budget stops after one step.
    let (code, stderr) = in_tmp(
        &[
            &train_args[..],
            &["--batch-size", "32", "--time-budget", "0"],
        ]
        .concat(),
    );
    assert_eq!(code, Some(0), "{stderr}");
    let info = RunInfo::load(&run).unwrap().unwrap();
    assert!(info.command.contains("--batch-size 32"), "{info:?}");
    assert_eq!(info.git_commit, coconut_trainer::provenance::GIT_COMMIT);
    assert!(info.resumes.is_empty());
    let metrics = std::fs::read_to_string(RunDir(run.clone()).metrics()).unwrap();
    assert_eq!(metrics.matches("\"event\"").count(), 2, "{metrics}"); // start, out_of_time
    assert!(metrics.starts_with("{\"event\":\"start\""), "{metrics}");

    // A resume adds itself.
    let (code, stderr) = in_tmp(&["train", "--resume", "--run-dir", path(&run)]);
    assert_eq!(code, Some(0), "{stderr}");
    let info = RunInfo::load(&run).unwrap().unwrap();
    assert!(info.command.contains("--batch-size 32"), "{info:?}");
    assert_eq!(info.resumes.len(), 1);
    assert!(info.resumes[0].command.contains("--resume"), "{info:?}");

    // export --eval refuses another stage's evaluation.
    let weights = tmp.path().join("weights");
    let eval = |stage: &str| {
        let file = tmp.path().join(format!("eval-{stage}.json"));
        std::fs::write(&file, format!(r#"{{"stage": "{stage}", "sets": []}}"#)).unwrap();
        file
    };
    let (eval5, eval0) = (eval("stage5"), eval("stage0"));
    let export = |eval: &Path| {
        in_tmp(&[
            "export",
            "--run-dir",
            path(&run),
            "--stage",
            "0",
            "--eval",
            path(eval),
            "--out",
            path(&weights),
        ])
    };
    let (code, stderr) = export(&eval5);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{} evaluates stage5, not stage0", eval5.display())),
        "{stderr}"
    );
    assert!(!weights.exists());
    let (code, stderr) = export(&eval0);
    assert_eq!(code, Some(0), "{stderr}");
    let manifest = coconut_core::manifest::WeightsDir::open(&weights)
        .unwrap()
        .manifest;
    let training = manifest.stages[0].training.as_ref().unwrap();
    assert!(training.command.contains("--batch-size 32"), "{training:?}");
    assert_eq!(training.git_commit, coconut_trainer::provenance::GIT_COMMIT);
}

#[test]
fn errors_name_their_file() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("config.json");
    std::fs::write(&broken, r#"{"lr": 0.001,"#).unwrap();
    let run = tmp.path().join("run");
    let out = coconut(&["train", "--config", path(&broken), "--run-dir", path(&run)])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(
        stderr.starts_with(&format!(
            "error: parsing {}: EOF while parsing",
            broken.display()
        )),
        "{stderr}"
    );
    // A run directory that is a file.
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let settings = write_config(tmp.path(), &quick_config());
    let out = coconut(&[
        "train",
        "--config",
        path(&settings),
        "--run-dir",
        path(&file),
    ])
    .output()
    .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains(&format!("creating {}", file.display())),
        "{stderr}"
    );
    // A missing input folder is named, not the default output that would have gone inside it.
    let missing = tmp.path().join("no-such-folder");
    for (args, names) in [
        (["plot", "--run-dir"], "metrics.jsonl"),
        (["golden", "--weights"], "manifest.json"),
    ] {
        let out = coconut(&[args[0], args[1], path(&missing)])
            .output()
            .unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&missing.join(names).display().to_string())
                && !stderr.contains("--out"),
            "{args:?}: {stderr}"
        );
    }
}

/// Limits the files `cmd` may write to `bytes`: past it a write fails (EFBIG), as on a full disk,
/// without needing root to mount a small file system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn with_file_size_limit(cmd: &mut Command, bytes: u64) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // A write past the limit then fails with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Files under `dir` whose name ends in `.tmp`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            found.extend(leftovers(&p));
        } else if p.extension().is_some_and(|e| e == "tmp") {
            found.push(p);
        }
    }
    found
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
/// Runs `cmd` with files limited to `limit` bytes; asserts it fails with exit code 2 naming
/// `written` (a file, or the folder of the file) and returns its stderr.
fn fails_writing(cmd: &mut Command, limit: u64, written: &Path) -> String {
    let out = with_file_size_limit(cmd, limit).output().unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("writing {}", written.display())),
        "{stderr}"
    );
    stderr
}

#[test]
fn a_full_disk_is_reported_with_the_files_name() {
    let tmp = tempfile::tempdir().unwrap();
    // plot: the picture does not fit.
    let run = tmp.path().join("plotted");
    std::fs::create_dir_all(&run).unwrap();
    let lines: String = (1..=50)
        .map(|i| {
            format!(
                "{{\"step\":{i},\"stage\":\"stage0\",\"loss\":{}}}\n",
                3.0 / i as f64
            )
        })
        .collect();
    std::fs::write(RunDir(run.clone()).metrics(), lines).unwrap();
    let svg = run.join("curve.svg");
    let plot = ["plot", "--run-dir", path(&run), "--out", path(&svg)];
    let stderr = fails_writing(&mut coconut(&plot), 2048, &svg);
    assert!(!stderr.contains("wrote"), "{stderr}");
    assert!(!svg.exists() && leftovers(&run).is_empty());
    // Without the limit the same command works: the limit is what failed it.
    let out = coconut(&plot).output().unwrap();
    assert_success(&out);
    assert!(std::fs::metadata(&svg).unwrap().len() > 2048);

    // train: the stage weights do not fit.
    let run = tmp.path().join("trained");
    let settings = write_config(tmp.path(), &quick_config());
    let args = [
        "train",
        "--config",
        path(&settings),
        "--run-dir",
        path(&run),
    ];
    let stderr = fails_writing(&mut coconut(&args), 8 << 10, &run);
    assert!(stderr.contains(".safetensors: File too large"), "{stderr}");
    assert_eq!(leftovers(&run), Vec::<PathBuf>::new());
}

#[test]
fn per_stage_flags_set_their_stage_and_refuse_bad_specs() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = write_config(tmp.path(), &quick_config());
    let run = tmp.path().join("run");
    let flags = [
        "--stage-lr",
        "stage1=0.002",
        "--stage-mix",
        "stage1=0.25",
        "--until-val",
        "99",
        "--stage-until-val",
        "stage1=99.5",
        "--stage-seed",
        "stage1=7",
        "--stage-dropout",
        "stage1=0.05",
        "--stage-thought-noise",
        "stage1=0.2",
        "--val-problems",
        "10",
        "--val-every",
        "5",
    ];
    let mut args = vec![
        "train",
        "--config",
        path(&settings),
        "--run-dir",
        path(&run),
    ];
    args.extend(flags);
    let out = coconut(&args).output().unwrap();
    assert_success(&out);
    let config = coconut_trainer::train::load_run_config(&run).unwrap();
    let plan = |id: &str| config.stages.iter().find(|p| p.stage == id).unwrap();
    assert_eq!((plan("stage0").lr, plan("stage1").lr), (None, Some(0.002)));
    assert_eq!((plan("stage0").mix, plan("stage1").mix), (None, Some(0.25)));
    assert_eq!(plan("stage0").until_val, Some(99.0));
    assert_eq!(plan("stage1").until_val, Some(99.5));
    assert_eq!((plan("stage0").seed, plan("stage1").seed), (None, Some(7)));
    assert_eq!(
        (plan("stage0").dropout, plan("stage1").dropout),
        (None, Some(0.05))
    );
    assert_eq!(
        (plan("stage0").thought_noise, plan("stage1").thought_noise),
        (None, Some(0.2))
    );
    // `off`: that stage has no stopping rule, whatever --until-val gives the others.
    let off = tmp.path().join("off");
    let out = coconut(&[
        "train",
        "--config",
        path(&settings),
        "--run-dir",
        path(&off),
        "--until-val",
        "99",
        "--stage-until-val",
        "stage0=off",
        "--val-problems",
        "10",
        "--val-every",
        "5",
    ])
    .output()
    .unwrap();
    assert_success(&out);
    let config = coconut_trainer::train::load_run_config(&off).unwrap();
    let until: Vec<Option<f64>> = config.stages.iter().map(|p| p.until_val).collect();
    assert_eq!(until, [None, Some(99.0)]);

    for (i, (flag, bad, says)) in [
        ("--stage-mix", "stage9=0.1", "is not a stage of this run"),
        ("--stage-mix", "stage1", "expected STAGE=VALUE"),
        ("--stage-mix", "stage1=fast", "is not a number"),
        ("--stage-seed", "stage1=1.5", "is not a whole number"),
        ("--stage-seed", "stage1=-3", "is not a whole number"),
        ("--stage-until-val", "stage1=101", ", or off"),
        ("--stage-dropout", "stage1=1", "less than 1"),
        ("--dropout", "1", "less than 1"),
        ("--dropout", "NaN", "is not"),
        // The flag reaches the stage's plan and the config's checks (the run's ids are absolute).
        (
            "--stage-max-operand-pad",
            "stage1=3",
            "stage1: max_operand_pad needs padded operands",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("refused-{i}"));
        let out = coconut(&[
            "train",
            "--config",
            path(&settings),
            "--run-dir",
            path(&dir),
            flag,
            bad,
        ])
        .output()
        .unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains(says), "{bad}: {stderr}");
    }
}

#[test]
fn export_writes_a_hugging_face_folder_from_a_weights_folder() {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../weights");
    let out = tempfile::tempdir().unwrap();
    // `coconut export --weights <shipped> --stage S --out DIR [more]`.
    let export = |stage: &str, dir: &str, more: &[&str]| {
        let dir = out.path().join(dir);
        let mut args = vec!["export", "--weights", path(&shipped), "--stage", stage];
        args.extend(["--out", path(&dir)]);
        args.extend(more);
        (coconut(&args).output().unwrap(), dir)
    };
    let (run, hf) = export("stage5", "hf", &["--format", "hf"]);
    assert_success(&run);
    // The folder holds the shipped int8 stage dequantized: the values every engine computes with.
    let folder = coconut_core::manifest::WeightsDir::open(&shipped).unwrap();
    let (_, _, stage5) = folder.stage("stage5").unwrap();
    let imported = coconut_trainer::export::import_hf(&hf).unwrap();
    assert_eq!(
        imported,
        stage5.convert(coconut_core::weights::WeightDtype::F32)
    );
    let coconut_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(hf.join("coconut.json")).unwrap()).unwrap();
    assert_eq!(coconut_json["stage"], "stage5");
    let thoughts = folder.manifest.stage("stage5").unwrap().thoughts;
    assert_eq!(coconut_json["thoughts"], thoughts);

    // Only a Hugging Face folder can come from a weights folder; an unknown stage is named.
    let (int8, dir) = export("stage5", "w", &[]);
    assert_eq!(int8.status.code(), Some(2));
    assert!(
        stderr_of(&int8).contains("--format hf"),
        "{}",
        stderr_of(&int8)
    );
    assert!(!dir.exists());
    let (missing, _) = export("stage9", "h9", &["--format", "hf"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr_of(&missing).contains("stage9"),
        "{}",
        stderr_of(&missing)
    );
}

#[test]
fn probe_scores_every_thought_and_writes_its_probes() {
    let tmp = tempfile::tempdir().unwrap();
    let (json, out) = (tmp.path().join("probes.json"), tmp.path().join("probes"));
    let run = on_fixture(
        "probe",
        &[
            "--stages",
            "2,stage5",
            "--n-fit",
            "300",
            "--n-test",
            "100",
            "--json",
            path(&json),
            "--out",
            path(&out),
        ],
    );
    assert_success(&run);
    let table = String::from_utf8(run.stdout).unwrap();
    // One row per stage, slot and quantity: 2 and 5 slots, 3 quantities.
    assert_eq!(table.lines().count(), 1 + (2 + 5) * 3, "{table}");
    let scores: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // Every slot against every one of the 4 columns.
    assert_eq!(scores.len(), (2 + 5) * 4 * 3);
    for s in &scores {
        for key in ["accuracy", "shuffled", "majority"] {
            let v = s[key].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&v), "{s}");
        }
        assert_eq!(
            (s["n_fit"].as_u64(), s["n_test"].as_u64()),
            (Some(300), Some(100))
        );
    }
    let bytes = std::fs::read(out.join("stage2.probes.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.len(), 2 * 4 * 3 * 2, "weight and bias of every probe");
    let carry = file.tensor("slot1.column0.carry.weight").unwrap();
    assert_eq!(carry.shape(), [2, 16]);
    // The carry probes are what `intervene` flips along.
    let probes = out.join("stage2.probes.safetensors");
    let flipped = on_fixture(
        "intervene",
        &[
            "--stage",
            "2",
            "--probes",
            path(&probes),
            "--patch",
            "1=flip:0",
            "--json",
            "12 + 34",
        ],
    );
    assert_success(&flipped);
    let object: serde_json::Value = serde_json::from_slice(&flipped.stdout).unwrap();
    assert_eq!(
        object["patches"][0],
        "thought 1 with column 0's carry flipped"
    );

    // Refused: a stage without fed-back thoughts, more problems than the sets hold.
    let refused = |args: &[&str]| {
        let out = on_fixture("probe", args);
        assert_eq!(out.status.code(), Some(2));
        stderr_of(&out)
    };
    assert!(
        refused(&["--stages", "nocot", "--n-fit", "10", "--n-test", "10"])
            .contains("nocot: not a stage with fed-back thoughts (those of")
    );
    let e = refused(&["--stages", "9"]);
    assert!(e.contains("stage9: no such stage in"), "{e}");
    assert!(
        e.contains("(it has stage0, stage2, stage5, nocot, pause)"),
        "{e}"
    );
    assert!(refused(&["--n-test", "999999"]).contains("at most"));
}

#[test]
fn shipped_probes_are_listed_in_the_manifest_and_read_by_intervene() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("weights");
    std::fs::create_dir(&weights).unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), weights.join(entry.file_name())).unwrap();
    }
    let w = path(&weights);
    let args = [
        "--stages", "2", "--n-fit", "300", "--n-test", "100", "--ship",
    ];
    assert_success(
        &coconut(&[&["probe", "--weights", w], &args[..]].concat())
            .output()
            .unwrap(),
    );
    let dir = coconut_core::manifest::WeightsDir::open(&weights).unwrap();
    let entry = dir.manifest.stage("stage2").unwrap();
    let listed = entry.probes.as_ref().expect("stage2 lists its probes");
    assert_eq!(listed.file, "stage2.probes.safetensors");
    let probes = dir.probes(entry).unwrap().unwrap();
    // Digit and carry of 4 columns at each of 2 thoughts; the input sums stay out.
    assert_eq!(probes.probes.len(), 2 * 4 * 2);
    assert_eq!(probes.scores.len(), probes.probes.len());
    assert!(
        dir.manifest.stage("stage5").unwrap().probes.is_none(),
        "only what was probed"
    );
    // intervene finds the carry probe without --probes.
    let flip = ["--stage", "2", "--patch", "1=flip:0", "--json", "12 + 34"];
    let run = coconut(&[&["intervene", "--weights", w], &flip[..]].concat())
        .output()
        .unwrap();
    assert_success(&run);
    // Carry flips measured along the shipped probes: one row per thought and column.
    let json = tmp.path().join("flips.json");
    let measure = ["--measure-flips", "5", "--measure-json", path(&json)];
    let run = coconut(&[&["intervene", "--weights", w], &measure[..]].concat())
        .output()
        .unwrap();
    assert_success(&run);
    let flips: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(flips.len(), 2 * 4, "stage2 only: 2 thoughts x 4 columns");
    for f in &flips {
        let (unchanged, moved) = (
            f["unchanged"].as_f64().unwrap(),
            f["as_the_carry_would"].as_f64().unwrap(),
        );
        assert!(unchanged + moved <= 100.0 + 1e-9, "{f}");
        assert_eq!(f["problems"], 5);
    }
    // A stage without shipped probes is named.
    let run = coconut(&[&["intervene", "--weights", w, "--stage", "5"], &measure[..]].concat())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(
        stderr_of(&run).contains("stage5: the weights folder ships no probes"),
        "{}",
        stderr_of(&run)
    );
    // A changed probes file is refused by its checksum, naming the file.
    let file = weights.join("stage2.probes.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let run = coconut(&[&["intervene", "--weights", w], &flip[..]].concat())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(
        stderr_of(&run).contains("stage2.probes.safetensors: sha256"),
        "{}",
        stderr_of(&run)
    );
}

#[test]
fn intervene_edits_thoughts_and_refuses_bad_patches() {
    let run = |args: &[&str]| on_fixture("intervene", &[&["--stage", "2"], args].concat());
    let object = |out: &std::process::Output| -> serde_json::Value {
        assert_success(out);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // A thought replaced by the same thought of the same problem changes nothing.
    let same = object(&run(&["--json", "--patch", "1=from:12+34", "12 + 34"]));
    assert_eq!(same["edited_text"], same["text"]);
    assert_eq!(same["edited_answer"], same["answer"]);
    assert_eq!(same["expected"], "46");
    // Zeroing is reported beside the run as trained.
    let zeroed = object(&run(&["--json", "--patch", "0=zero", "12 + 34"]));
    assert_eq!(zeroed["text"], same["text"]);
    assert_eq!(zeroed["patches"][0], "thought 0 zeroed");
    assert!(zeroed["edited_text"]
        .as_str()
        .unwrap()
        .starts_with("12 + 34 = <bot> <latent> <latent>"));

    // Refused: a thought the stage does not have, a flip without probes, a bad spec.
    let out = run(&["--patch", "2=zero", "12 + 34"]);
    assert_eq!(out.status.code(), Some(2), "refused before any problem");
    assert!(
        stderr_of(&out).contains("this stage has at most 2"),
        "{}",
        stderr_of(&out)
    );
    let out = run(&["--patch", "0=flip:1", "12 + 34"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--probes"), "{}", stderr_of(&out));
    let out = run(&["--patch", "0=swap", "12 + 34"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("expected J=zero"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn intervene_measures_patching_over_held_out_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("patching.json");
    let out = on_fixture(
        "intervene",
        &["--measure", "20", "--measure-json", path(&json)],
    );
    assert_success(&out);
    let effects: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // stage2 (2 thoughts) and stage5 (5); nocot and pause feed nothing back.
    let slots: Vec<(String, u64)> = effects
        .iter()
        .map(|e| {
            (
                e["stage"].as_str().unwrap().to_string(),
                e["slot"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(slots.len(), 7, "{slots:?}");
    assert_eq!(slots[0], ("stage2".to_string(), 0));
    for e in &effects {
        assert_eq!(e["pairs"], 20);
        let unchanged = e["unchanged"].as_f64().unwrap();
        let became_b = e["became_b"].as_f64().unwrap();
        assert!(unchanged + became_b <= 100.0 + 1e-9, "{e}");
        assert_eq!(
            e["column_took_b"].as_array().unwrap().len(),
            5,
            "4 digits and a carry"
        );
    }
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(table.lines().count(), 1 + 7, "{table}");

    let too_many = on_fixture("intervene", &["--measure", "99999"]);
    assert_eq!(too_many.status.code(), Some(2));
    assert!(
        stderr_of(&too_many).contains("at most"),
        "{}",
        stderr_of(&too_many)
    );
}

/// The shipped weights folder (coupled ids ahead, probes shipped).
fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../weights")
}

/// A copy of the fixture's weights folder in `dir`, to write into.
fn fixture_copy(dir: &Path) -> PathBuf {
    let weights = dir.join("weights");
    std::fs::create_dir_all(&weights).unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), weights.join(entry.file_name())).unwrap();
    }
    weights
}

/// Every file in `dir` with the sha256 of its bytes (the folder as a reader sees it).
fn folder_files(dir: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&p).unwrap_or_default();
            (name, coconut_core::manifest::sha256_hex(&bytes))
        })
        .collect()
}

/// The names beside `dir` in its parent (staging folders would show here).
fn siblings(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_count_and_setting_is_refused_outside_its_limits_while_parsing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let w = fixture();
    let w = path(&w);
    let r = path(&run);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "eval",
                "--weights",
                w,
                "--stage",
                "2",
                "--n-ood",
                "100000000",
            ],
            "100000000 is outside 0..=1000000",
        ),
        (
            vec![
                "eval",
                "--weights",
                w,
                "--stage",
                "2",
                "--n-ood",
                "18446744073709551615",
            ],
            "outside 0..=1000000",
        ),
        (
            vec!["eval", "--weights", w, "--stage", "2", "--n", "0"],
            "0 is outside 1..=1000000",
        ),
        (
            vec!["eval", "--weights", w, "--stage", "2", "--batch-size", "0"],
            "0 is outside 1..=65536",
        ),
        (
            vec!["eval", "--weights", w, "--stage", "2", "--longer", "6,6"],
            "--longer: 6 is given twice",
        ),
        (
            vec![
                "intervene",
                "--weights",
                w,
                "--measure",
                "9223372036854775808",
            ],
            "outside 1..=100000",
        ),
        (
            vec!["intervene", "--weights", w, "--measure", "0"],
            "0 is outside 1..=100000",
        ),
        (
            vec!["intervene", "--weights", w, "--measure-flips", "0"],
            "0 is outside 1..=100000",
        ),
        (
            vec![
                "intervene",
                "--weights",
                w,
                "--patch",
                "1=zero",
                "--patch",
                "1=from:999+1",
                "1 + 2",
            ],
            "--patch: thought 1 is edited twice (thought 1 zeroed; thought 1 from 999+1)",
        ),
        (
            vec!["probe", "--weights", w, "--n-fit", "0", "--ship"],
            "0 is outside 1..=1000000",
        ),
        (
            vec!["probe", "--weights", w, "--stages", "2,stage2"],
            "--stages: stage2 is given twice",
        ),
        (
            vec!["train", "--run-dir", r, "--time-budget", "nan"],
            "nan is not from 0 to 1000000000",
        ),
        (
            vec!["train", "--run-dir", r, "--time-budget", "-1"],
            "-1 is not from 0 to 1000000000",
        ),
        (
            vec!["train", "--run-dir", r, "--weight-decay", "-5"],
            "-5 is not from 0 to 1",
        ),
        (
            vec!["train", "--run-dir", r, "--lr", "inf"],
            "inf is not more than 0 and at most 1",
        ),
        (
            vec!["train", "--run-dir", r, "--ema-decay", "1"],
            "1 is not more than 0 and less than 1",
        ),
        (
            vec!["train", "--run-dir", r, "--ema-decay", "nan"],
            "nan is not more than 0 and at most 1",
        ),
        (
            vec!["train", "--run-dir", r, "--val-problems", "1000000000"],
            "outside 0..=1000000",
        ),
        (
            vec!["train", "--run-dir", r, "--val-confirm", "0"],
            "outside 1..=100",
        ),
        (
            vec!["train", "--run-dir", r, "--val-confirm", "101"],
            "outside 1..=100",
        ),
        (
            vec!["train", "--run-dir", r, "--epochs", "4,nan"],
            "nan is not more than 0 and at most 10000",
        ),
        (
            vec!["train", "--run-dir", r, "--stages", "stage0,0"],
            "--stages: stage0 is given twice",
        ),
        (
            vec!["train", "--run-dir", r, "--stage-seed", "stage0=1,stage0=2"],
            "--stage-seed: stage0 is given twice",
        ),
        (
            vec!["train", "--run-dir", r, "--stage-mix", "stage1=nan"],
            "'stage1=nan': nan is not from 0 to 1",
        ),
        (
            vec![
                "train",
                "--run-dir",
                r,
                "--max-position-offset",
                "18446744073709551615",
            ],
            "outside 0..=1024",
        ),
    ];
    for (args, says) in &cases {
        let out = coconut(args).output().unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(!run.exists(), "a refused train wrote its run directory");
    // Within the flag's range but more than this run's validation set holds: refused by name.
    let settings = write_config(tmp.path(), &quick_config());
    let out = coconut(&[
        "train",
        "--config",
        path(&settings),
        "--run-dir",
        r,
        "--val-problems",
        "21",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out)
            .contains("val_problems (21) is more than the validation set holds (n_val = 20)"),
        "{}",
        stderr_of(&out)
    );
    assert!(!run.exists());
}

#[test]
fn eval_reads_a_stage_with_its_folders_manifest_and_refuses_a_bare_file() {
    // The shipped stage 5 has coupled ids ahead: only its manifest entry says so.
    let weights = shipped();
    let out = coconut(&[
        "eval",
        "--weights",
        path(&weights),
        "--stage",
        "5",
        "--n",
        "100",
        "--n-ood",
        "0",
    ])
    .output()
    .unwrap();
    assert_success(&out);
    let table = String::from_utf8(out.stdout).unwrap();
    let all = table
        .lines()
        .find(|l| l.contains(" test ") && l.contains(" all "))
        .expect("a test row");
    let greedy: f64 = all.split_whitespace().nth(4).unwrap().parse().unwrap();
    assert!(greedy >= 95.0, "{table}");
    let file = weights.join("stage5.safetensors");
    let out = coconut(&[
        "eval",
        "--weights",
        path(&file),
        "--stage",
        "5",
        "--n",
        "100",
        "--n-ood",
        "0",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = stderr_of(&out);
    let says = format!(
        "{}: cannot read: a file, not a weights folder: give the folder that holds it ({})",
        file.display(),
        weights.display()
    );
    assert!(stderr.contains(&says), "{stderr}");
    // Settings that are not the manifest's are not taken.
    let out = coconut(&[
        "eval",
        "--weights",
        path(&weights),
        "--stage",
        "5",
        "--config",
        "/etc/passwd",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--config"), "{}", stderr_of(&out));
}

/// Runs `args` with stdout closed before it writes a byte: it must end quietly (exit 0), without
/// a panic.
fn closed_stdout_is_quiet(args: &[&str]) {
    let mut child = coconut(args).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = stderr_of(&out);
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
}

/// Runs `args` with stdout (or stderr) on /dev/full.
fn on_dev_full(args: &[&str], stderr_full: bool) -> std::process::Output {
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let mut cmd = coconut(args);
    if stderr_full {
        cmd.stderr(full());
    } else {
        cmd.stdout(full());
    }
    cmd.output().unwrap()
}

#[test]
fn a_closed_or_full_stdout_or_stderr_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let w = fixture();
    let w = path(&w);
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "intervene",
            "--weights",
            w,
            "--stage",
            "2",
            "--patch",
            "0=zero",
            "12 + 34",
        ],
        vec!["intervene", "--weights", w, "--measure", "2"],
        vec![
            "probe",
            "--weights",
            w,
            "--stages",
            "2",
            "--n-fit",
            "50",
            "--n-test",
            "20",
        ],
        vec![
            "eval",
            "--weights",
            w,
            "--stage",
            "2",
            "--n",
            "20",
            "--n-ood",
            "0",
        ],
        vec!["solve", "--weights", w, "--stage", "2", "12 + 34"],
    ];
    for args in &commands {
        closed_stdout_is_quiet(args);
        let out = on_dev_full(args, false);
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("writing to stdout: No space left on device"),
            "{args:?}: {stderr}"
        );
        // The results are on stdout: a full stderr loses the notes, not the work.
        let out = on_dev_full(args, true);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    // export, its notes on a full stderr: the folder is written all the same.
    let hf = tmp.path().join("hf");
    let out = on_dev_full(
        &[
            "export",
            "--weights",
            w,
            "--stage",
            "2",
            "--format",
            "hf",
            "--out",
            path(&hf),
        ],
        true,
    );
    assert_eq!(out.status.code(), Some(0));
    coconut_trainer::export::import_hf(&hf).unwrap();

    // 3,000 problems read by `head -1`: the rest is not written, and nobody panics.
    let problems: Vec<String> = (0..3000)
        .map(|i| format!("{} + {}", i % 100, i % 7))
        .collect();
    let mut args = vec![
        "intervene",
        "--weights",
        w,
        "--stage",
        "2",
        "--patch",
        "0=zero",
    ];
    args.extend(problems.iter().map(String::as_str));
    let mut child = coconut(&args).spawn().unwrap();
    let mut first = [0u8; 1];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stderr_of(&out).is_empty(), "{}", stderr_of(&out));
}

#[test]
fn intervene_gives_one_object_per_problem_and_checks_what_it_is_given() {
    let weights = shipped();
    let w = path(&weights);
    let out = coconut(&[
        "intervene",
        "--weights",
        w,
        "--stage",
        "5",
        "--patch",
        "0=zero",
        "--json",
        "347 + 285",
        "12 + x",
        "",
        "123456789 + 1",
        "99999 + 1",
    ])
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "refusals give exit 1: {}",
        stderr_of(&out)
    );
    let objects: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let inputs: Vec<&str> = objects
        .iter()
        .map(|o| o["input"].as_str().unwrap())
        .collect();
    assert_eq!(
        inputs,
        ["347 + 285", "12 + x", "", "123456789 + 1", "99999 + 1"]
    );
    assert_eq!(objects[0]["expected"], "632");
    assert!(error_has(&objects[1], "letters"), "{}", objects[1]);
    assert!(error_has(&objects[2], "empty"), "{}", objects[2]);
    // The digits `solve` takes on this stage (up to 8), in its words.
    assert!(error_has(&objects[3], "at most 8 digits"), "{}", objects[3]);
    assert_eq!(
        objects[4]["expected"], "100000",
        "5 digits are taken: {}",
        objects[4]
    );

    // A thought the problem lacks names the problem's count and the stage's most (a thought per
    // column, the padded ones included, and one for the carry column).
    let folder = coconut_core::manifest::WeightsDir::open(&weights).unwrap();
    let stage5 = folder
        .manifest
        .stage_of(folder.manifest.stage("stage5").unwrap());
    let (has, most) = (
        stage5.thoughts_of(&coconut_core::Problem::new(347, 285)),
        stage5.most_thoughts(8),
    );
    let out = coconut(&[
        "intervene",
        "--weights",
        w,
        "--stage",
        "5",
        "--patch",
        &format!("{has}=zero"),
        "--json",
        "347 + 285",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lacks = format!("thought {has} does not exist: 347 + 285 has {has} thoughts at stage5");
    assert!(error_has(&object, &lacks), "{object}");
    assert!(
        error_has(&object, &format!("up to {most} for 8-digit operands")),
        "{object}"
    );

    // Probes fitted on another stage are refused by name.
    let probes = weights.join("stage5.probes.safetensors");
    let out = coconut(&[
        "intervene",
        "--weights",
        w,
        "--stage",
        "1",
        "--probes",
        path(&probes),
        "--patch",
        "0=flip:0",
        "347 + 285",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("probes of stage5, not of stage1"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn output_paths_are_checked_before_the_work() {
    let tmp = tempfile::tempdir().unwrap();
    let w = fixture();
    let w = path(&w);
    let missing = tmp.path().join("no-such-folder").join("out.json");
    let folder = tmp.path().to_path_buf();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec![
                "eval",
                "--weights",
                w,
                "--stage",
                "2",
                "--json",
                path(&missing),
            ],
            format!(
                "--json {}: {} is not a folder",
                missing.display(),
                missing.parent().unwrap().display()
            ),
        ),
        (
            vec![
                "eval",
                "--weights",
                w,
                "--stage",
                "2",
                "--wrong",
                "/dev/null",
            ],
            "--wrong /dev/null: not a regular file".to_string(),
        ),
        (
            vec![
                "intervene",
                "--weights",
                w,
                "--measure",
                "20",
                "--measure-json",
                path(&folder),
            ],
            format!("--measure-json {}: not a regular file", folder.display()),
        ),
        (
            vec!["probe", "--weights", w, "--json", path(&missing)],
            format!("--json {}", missing.display()),
        ),
    ];
    for (args, says) in &cases {
        let out = coconut(args).output().unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says.as_str()), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: computed before refusing");
        assert!(
            !stderr.contains("probing") && !stderr.contains("patching"),
            "{stderr}"
        );
    }
    // A weights folder that cannot be written: refused before probing.
    let weights = fixture_copy(tmp.path());
    if let Some(_guard) = Unwritable::make(&weights) {
        let out = coconut(&[
            "probe",
            "--weights",
            path(&weights),
            "--stages",
            "2",
            "--ship",
        ])
        .output()
        .unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--ship") && stderr.contains("is not writable"),
            "{stderr}"
        );
        assert!(!stderr.contains("probing"), "{stderr}");
    }
}

/// A folder made unwritable for this process (read-only mode, or immutable for root), writable
/// again when dropped; None where neither works.
struct Unwritable(PathBuf, bool);

impl Unwritable {
    fn make(dir: &Path) -> Option<Unwritable> {
        use std::os::unix::fs::PermissionsExt;
        let writable = || {
            let probe = dir.join(".probe");
            let ok = std::fs::write(&probe, b"").is_ok();
            let _ = std::fs::remove_file(&probe);
            ok
        };
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        if !writable() {
            return Some(Unwritable(dir.to_path_buf(), false));
        }
        let immutable = Command::new("chattr").arg("+i").arg(dir).status();
        if immutable.is_ok_and(|s| s.success()) && !writable() {
            return Some(Unwritable(dir.to_path_buf(), true));
        }
        eprintln!(
            "cannot make {} unwritable here: that case is not tried",
            dir.display()
        );
        None
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.1 {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        }
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_full_disk_leaves_a_weights_folder_or_an_hf_folder_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = fixture_copy(tmp.path());
    let before = folder_files(&weights);
    let beside = siblings(&weights);
    // probe --ship: stage2's probes file fits (about 8 KB), stage5's (about 21 KB) does not.
    let ship = [
        "probe",
        "--weights",
        path(&weights),
        "--stages",
        "2,5",
        "--n-fit",
        "100",
        "--n-test",
        "50",
        "--ship",
    ];
    let stderr = fails_writing(&mut coconut(&ship), 12 << 10, &weights);
    assert!(stderr.contains("File too large"), "{stderr}");
    assert_eq!(folder_files(&weights), before, "the folder changed");
    assert_eq!(siblings(&weights), beside, "something was left beside it");
    assert_eq!(leftovers(&weights), Vec::<PathBuf>::new());
    // intervene still reads it; without the limit the same command ships.
    assert_success(
        &coconut(&[
            "intervene",
            "--weights",
            path(&weights),
            "--stage",
            "2",
            "--patch",
            "0=zero",
            "1 + 2",
        ])
        .output()
        .unwrap(),
    );
    assert_success(&coconut(&ship).output().unwrap());
    let shipped = folder_files(&weights);
    assert!(shipped.contains_key("stage5.probes.safetensors"));
    coconut_trainer::export::check_weights_folder(&weights).unwrap();

    // export --format hf over an earlier export: the old one stays whole.
    let hf = tmp.path().join("hf");
    let export = |stage: &str, more: &[&str]| {
        let mut args = vec![
            "export",
            "--weights",
            path(&weights),
            "--stage",
            stage,
            "--format",
            "hf",
            "--out",
            path(&hf),
        ];
        args.extend(more);
        coconut(&args)
    };
    assert_success(&export("2", &[]).output().unwrap());
    let hf_before = folder_files(&hf);
    let out = export("5", &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("is not empty: give --force"),
        "{}",
        stderr_of(&out)
    );
    fails_writing(&mut export("5", &["--force"]), 4096, &hf);
    assert_eq!(folder_files(&hf), hf_before);
    assert_eq!(coconut_trainer::export::import_hf(&hf).unwrap(), {
        let (_, _, w) = coconut_core::manifest::WeightsDir::open(&weights)
            .unwrap()
            .stage("stage2")
            .unwrap();
        w.convert(coconut_core::weights::WeightDtype::F32)
    });
    // Never over a weights folder, even with --force.
    let out = coconut(&[
        "export",
        "--weights",
        path(&weights),
        "--stage",
        "5",
        "--format",
        "hf",
        "--out",
        path(&weights),
        "--force",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("is a weights folder"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(folder_files(&weights), shipped);
}

/// `solve` tells beside each answer what the manifest measured for that problem's own
/// operand-length pair (a model may answer 6 + 3 digits far less often than 6 + 6: the previous
/// shipped all-latent stage did), in the JSON line and in the text.
#[test]
fn solve_gives_each_problem_its_own_length_pairs_figure() {
    let weights = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../weights");
    let dir = coconut_core::manifest::WeightsDir::open(&weights).unwrap();
    let entry = dir.manifest.stage("stage5").unwrap();
    let out = coconut(&[
        "solve",
        "--weights",
        path(&weights),
        "--json",
        "654122 + 299",
    ])
    .output()
    .unwrap();
    assert_success(&out);
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = entry
        .measured_for(&coconut_core::Problem::new(654_122, 299))
        .unwrap();
    let measured = &line["measured"];
    assert_eq!(
        (measured["a_digits"].as_u64(), measured["b_digits"].as_u64()),
        (Some(6), Some(3))
    );
    assert_eq!(measured["greedy"].as_f64(), Some(want.greedy));
    // The pair's own 200 problems, not the 1,000 of the equal-length 6-digit set.
    assert_eq!(
        (measured["set"].as_str(), measured["n"].as_u64()),
        (Some("pairs"), Some(200))
    );
    let text = coconut(&["solve", "--weights", path(&weights), "299 + 654122"])
        .output()
        .unwrap();
    assert_success(&text);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("of 3-digit + 6-digit problems (n = 200, set pairs)"),
        "{text}"
    );
}

/// The seed's checkpoints through the command: `import` a real `torch.save` stand-in as two
/// stages of one folder, `solve` keeps the line contract (refusing what the seed never
/// trained on), `eval` reports held-out greedy and the seed's own metric, and a file that is not
/// a checkpoint is refused with its name.
#[test]
fn import_solve_and_eval_run_the_seeds_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seed");
    let pt =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/seed-standin/standin.pt");
    for stage in ["stage1", "stage3"] {
        let run = coconut(&[
            "import",
            "--pt",
            path(&pt),
            "--stage",
            stage,
            "--n-head",
            "2",
            "--out",
            path(&out),
        ])
        .output()
        .unwrap();
        assert_success(&run);
    }
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(manifest.contains(r#""layout": "seed""#) && manifest.contains("stage1"));
    let solved = coconut(&[
        "solve",
        "--weights",
        path(&out),
        "--json",
        "--thoughts",
        "gold",
        "347 + 285",
        "5 + 5",
    ])
    .output()
    .unwrap();
    assert_eq!(solved.status.code(), Some(1), "one line refused");
    let lines: Vec<serde_json::Value> = String::from_utf8(solved.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["stage"], "stage3");
    assert_eq!(lines[0]["thoughts"], 3, "347 + 285 has three steps");
    assert!(lines[0]["text"]
        .as_str()
        .unwrap()
        .contains("<bot> [thought] [thought] [thought] <eot>"));
    assert!(error_has(&lines[1], "same length, 2 to 4 digits"));
    // Every engine that runs the seed's family prints exactly what the reference engine prints,
    // JSON or text, refused lines too, for each stage and thought-count protocol. The WGSL
    // engine needs an adapter (lavapipe in CI), as the shaders crate's tests do: without one
    // this fails unless COCONUT_GPU_TESTS=skip.
    let mut engines = vec!["candle", "cpu"];
    match coconut_shaders::Gpu::new_blocking(&coconut_shaders::GpuOptions::default()) {
        Ok(gpu) => {
            eprintln!("the wgpu engine runs on {}", gpu.adapter);
            engines.push("wgpu");
        }
        Err(e) if std::env::var("COCONUT_GPU_TESTS").as_deref() == Ok("skip") => {
            eprintln!("skipping the wgpu engine: {e}");
        }
        Err(e) => panic!("the wgpu engine needs an adapter (or COCONUT_GPU_TESTS=skip): {e}"),
    }
    let problems = [
        "347 + 285",
        "99 + 99",
        "1234 + 8765",
        "5 + 5",
        "12 + 34",
        "4071 + 5929",
    ];
    for (stage, protocol, json) in [
        ("stage1", "gold", true),
        ("stage1", "columns", false),
        ("stage3", "gold", true),
        ("stage3", "columns", true),
        ("stage3", "columns-plus-one", true),
        ("stage3", "columns-plus-one", false),
    ] {
        let solve = |engine: &str| {
            let mut args = vec![
                "solve",
                "--weights",
                path(&out),
                "--stage",
                stage,
                "--thoughts",
                protocol,
                "--engine",
                engine,
            ];
            if json {
                args.push("--json");
            }
            args.extend(problems);
            let run = coconut(&args).output().unwrap();
            assert_eq!(run.status.code(), Some(1), "{engine}: one line refused");
            String::from_utf8(run.stdout).unwrap()
        };
        let reference = solve("reference");
        assert_eq!(reference.lines().count(), if json { 6 } else { 11 });
        for &engine in &engines {
            assert_eq!(
                solve(engine),
                reference,
                "{engine} at {stage}, thoughts {protocol}"
            );
        }
    }
    let json = dir.path().join("eval.json");
    let eval = coconut(&[
        "eval",
        "--weights",
        path(&out),
        "--stage",
        "stage1",
        "--n",
        "20",
        "--json",
        path(&json),
    ])
    .output()
    .unwrap();
    assert_success(&eval);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["held_out"]["teacher_forced"]["n"], 20);
    for protocol in ["gold", "columns", "columns-plus-one"] {
        assert_eq!(
            report["held_out"]["greedy"][protocol]["n"], 20,
            "{protocol}"
        );
    }
    assert!(report["published_set"]["in_training"].as_u64().unwrap() > 0);
    let not_pt = coconut(&[
        "import",
        "--pt",
        path(&json),
        "--stage",
        "stage0",
        "--n-head",
        "2",
        "--out",
        path(&out),
    ])
    .output()
    .unwrap();
    assert_eq!(not_pt.status.code(), Some(2));
    assert!(
        stderr_of(&not_pt).contains("eval.json: not a torch.save archive"),
        "{}",
        stderr_of(&not_pt)
    );
}
