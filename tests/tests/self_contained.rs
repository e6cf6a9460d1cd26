//! The repository stands on its own. No file of it refers to the `shared` folder that sat beside
//! the development checkouts (design notes and tools a clone does not have): the contracts live in
//! `docs/`. And every relative link of the top-level documents, `docs/` and the model card
//! (`weights/README.md`) names a file or folder of the repository, and a heading of it where the
//! link gives one.
//!
//! Files are those git lists (tracked, and untracked ones it does not ignore); without git, every
//! file under the repository but build outputs. Only the standard library is used.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The reference that must not come back, spelled in two pieces so this file does not hold it.
const OUTSIDE: &str = concat!("..", "/shared/");

/// Folders that are build outputs or other people's code, never searched (and `.venv*`).
const SKIPPED: [&str; 5] = ["target", "node_modules", ".git", "runs", "dist"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

fn skipped(relative: &Path) -> bool {
    relative.components().any(|c| match c {
        Component::Normal(name) => {
            SKIPPED.iter().any(|s| name == *s) || name.to_string_lossy().starts_with(".venv")
        }
        _ => false,
    })
}

/// The repository's files, relative to `root`: git's list, or a walk of the tree.
fn files(root: &Path) -> Vec<PathBuf> {
    let listed = Command::new("git")
        .arg("-C")
        .arg(root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success() && !out.stdout.is_empty());
    let all: Vec<PathBuf> = match listed {
        Some(out) => out
            .stdout
            .split(|&b| b == 0)
            .filter(|name| !name.is_empty())
            .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
            .collect(),
        None => {
            let mut found = Vec::new();
            walk(root, Path::new(""), &mut found);
            found
        }
    };
    all.into_iter()
        .filter(|f| !skipped(f) && root.join(f).is_file())
        .collect()
}

fn walk(root: &Path, relative: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(relative)) else {
        return;
    };
    for entry in entries.flatten() {
        let path = relative.join(entry.file_name());
        if skipped(&path) {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(root, &path, found),
            Ok(t) if t.is_file() => found.push(path),
            _ => {}
        }
    }
}

/// `path:line: text` for every line of `text` that holds `needle`.
fn lines_with(path: &Path, text: &str, needle: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.contains(needle))
        .map(|(i, line)| format!("{}:{}: {}", path.display(), i + 1, line.trim()))
        .collect()
}

#[test]
fn no_file_refers_to_files_outside_the_repository() {
    let root = repo_root();
    let files = files(&root);
    assert!(
        files.iter().any(|f| f == Path::new("README.md")),
        "the file list of {} has no README.md",
        root.display()
    );
    let mut hits = Vec::new();
    for file in &files {
        let Ok(bytes) = std::fs::read(root.join(file)) else {
            continue;
        };
        let needle = OUTSIDE.as_bytes();
        if bytes.windows(needle.len()).any(|w| w == needle) {
            hits.extend(lines_with(file, &String::from_utf8_lossy(&bytes), OUTSIDE));
        }
    }
    assert!(
        hits.is_empty(),
        "these lines send the reader to files a clone does not have ({OUTSIDE}...); state what \
         they rely on in docs/ and point there:\n{}",
        hits.join("\n")
    );
}

/// The documents whose links are checked: the top-level Markdown files, `docs/` and the model
/// card.
fn documents(files: &[PathBuf]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
        .filter(|f| {
            let parent = f.parent().unwrap_or(Path::new(""));
            parent == Path::new("")
                || parent == Path::new("docs")
                || f.as_path() == Path::new("weights/README.md")
        })
        .cloned()
        .collect()
}

/// The text of a Markdown file without fenced code blocks and inline code spans, line by line
/// (line numbers kept), where links are links.
fn prose_lines(text: &str) -> Vec<String> {
    let mut fenced = false;
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return String::new();
            }
            if fenced {
                return String::new();
            }
            // Drop what stands between pairs of backticks.
            let mut out = String::new();
            for (i, piece) in line.split('`').enumerate() {
                if i % 2 == 0 {
                    out.push_str(piece);
                }
            }
            out
        })
        .collect()
}

/// The targets of a line's inline links and images (`[text](target)`) and of a reference
/// definition (`[label]: target`).
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        if let Some(end) = trimmed.find("]:") {
            if let Some(target) = trimmed[end + 2..].split_whitespace().next() {
                targets.push(target.to_string());
            }
        }
    }
    let mut rest = line;
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else {
            break;
        };
        let inside = after[..end].trim();
        let target = match inside.strip_prefix('<') {
            Some(angled) => angled.split('>').next().unwrap_or(""),
            None => inside.split_whitespace().next().unwrap_or(""),
        };
        targets.push(target.to_string());
        rest = &after[end..];
    }
    targets
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor a Markdown file's headings give (a repeated heading gets `-1`, `-2`, ...).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut all = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if fenced || hashes == 0 || hashes > 6 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = anchor(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        all.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    all
}

/// `target` resolved against the folder of `document`, inside `root`; `None` if it climbs out.
fn resolve(root: &Path, document: &Path, target: &str) -> Option<PathBuf> {
    let start = if target.starts_with('/') {
        PathBuf::new()
    } else {
        document.parent().unwrap_or(Path::new("")).to_path_buf()
    };
    let mut parts: Vec<std::ffi::OsString> = start.iter().map(|p| p.to_os_string()).collect();
    for component in Path::new(target.trim_start_matches('/')).components() {
        match component {
            Component::Normal(name) => parts.push(name.to_os_string()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    Some(
        parts
            .iter()
            .fold(root.to_path_buf(), |p, part| p.join(part)),
    )
}

fn broken_links(root: &Path, document: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join(document)).unwrap_or_default();
    let mut broken = Vec::new();
    for (i, line) in prose_lines(&text).iter().enumerate() {
        for target in link_targets(line) {
            let external = ["http://", "https://", "mailto:"]
                .iter()
                .any(|scheme| target.starts_with(scheme));
            if external || target.is_empty() {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            let path = path.split('?').next().unwrap_or("").replace("%20", " ");
            let at = format!("{}:{}: ({target})", document.display(), i + 1);
            let file = if path.is_empty() {
                Some(root.join(document))
            } else {
                resolve(root, document, &path)
            };
            let Some(file) = file else {
                broken.push(format!("{at} climbs out of the repository"));
                continue;
            };
            if !file.exists() {
                broken.push(format!(
                    "{at} names {}, which does not exist",
                    file.display()
                ));
                continue;
            }
            let markdown = file.extension().is_some_and(|e| e == "md");
            if let (Some(fragment), true) = (fragment, markdown && file.is_file()) {
                let headings = anchors(&std::fs::read_to_string(&file).unwrap_or_default());
                if !headings.contains(fragment) {
                    broken.push(format!(
                        "{at}: {} has no heading #{fragment}",
                        file.display()
                    ));
                }
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_of_the_documents_names_a_file_of_the_repository() {
    let root = repo_root();
    let documents = documents(&files(&root));
    for expected in ["README.md", "ARCHITECTURE.md", "docs/data-format.md"] {
        assert!(
            documents.iter().any(|d| d == Path::new(expected)),
            "{expected} is not among the documents checked: {documents:?}"
        );
    }
    let broken: Vec<String> = documents
        .iter()
        .flat_map(|d| broken_links(&root, d))
        .collect();
    assert!(
        broken.is_empty(),
        "broken relative links:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_link_reader_finds_links_and_headings() {
    let line = "See [a](docs/a.md#x), ![b](img/b.png \"title\") and [c](<with space.md>).";
    assert_eq!(
        link_targets(line),
        ["docs/a.md#x", "img/b.png", "with space.md"]
    );
    assert_eq!(
        link_targets("[ref]: ../weights/README.md"),
        ["../weights/README.md"]
    );
    assert_eq!(
        prose_lines("`[x](gone.md)` and [y](here.md)")[0],
        " and [y](here.md)"
    );
    assert_eq!(anchor("How many thoughts"), "how-many-thoughts");
    assert_eq!(anchor("The `coconut` command"), "the-coconut-command");
    let text = "# A\n## Beyond four digits: coupled\n```\n# not a heading\n```\n## A\n";
    let found = anchors(text);
    assert!(found.contains("beyond-four-digits-coupled") && found.contains("a-1"));
    assert!(!found.contains("not-a-heading"));
    let root = Path::new("/repo");
    assert_eq!(
        resolve(root, Path::new("docs/x.md"), "../weights/README.md"),
        Some(PathBuf::from("/repo/weights/README.md"))
    );
    assert_eq!(resolve(root, Path::new("README.md"), "../outside.md"), None);
}
