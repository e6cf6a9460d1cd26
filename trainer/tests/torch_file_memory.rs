//! Memory held by the `.pt` reader (trainer/src/import/torch_file.rs), measured by a counting
//! allocator: whatever a file declares, opening it holds memory in proportion to its `data.pkl`
//! and reading holds at most one tensor (one chunk when streamed). A test binary of its own, so
//! that the allocator counts nothing but these tests (per thread: tests run in parallel).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use coconut_trainer::import::torch_file::{parse_state_dict, Limits, TorchFile};
use proptest::prelude::*;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // try_with: the allocator also runs while a thread's locals are torn down.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most bytes it held at once on this thread.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get) - start;
    (out, peak.max(0) as usize)
}

const MIB: usize = 1 << 20;

fn standin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/seed-standin/standin.pt")
}

fn standin_entries() -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(File::open(standin()).unwrap()).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (entry.name().unwrap().to_string(), bytes)
        })
        .collect()
}

fn standin_pickle() -> Vec<u8> {
    static PICKLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PICKLE
        .get_or_init(|| {
            standin_entries()
                .into_iter()
                .find(|(n, _)| n.ends_with("/data.pkl"))
                .unwrap()
                .1
        })
        .clone()
}

/// The stand-in with its data.pkl replaced.
fn with_pickle(dir: &Path, pickle: &[u8]) -> PathBuf {
    let path = dir.join("m.pt");
    let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default().with_alignment(64);
    for (name, bytes) in standin_entries() {
        zip.start_file(name.as_str(), options).unwrap();
        let bytes = if name.ends_with("/data.pkl") {
            pickle
        } else {
            &bytes[..]
        };
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    path
}

/// `bytes` with the first `find` replaced.
fn splice(bytes: &[u8], find: &[u8], replace: &[u8]) -> Vec<u8> {
    let at = bytes.windows(find.len()).position(|w| w == find).unwrap();
    [&bytes[..at], replace, &bytes[at + find.len()..]].concat()
}

#[test]
fn reading_holds_one_tensor_and_streaming_one_chunk() {
    let (file, opened) = peak_of(|| TorchFile::open(standin()).unwrap());
    assert!(opened < MIB, "open held {opened} bytes");
    let wte = "transformer.wte.weight";
    let tensor_bytes = file.tensor(wte).unwrap().numel() * 4;
    let (values, read) = peak_of(|| file.read_f32(wte).unwrap());
    // The lower bound shows the allocator counts at all.
    assert!(
        (tensor_bytes..tensor_bytes + MIB).contains(&read),
        "read_f32 held {read} bytes"
    );
    eprintln!("open {opened} B, read_f32 {read} B for {tensor_bytes}");
    drop(values);
    let mut sum = 0.0f64;
    let ((), streamed) = peak_of(|| {
        let each = |c: &[f32]| sum += c.iter().map(|&v| f64::from(v)).sum::<f64>();
        file.read_f32_chunks(wte, 4096, each).unwrap()
    });
    assert!(streamed < MIB / 4, "streaming held {streamed} bytes");
    eprintln!("streamed in 4096-element chunks: {streamed} B");
    assert!(sum.is_finite());
}

#[test]
fn absurd_declarations_are_refused_in_a_small_footprint() {
    let dir = tempfile::tempdir().unwrap();
    let pickle = standin_pickle();
    let big = b"\x8a\x05\x00\x00\x00\x80\x00";
    let huge = b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x7f";
    let files = [
        // wte's storage: 2^40 elements.
        splice(
            &pickle,
            b"J\x50\x45\x0c\x00",
            b"\x8a\x06\x00\x00\x00\x00\x00\x01",
        ),
        // wte: size [2^31, 2^31].
        splice(
            &pickle,
            b"M\x55\xc4K\x10\x86",
            &[&big[..], big, b"\x86"].concat(),
        ),
        // wte: size [2^63 - 2^56, 16] over a storage of as many elements.
        splice(
            &splice(&pickle, b"J\x50\x45\x0c\x00", huge),
            b"M\x55\xc4K\x10\x86",
            &[&huge[..], b"K\x10\x86"].concat(),
        ),
    ];
    for pickle in files {
        let path = with_pickle(dir.path(), &pickle);
        let (outcome, peak) = peak_of(|| TorchFile::open(&path).map(|_| ()));
        let message = outcome.unwrap_err().to_string();
        assert!(message.contains("transformer.wte.weight"), "{message}");
        assert!(peak < MIB, "{message}: held {peak} bytes");
        eprintln!("refused holding {peak} B: {message}");
    }
}

/// One random edit of a byte string.
fn mutate(bytes: &mut Vec<u8>, kind: u8, at: usize, byte: u8) {
    if bytes.is_empty() {
        bytes.push(byte);
        return;
    }
    let at = at % bytes.len();
    match kind % 4 {
        0 => bytes[at] = byte,
        1 => bytes.insert(at, byte),
        2 => {
            bytes.remove(at);
        }
        _ => bytes.truncate(at),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Parsing any pickle of a few KB, mutated from the real one or random, holds well under a
    /// megabyte, whatever sizes and counts it declares.
    #[test]
    fn parsing_holds_memory_in_proportion_to_the_pickle(
        edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8),
        random in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut pickle = standin_pickle();
        for (kind, at, byte) in edits {
            mutate(&mut pickle, kind, at, byte);
        }
        let limits = Limits::default();
        let (_, peak) = peak_of(|| parse_state_dict(&pickle, &limits).map(|r| r.len()));
        prop_assert!(peak < 64 * pickle.len() + 64 * 1024, "{} bytes for {}", peak, pickle.len());
        let random = [&b"\x80\x02"[..], &random].concat();
        let (_, peak) = peak_of(|| parse_state_dict(&random, &limits).map(|r| r.len()));
        prop_assert!(peak < 64 * 1024, "{} bytes for random input", peak);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Mutated headers, directory and pickle through the whole reader: at most one tensor held.
    #[test]
    fn mutated_files_hold_at_most_one_tensor(
        pickle_edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..4),
        file_edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        at_end in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut pickle = standin_pickle();
        for (kind, at, byte) in pickle_edits {
            mutate(&mut pickle, kind, at, byte);
        }
        let path = with_pickle(dir.path(), &pickle);
        let mut bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        for (at, byte) in file_edits {
            let at = if at_end { len - 1 - at % 4096 } else { at % 8192 };
            bytes[at] = byte;
        }
        std::fs::write(&path, bytes).unwrap();
        let largest = 50261 * 16 * 4;
        let (_, peak) = peak_of(|| {
            if let Ok(file) = TorchFile::open(&path) {
                for t in file.tensors() {
                    let _ = file.read_f32(&t.name);
                }
            }
        });
        prop_assert!(peak < largest + 2 * MIB, "held {} bytes", peak);
    }
}
