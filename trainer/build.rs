//! Records the git commit this crate is built from as `COCONUT_GIT_COMMIT` (with `-dirty` when
//! tracked files had changes, `unknown` outside git or without git), so that a run's provenance
//! names the code that trained it, wherever `coconut` is later run from.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = match git(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty()) {
        Some(commit) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        None => "unknown".to_string(),
    };
    println!("cargo:rustc-env=COCONUT_GIT_COMMIT={commit}");

    // Look again when HEAD moves (a commit, a checkout) or the index or sources change (dirty).
    // Worktrees keep HEAD and the index in their own git dir and the refs in the common one.
    for (flag, files) in [
        ("--git-dir", &["HEAD", "index"][..]),
        ("--git-common-dir", &["packed-refs", "refs/heads"][..]),
    ] {
        if let Some(dir) = git(&["rev-parse", flag]) {
            for file in files {
                let path = Path::new(&dir).join(file);
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
    }
    for sources in ["src", "../core/src", "../shaders/src"] {
        println!("cargo:rerun-if-changed={sources}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
