//! One writer per run directory: `train` holds an advisory lock on `<run-dir>/lock` for as long
//! as it runs, so a second `train` (or `train --resume`) into the same directory is refused
//! instead of writing every metrics line twice and racing on the checkpoint's temporary file.
//!
//! The lock is the operating system's (`flock` on Unix, `LockFileEx` on Windows, through
//! `File::try_lock`): it belongs to the open file, so it goes away when the process exits,
//! however it exits, kill -9 included. No stale lock is ever left to clean up by hand. The file
//! itself says who holds it, for the refusal message.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub use crate::run_dir::LOCK_FILE;

/// The held lock of a run directory; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of `run_dir` (which must exist), or says which process holds it.
    pub fn acquire(run_dir: &Path) -> Result<RunLock> {
        let path = run_dir.join(LOCK_FILE);
        // Not truncated on open: until the lock is ours, the file is the holder's description.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another process".to_string(),
                    h => h.to_string(),
                };
                bail!(
                    "{} is in use by {holder} (lock {}): wait for that run to end or stop it; \
                     one run directory takes one writer",
                    run_dir.display(),
                    path.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        let holder = format!(
            "process {} ({})\n",
            std::process::id(),
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(holder.as_bytes())?;
            file.flush()
        };
        write(&mut file).with_context(|| format!("writing {}", path.display()))?;
        Ok(RunLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    /// Empties the file before the lock goes (the OS releases it when the file closes), so that
    /// it never names a process that has finished.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_by_name_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        // flock locks belong to the open file, so a second open in this process conflicts too.
        let e = RunLock::acquire(dir.path()).unwrap_err().to_string();
        let holder = format!("is in use by process {} (", std::process::id());
        assert!(e.contains(&holder), "{e}");
        assert!(e.contains(&first.path().display().to_string()), "{e}");
        drop(first);
        let again = RunLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(again.path()).unwrap();
        assert!(text.starts_with(&format!("process {} (", std::process::id())));
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let e = format!("{:#}", RunLock::acquire(&gone).unwrap_err());
        assert!(
            e.starts_with(&format!("opening {}", gone.join("lock").display())),
            "{e}"
        );
    }
}
