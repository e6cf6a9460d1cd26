//! Everything the command prints goes through here, so that no stream can make it panic
//! (`println!` panics when stdout is closed or full).
//!
//! Stdout carries the results: a reader that went away (`coconut ... | head -1`) stops the command
//! quietly ([`Closed`], exit 0: whoever closed the pipe had what it wanted); any other failure (a
//! full disk, `/dev/full`) is an error that says it was writing to stdout. Stderr carries notes
//! (progress, "wrote FILE") and the final error: they are written when they can be, and a stderr
//! that cannot take them changes nothing else.

use std::fmt;
use std::io::{self, Write};

/// Stdout was closed by its reader: the command stops without a word.
#[derive(Debug)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed by its reader")
    }
}

impl std::error::Error for Closed {}

/// The process's stdout, whose errors say what failed: [`Closed`] for a reader that went away,
/// "writing to stdout: ..." for anything else.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stdout().write(buf).map_err(explain)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush().map_err(explain)
    }
}

fn explain(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, Closed)
    } else {
        io::Error::new(e.kind(), format!("writing to stdout: {e}"))
    }
}

/// Writes to stdout (through [`Stdout`]); use [`out!`] and [`outln!`].
pub fn print(args: fmt::Arguments) -> io::Result<()> {
    Stdout.write_fmt(args)
}

/// Flushes stdout: what is still buffered fails here, not silently at exit.
pub fn flush() -> io::Result<()> {
    Stdout.flush()
}

/// Writes a note to stderr if it can (a full or closed stderr loses the note, nothing more).
pub fn write_note(args: fmt::Arguments) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Whether `e` (anywhere in its chain) is stdout closed by its reader.
pub fn closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<Closed>()
            || c.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<Closed>())
    })
}

/// Refuses an output file (`flag` names it) that could not be written once the work is done: a
/// folder, a device or FIFO (written by renaming over it, it would be replaced), or a path whose
/// folder is missing or not writable (tried by creating and removing a file there).
pub fn check_output(path: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    use anyhow::{bail, Context};
    let shown = path.display();
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            bail!("{flag} {shown}: not a regular file (a folder, device or FIFO); name a file");
        }
    }
    let name = path
        .file_name()
        .with_context(|| format!("{flag} {shown}: not a file name"))?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !folder.is_dir() {
        bail!("{flag} {shown}: {} is not a folder", folder.display());
    }
    let mut probe = std::ffi::OsString::from(".");
    probe.push(name);
    probe.push(format!(".check-{}", std::process::id()));
    let probe = folder.join(probe);
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .with_context(|| format!("{flag} {shown}: cannot write in {}", folder.display()))
}

/// `print!` to stdout, returning `io::Result<()>`.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::print(format_args!($($arg)*)) };
}

/// `println!` to stdout, returning `io::Result<()>`.
macro_rules! outln {
    () => { $crate::output::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics: see [`write_note`].
macro_rules! note {
    ($($arg:tt)*) => { $crate::output::write_note(format_args!($($arg)*)) };
}

pub(crate) use {note, out, outln};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_stdout_is_recognised_through_context() {
        let e = anyhow::Error::from(explain(io::ErrorKind::BrokenPipe.into()))
            .context("printing the table");
        assert!(closed(&e));
        let full = explain(io::Error::from_raw_os_error(28));
        assert!(
            full.to_string().starts_with("writing to stdout: "),
            "{full}"
        );
        assert!(!closed(&anyhow::Error::from(full)));
    }
}
