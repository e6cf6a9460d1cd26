//! Reading files without surprises: only regular files, their size known from the metadata
//! before a byte is read, and never more read than asked for.
//!
//! `std::fs::read` trusts the path: `/dev/zero` grows until memory runs out, a FIFO or
//! `/dev/urandom` blocks or never ends, and a 1.5 GB file is read whole before anyone compares its
//! size. Every weight, manifest and checkpoint read goes through here instead.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// What a path is, in words, when it is not a regular file.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a folder"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

fn not_regular(file_type: std::fs::FileType) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}, not a regular file", kind_of(file_type)),
    )
}

/// Opens `path` if it is a regular file and returns it with its size. With `follow_links` false a
/// symbolic link is refused too (a weights folder's files must lie inside it). The type is checked
/// before opening, because opening a FIFO blocks, and again on the open file.
pub fn open_regular(path: &Path, follow_links: bool) -> io::Result<(File, u64)> {
    let meta = if follow_links {
        std::fs::metadata(path)?
    } else {
        std::fs::symlink_metadata(path)?
    };
    if !meta.file_type().is_file() {
        return Err(not_regular(meta.file_type()));
    }
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(not_regular(meta.file_type()));
    }
    Ok((file, meta.len()))
}

/// Reads at most `limit` bytes from `file`; a file with more is refused without reading the rest
/// (it may have grown since its size was checked).
pub fn read_at_most(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// Reads a regular file (links followed) of at most `limit` bytes, refusing a larger one from its
/// metadata before reading it.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let (file, size) = open_regular(path, true)?;
    if size > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{size} bytes, more than the {limit} allowed"),
        ));
    }
    read_at_most(file, limit)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_folders_and_fifos_before_reading() {
        let e = read_regular(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "a device, not a regular file");
        let dir = std::env::temp_dir().join(format!("coconut-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = read_regular(&dir, 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "a folder, not a regular file");
        // Opening a FIFO for reading would block until a writer came: refused from its metadata.
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let e = read_regular(&fifo, 1 << 20).unwrap_err();
            assert_eq!(e.to_string(), "a FIFO, not a regular file");
        }
        let file = dir.join("eleven");
        std::fs::write(&file, b"eleven byte").unwrap();
        assert_eq!(read_regular(&file, 11).unwrap(), b"eleven byte");
        let e = read_regular(&file, 10).unwrap_err().to_string();
        assert_eq!(e, "11 bytes, more than the 10 allowed");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_regular(&link, 11).unwrap(), b"eleven byte");
        let e = open_regular(&link, false).unwrap_err().to_string();
        assert_eq!(e, "a symbolic link, not a regular file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_no_further_than_the_limit() {
        let dir = std::env::temp_dir().join(format!("coconut-files-limit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("grown");
        std::fs::write(&file, [7u8; 100]).unwrap();
        let (f, size) = open_regular(&file, false).unwrap();
        assert_eq!(size, 100);
        let e = read_at_most(f, 40).unwrap_err().to_string();
        assert_eq!(e, "larger than 40 bytes");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
