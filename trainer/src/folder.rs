//! The one way a folder whose files belong together is written (a weights folder and its manifest,
//! a Hugging Face export): everything goes into a staging folder beside it
//! (`.NAME.staging-PID-N`), is checked there, and is then swapped in by one rename. Whoever reads
//! the folder, and whatever stops the writer (an error, a full disk, a kill), finds the old folder
//! or the new one whole, never a mix of the two.
//!
//! [`FolderWrite::begin`] runs before the work that fills the folder, so an unwritable target is
//! refused before any time is spent. [`FolderWrite::commit`] first brings over the files of the
//! old folder that were not written again (hard links, or copies where links fail), runs the
//! caller's check on the staging folder, then swaps: on Linux with `renameat2(RENAME_EXCHANGE)`
//! (atomic; the staging name then holds the old folder, which is removed), elsewhere, or where the
//! file system lacks it, by renaming the old folder aside (`.NAME.old-PID`), the new one in and
//! the old one away; a kill between those two renames leaves the old folder under its aside
//! name, which the next writer refuses to pass over, naming it. Staging folders of writers that
//! were killed are removed by the next writer.

use anyhow::{bail, ensure, Context, Result};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the staging folder starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The old folder's files, except those written again (adding to a weights folder).
    Keep,
    /// Nothing: the new folder replaces the old one whole (a Hugging Face export with --force).
    Replace,
}

/// A folder being written: [`FolderWrite::write`] files into it, then [`FolderWrite::commit`].
/// Dropped without a commit, it removes its staging folder and leaves the target as it was.
#[derive(Debug)]
pub struct FolderWrite {
    target: PathBuf,
    staging: PathBuf,
    start: Start,
    finished: bool,
    /// Files of the old folder not to keep ([`FolderWrite::remove`]).
    removed: Vec<OsString>,
}

static STAGINGS: AtomicUsize = AtomicUsize::new(0);

/// `.NAME.<what>-` for a folder named NAME: the prefix of its staging and aside names.
fn sibling_prefix(target: &Path, what: &str) -> OsString {
    let mut name = OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(format!(".{what}-"));
    name
}

/// `target` with symbolic links resolved (a link to a folder writes the folder it points at);
/// for a folder not made yet, its parent (created) resolved and its name.
fn resolve(target: &Path) -> Result<PathBuf> {
    if std::fs::symlink_metadata(target).is_ok() {
        let meta = std::fs::metadata(target).with_context(|| format!("{}", target.display()))?;
        ensure!(meta.is_dir(), "{} is not a folder", target.display());
        return std::fs::canonicalize(target).with_context(|| format!("{}", target.display()));
    }
    let name = target
        .file_name()
        .with_context(|| format!("{}: not a folder name", target.display()))?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    Ok(std::fs::canonicalize(parent)
        .with_context(|| format!("{}", parent.display()))?
        .join(name))
}

/// Whether a process with this id is running (staging folders of dead ones are leftovers).
fn alive(pid: u32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: signal 0 only asks whether the process exists.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        // Unknown here: taken as running, so no live writer's folder is ever removed.
        let _ = pid;
        true
    }
}

/// Removes the staging folders beside `target` that killed writers left; refuses to go on when a
/// non-atomic swap was cut between its renames (the old folder is aside, under a name it gives).
fn clean_up_after_the_dead(target: &Path) -> Result<()> {
    let parent = target.parent().expect("resolved paths have a parent");
    let (staging, aside) = (
        sibling_prefix(target, "staging"),
        sibling_prefix(target, "old"),
    );
    for entry in std::fs::read_dir(parent).with_context(|| format!("{}", parent.display()))? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(rest) = name.strip_prefix(&*staging.to_string_lossy()) {
            let pid = rest.split('-').next().and_then(|p| p.parse().ok());
            if pid.is_some_and(|pid| !alive(pid)) {
                let _ = std::fs::remove_dir_all(parent.join(&*name));
            }
        } else if name.starts_with(&*aside.to_string_lossy()) && !target.exists() {
            bail!(
                "{} is missing and {} holds it as it was before a write that was cut short: \
                 rename it back to {}",
                target.display(),
                parent.join(&*name).display(),
                target.display()
            );
        }
    }
    Ok(())
}

/// Refuses a folder this process may not write to, by writing (and removing) a file there.
fn check_writable(dir: &Path) -> Result<()> {
    let probe = dir.join(format!(".coconut-write-check-{}", std::process::id()));
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .with_context(|| format!("{} is not writable", dir.display()))
}

impl FolderWrite {
    /// Prepares to write the folder `target` (made if missing; a link to a folder writes the folder
    /// it points at): checks that it and its parent are writable and makes the staging folder.
    pub fn begin(target: &Path, start: Start) -> Result<FolderWrite> {
        let shown = target.display().to_string();
        let target = resolve(target)?;
        clean_up_after_the_dead(&target)?;
        if target.exists() {
            check_writable(&target).with_context(|| format!("writing {shown}"))?;
        }
        let mut name = sibling_prefix(&target, "staging");
        name.push(format!(
            "{}-{}",
            std::process::id(),
            STAGINGS.fetch_add(1, Ordering::Relaxed)
        ));
        let staging = target.with_file_name(name);
        faults::step("create the staging folder")
            .and_then(|()| std::fs::create_dir(&staging))
            .with_context(|| format!("writing {shown}: creating {}", staging.display()))?;
        Ok(FolderWrite {
            target,
            staging,
            start,
            finished: false,
            removed: Vec::new(),
        })
    }

    /// The folder being written (resolved).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Writes the file `name` (a plain name) of the new folder.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        ensure!(
            Path::new(name).file_name() == Some(name.as_ref()),
            "{name}: not a plain file name"
        );
        let path = self.staging.join(name);
        faults::step(&format!("write {name}"))
            .and_then(|()| {
                let mut file = std::fs::File::create(&path)?;
                file.write_all(bytes)?;
                file.sync_all()
            })
            .with_context(|| format!("writing {}", self.target.join(name).display()))
    }

    /// Leaves the old folder's file `name` out of the new one (with [`Start::Keep`]: a file
    /// that a rewritten entry no longer names).
    pub fn remove(&mut self, name: &str) -> Result<()> {
        ensure!(
            Path::new(name).file_name() == Some(name.as_ref()),
            "{name}: not a plain file name"
        );
        self.removed.push(name.into());
        Ok(())
    }

    /// Brings over the old folder's other files ([`Start::Keep`]), runs `check` on the staging
    /// folder, and swaps it in.
    pub fn commit(mut self, check: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let shown = self.target.display().to_string();
        if self.start == Start::Keep && self.target.exists() {
            bring_over(&self.target, &self.staging, &self.removed)
                .with_context(|| format!("writing {shown}: keeping its other files"))?;
        }
        faults::step("check")?;
        check(&self.staging).with_context(|| {
            format!("{shown}: the new folder failed its check, the old one is left as it was")
        })?;
        sync_dir(&self.staging).with_context(|| format!("writing {shown}"))?;
        self.swap().with_context(|| format!("writing {shown}"))?;
        self.finished = true;
        if let Some(parent) = self.target.parent() {
            let _ = sync_dir(parent);
        }
        // The staging name now holds the old folder (or nothing): no longer needed.
        let _ = faults::step("remove the old folder").and_then(|()| remove_if_there(&self.staging));
        Ok(())
    }

    fn swap(&self) -> std::io::Result<()> {
        if !self.target.exists() {
            faults::step("rename the new folder in")?;
            return std::fs::rename(&self.staging, &self.target);
        }
        faults::step("exchange the folders")?;
        match exchange(&self.staging, &self.target) {
            Ok(()) => return Ok(()),
            Err(e) if !exchange_unsupported(&e) => return Err(e),
            Err(_) => {}
        }
        let mut aside = sibling_prefix(&self.target, "old");
        aside.push(std::process::id().to_string());
        let aside = self.target.with_file_name(aside);
        faults::step("rename the old folder aside")?;
        std::fs::rename(&self.target, &aside)?;
        if let Err(e) = faults::step("rename the new folder in")
            .and_then(|()| std::fs::rename(&self.staging, &self.target))
        {
            std::fs::rename(&aside, &self.target)?;
            return Err(e);
        }
        std::fs::rename(&aside, &self.staging)
    }
}

impl Drop for FolderWrite {
    fn drop(&mut self) {
        if !self.finished && !faults::killed() {
            let _ = remove_if_there(&self.staging);
        }
    }
}

fn remove_if_there(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Puts into `to` every entry of `from` that `to` lacks: files as hard links (copies where a
/// link fails), symbolic links as links, folders recursively.
fn bring_over(from: &Path, to: &Path, removed: &[OsString]) -> Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("{}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if std::fs::symlink_metadata(&dst).is_ok() || removed.contains(&entry.file_name()) {
            continue;
        }
        let kind = entry.file_type()?;
        faults::step(&format!("keep {}", entry.file_name().to_string_lossy()))?;
        if kind.is_dir() {
            std::fs::create_dir(&dst)?;
            bring_over(&src, &dst, &[])?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(&src)?;
            #[cfg(unix)]
            std::os::unix::fs::symlink(&link, &dst)?;
            #[cfg(not(unix))]
            bail!(
                "{}: a link to {} cannot be kept here",
                src.display(),
                link.display()
            );
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c =
        |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: two valid C strings; AT_FDCWD with absolute paths.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// The file system (or the platform) cannot exchange two names: swap by two renames instead.
fn exchange_unsupported(e: &std::io::Error) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
        return true;
    }
    e.kind() == std::io::ErrorKind::Unsupported
}

/// Failures injected at every step of a folder write, for the tests: each step (creating the
/// staging folder, each file written or kept, the check, each rename) asks [`faults::step`] first.
/// Outside tests it does nothing.
pub mod faults {
    use std::cell::Cell;

    /// What the injected failure is.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Failure {
        /// The step fails with an I/O error (a full disk); cleaning up runs as it would.
        Error,
        /// The process dies at the step: nothing after it runs, no clean-up either.
        Kill,
    }

    thread_local! {
        /// Steps left before the failure, and which failure.
        static PLAN: Cell<Option<(usize, Failure)>> = const { Cell::new(None) };
        static KILLED: Cell<bool> = const { Cell::new(false) };
        static STEPS: Cell<usize> = const { Cell::new(0) };
    }

    /// Makes the `n`th step from now (0: the next) on this thread fail as `failure` says.
    pub fn fail_at(n: usize, failure: Failure) {
        PLAN.set(Some((n, failure)));
        KILLED.set(false);
        STEPS.set(0);
    }

    /// Ends the injection; returns how many steps ran since [`fail_at`].
    pub fn clear() -> usize {
        PLAN.set(None);
        KILLED.set(false);
        STEPS.replace(0)
    }

    /// Whether a simulated kill happened (nothing may run after it, not even a clean-up).
    pub fn killed() -> bool {
        KILLED.get()
    }

    /// One step of a folder write, named `what`: fails if this is the planned step (and every
    /// later one, once killed).
    pub fn step(what: &str) -> std::io::Result<()> {
        let fail = |why: &str| Err(std::io::Error::other(format!("{why} before: {what}")));
        if KILLED.get() {
            return fail("killed");
        }
        STEPS.set(STEPS.get() + 1);
        match PLAN.get() {
            Some((0, failure)) => {
                PLAN.set(None);
                KILLED.set(failure == Failure::Kill);
                fail("injected failure")
            }
            Some((n, failure)) => {
                PLAN.set(Some((n - 1, failure)));
                Ok(())
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Every file under `dir`, by relative path, with its bytes.
    fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                for (k, v) in snapshot(&p) {
                    files.insert(format!("{name}/{k}"), v);
                }
            } else {
                files.insert(name, std::fs::read(&p).unwrap());
            }
        }
        files
    }

    fn write_new(target: &Path) -> Result<()> {
        let mut w = FolderWrite::begin(target, Start::Keep)?;
        w.write("manifest.json", b"new manifest")?;
        w.write("stage1.bin", b"new stage")?;
        w.commit(|dir| {
            ensure!(std::fs::read(dir.join("keep.txt"))? == b"kept");
            Ok(())
        })
    }

    #[test]
    fn a_failure_or_kill_at_any_step_leaves_the_old_folder_or_the_new_one() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("weights");
        let reset = || {
            let _ = std::fs::remove_dir_all(&target);
            std::fs::create_dir_all(target.join("sub")).unwrap();
            std::fs::write(target.join("manifest.json"), b"old manifest").unwrap();
            std::fs::write(target.join("keep.txt"), b"kept").unwrap();
            std::fs::write(target.join("sub/inner"), b"inner").unwrap();
        };
        reset();
        let old = snapshot(&target);
        write_new(&target).unwrap();
        let steps = faults::clear();
        let new = snapshot(&target);
        assert_eq!(new["manifest.json"], b"new manifest");
        assert_eq!(
            (new["keep.txt"].as_slice(), new["sub/inner"].as_slice()),
            (&b"kept"[..], &b"inner"[..])
        );
        assert!(steps >= 8, "{steps} steps");
        for failure in [faults::Failure::Error, faults::Failure::Kill] {
            for at in 0..steps {
                reset();
                faults::fail_at(at, failure);
                let result = write_new(&target);
                faults::clear();
                let now = snapshot(&target);
                // Only the removal of the old folder comes after the swap; failing it is no error.
                if at + 1 == steps {
                    assert!(result.is_ok(), "{failure:?} at {at}");
                    assert_eq!(now, new, "{failure:?} at {at}");
                } else {
                    assert!(result.is_err(), "{failure:?} at {at}");
                    assert_eq!(now, old, "{failure:?} at {at}: {:?}", result);
                }
                // A failed removal of the old folder leaves it beside, under the staging name.
                if failure == faults::Failure::Error && at + 1 < steps {
                    let beside: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
                    assert_eq!(beside.len(), 1, "{failure:?} at {at}: staging left behind");
                }
            }
        }
    }

    #[test]
    fn a_new_folder_appears_whole_and_a_dead_writers_staging_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("new").join("hf");
        // A staging folder of a process that no longer runs (pid far above any real one).
        std::fs::create_dir_all(tmp.path().join("new/.hf.staging-4000000000-0")).unwrap();
        let mut w = FolderWrite::begin(&target, Start::Replace).unwrap();
        w.write("a", b"1").unwrap();
        assert!(!target.exists(), "nothing appears before the commit");
        w.commit(|_| Ok(())).unwrap();
        assert_eq!(
            snapshot(&target),
            BTreeMap::from([("a".to_string(), b"1".to_vec())])
        );
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("new")).unwrap().collect();
        assert_eq!(names.len(), 1);
        // Replace drops what was there; a failed check changes nothing.
        let mut w = FolderWrite::begin(&target, Start::Replace).unwrap();
        w.write("b", b"2").unwrap();
        let e = w.commit(|_| bail!("not good")).unwrap_err();
        assert!(format!("{e:#}").contains("failed its check"), "{e:#}");
        assert_eq!(snapshot(&target).len(), 1);
        let mut w = FolderWrite::begin(&target, Start::Replace).unwrap();
        w.write("b", b"2").unwrap();
        w.commit(|_| Ok(())).unwrap();
        assert_eq!(
            snapshot(&target),
            BTreeMap::from([("b".to_string(), b"2".to_vec())])
        );
        assert!(w_name_refused(&target));
    }

    fn w_name_refused(target: &Path) -> bool {
        let mut w = FolderWrite::begin(target, Start::Keep).unwrap();
        w.write("../escape", b"x").is_err()
    }
}
