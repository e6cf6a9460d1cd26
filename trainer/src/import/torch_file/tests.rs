//! The reader against the committed stand-in (values equal to what torch loads, from
//! `standin-tensors.json`, made by scripts/pt_dump.py) and against hostile files built here from
//! the stand-in's own bytes, so that CI needs neither Python nor torch.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;

const WTE: &str = "transformer.wte.weight";
const HEAD: &str = "lm_head.weight";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/seed-standin")
        .join(name)
}

fn standin() -> PathBuf {
    fixture("standin.pt")
}

/// Every entry of the stand-in, in archive order.
fn standin_entries() -> Vec<(String, Vec<u8>)> {
    let mut archive = ZipArchive::new(File::open(standin()).unwrap()).unwrap();
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
            let entries = standin_entries();
            entries
                .into_iter()
                .find(|(n, _)| n == "standin/data.pkl")
                .unwrap()
                .1
        })
        .clone()
}

/// A stored zip of `entries`, as torch writes one.
fn write_archive(dir: &Path, file: &str, entries: &[(String, Vec<u8>)]) -> PathBuf {
    let path = dir.join(file);
    let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .with_alignment(64);
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    path
}

/// The stand-in with `edit` applied to its entries.
fn standin_edited(
    dir: &Path,
    file: &str,
    edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>),
) -> PathBuf {
    let mut entries = standin_entries();
    edit(&mut entries);
    write_archive(dir, file, &entries)
}

fn with_pickle(dir: &Path, file: &str, pickle: Vec<u8>) -> PathBuf {
    standin_edited(dir, file, |entries| {
        entries
            .iter_mut()
            .find(|(n, _)| n.ends_with("/data.pkl"))
            .unwrap()
            .1 = pickle;
    })
}

/// Opens `path` and reads every tensor; the first error's message.
fn refusal(path: &Path, limits: &Limits) -> String {
    let outcome = TorchFile::open_with_limits(path, limits).and_then(|file| {
        for t in file.tensors() {
            file.read_f32(&t.name)?;
        }
        Ok(())
    });
    match outcome {
        Ok(()) => panic!("{} was accepted", path.display()),
        Err(e) => e.to_string(),
    }
}

/// Refused, and the message names the file and each of `needles`.
fn assert_refused(path: &Path, needles: &[&str]) {
    let message = refusal(path, &Limits::default());
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    for needle in needles {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
}

/// `bytes` with the first `find` replaced (in the stand-in's pickle, wte's declaration comes
/// before lm_head's repetition of it).
fn splice(bytes: &[u8], find: &[u8], replace: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(find.len())
        .position(|w| w == find)
        .expect("pattern in the pickle");
    [&bytes[..at], replace, &bytes[at + find.len()..]].concat()
}

fn sha256_f32(values: &[f32]) -> String {
    let mut hasher = Sha256::new();
    for v in values {
        hasher.update(v.to_le_bytes());
    }
    format!("{:x}", hasher.finalize())
}

#[derive(serde::Deserialize)]
struct Golden {
    tensors: Vec<GoldenTensor>,
    shared: Vec<Vec<String>>,
}

#[derive(serde::Deserialize)]
struct GoldenTensor {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    stride: Vec<usize>,
    storage_offset: usize,
    sha256_f32_le: String,
    first: Vec<f64>,
}

/// `file` read by this reader equals `golden` (pt_dump.py's JSON of torch's own load).
fn assert_matches_golden(file: &TorchFile, golden: &Golden) {
    let names: Vec<&str> = file.tensors().iter().map(|t| t.name.as_str()).collect();
    let expected: Vec<&str> = golden.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, expected);
    for (t, g) in file.tensors().iter().zip(&golden.tensors) {
        let torch_dtype = match t.dtype {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::Bool => "bool",
            DType::U8 => "uint8",
        };
        assert_eq!(torch_dtype, g.dtype, "{}", t.name);
        assert_eq!(
            (&t.shape, &t.stride, t.storage_offset),
            (&g.shape, &g.stride, g.storage_offset),
            "{}",
            t.name
        );
        let values = file.read_f32(&t.name).unwrap();
        assert_eq!(sha256_f32(&values), g.sha256_f32_le, "{}", t.name);
        // serde_json's decimal parsing may miss a double by an ulp, never an f32.
        let first: Vec<f32> = g.first.iter().map(|&v| v as f32).collect();
        assert_eq!(values[..first.len()], first, "{}", t.name);
    }
    let shared: Vec<Vec<String>> = file
        .shared_storages()
        .iter()
        .map(|g| g.iter().map(|t| t.name.clone()).collect())
        .collect();
    assert_eq!(shared, golden.shared);
}

fn golden(path: &Path) -> Golden {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn standin_reads_as_torch_loads_it() {
    let file = TorchFile::open(standin()).unwrap();
    assert_eq!(file.tensors().len(), 29);
    assert_matches_golden(&file, &golden(&fixture("standin-tensors.json")));
    // The shapes docs/seed-format.md section 10 gives, at 2 layers, width 16, 128 positions.
    let shape = |name: &str| file.tensor(name).unwrap().shape.clone();
    assert_eq!(shape(WTE), [50261, 16]);
    assert_eq!(shape("transformer.wpe.weight"), [128, 16]);
    assert_eq!(shape("transformer.h.1.attn.c_attn.weight"), [16, 48]);
    assert_eq!(shape("transformer.h.1.mlp.c_fc.weight"), [16, 64]);
    assert_eq!(shape("transformer.h.1.mlp.c_proj.weight"), [64, 16]);
    assert_eq!(shape("transformer.ln_f.bias"), [16]);
    assert!(file.tensors().iter().all(|t| t.dtype == DType::F32));
    assert!(file.tensors().iter().all(|t| t.location == "cuda:0"));
    let (wte, head) = (file.tensor(WTE).unwrap(), file.tensor(HEAD).unwrap());
    assert!(wte.same_view(head));
    assert_eq!(wte.storage_key, "0");
    assert_eq!(file.read_f32(WTE).unwrap(), file.read_f32(HEAD).unwrap());
    let err = file.read_f32("transformer.h.2.ln_1.weight").unwrap_err();
    assert!(err.to_string().contains("no tensor named"), "{err}");
}

#[test]
fn chunked_reads_equal_whole_reads() {
    let file = TorchFile::open(standin()).unwrap();
    let whole = file.read_f32(WTE).unwrap();
    for chunk in [1, 7, 1000, usize::MAX] {
        let mut streamed = Vec::new();
        let mut largest = 0;
        file.read_f32_chunks(WTE, chunk, |c| {
            largest = largest.max(c.len());
            streamed.extend_from_slice(c);
        })
        .unwrap();
        assert_eq!(streamed, whole);
        assert!(largest <= chunk.min(CHUNK_ELEMENTS));
    }
    let mut short = vec![0.0; 3];
    let err = file.read_f32_into(WTE, &mut short).unwrap_err().to_string();
    assert!(err.contains(WTE) && err.contains("a buffer of 3"), "{err}");
}

#[test]
fn a_foreign_global_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let pickle = standin_pickle();
    // An extra entry whose value is os.system("true"), before the first real one.
    let at = pickle.iter().position(|&b| b == b'X').unwrap();
    let evil = [
        &b"X\x19\x00\x00\x00transformer.h.0.attn.bias"[..],
        b"cposix\nsystem\nX\x04\x00\x00\x00true\x85R",
    ]
    .concat();
    let pickle = [&pickle[..at], &evil, &pickle[at..]].concat();
    let path = with_pickle(dir.path(), "foreign.pt", pickle);
    assert_refused(
        &path,
        &[
            "data.pkl asks for global posix.system",
            "only a plain state dict",
        ],
    );
    let path = with_pickle(
        dir.path(),
        "builtins.pt",
        b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.".to_vec(),
    );
    assert_refused(&path, &["builtins.eval"]);
}

#[test]
fn a_truncated_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(standin()).unwrap();
    for (name, len) in [("half.pt", bytes.len() / 2), ("tail.pt", bytes.len() - 1)] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes[..len]).unwrap();
        assert_refused(&path, &["not a torch.save archive"]);
    }
    let path = dir.path().join("empty.pt");
    std::fs::write(&path, b"").unwrap();
    assert_refused(&path, &["not a torch.save archive"]);
}

#[test]
fn absurd_declared_sizes_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let pickle = standin_pickle();
    // wte's storage declares 2^40 elements (BININT 804176 -> LONG1 2^40).
    let storage = splice(
        &pickle,
        b"J\x50\x45\x0c\x00",
        b"\x8a\x06\x00\x00\x00\x00\x00\x01",
    );
    let path = with_pickle(dir.path(), "absurd-storage.pt", storage);
    assert_refused(
        &path,
        &[
            WTE,
            "storage 0 declares 1099511627776 f32 elements",
            "holds 3216704 bytes",
        ],
    );
    // wte declares size [2^31, 2^31], stride [2^31, 1] over its real storage.
    let big = b"\x8a\x05\x00\x00\x00\x80\x00";
    let size = [&big[..], big, b"\x86"].concat();
    let stride = [&big[..], b"K\x01\x86"].concat();
    let shape = splice(&pickle, b"M\x55\xc4K\x10\x86", &size);
    let shape = splice(
        &shape,
        b"K\x10K\x01\x86q\x0a",
        &[&stride[..], b"q\x0a"].concat(),
    );
    let path = with_pickle(dir.path(), "absurd-shape.pt", shape);
    assert_refused(
        &path,
        &[
            WTE,
            "size [2147483648, 2147483648]",
            "does not fit in storage 0",
        ],
    );
    // [2^62, 2^62]: the element count itself overflows.
    let huge = b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40";
    let overflow = splice(
        &pickle,
        b"M\x55\xc4K\x10\x86",
        &[&huge[..], huge, b"\x86"].concat(),
    );
    let path = with_pickle(dir.path(), "overflow.pt", overflow);
    assert_refused(&path, &[WTE, "overflows"]);
}

#[test]
fn the_element_limit_is_enforced() {
    let limits = Limits {
        max_tensor_elements: 1000,
        ..Limits::default()
    };
    let message = refusal(&standin(), &limits);
    assert!(
        message.contains(WTE) && message.contains("804176 elements, more than the limit of 1000"),
        "{message}"
    );
}

/// Builds protocol-2 pickles of state dicts the way torch.save writes them.
struct Writer(Vec<u8>);

/// One tensor to pickle: (name, storage type, key, storage numel, offset, size, stride).
type Spec<'a> = (&'a str, &'a str, &'a str, i64, i64, Vec<i64>, Vec<i64>);

impl Writer {
    fn str(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.as_bytes());
    }

    fn int(&mut self, v: i64) {
        self.0.push(0x8a);
        self.0.push(8);
        self.0.extend(v.to_le_bytes());
    }

    fn ints(&mut self, vs: &[i64]) {
        self.0.push(b'(');
        vs.iter().for_each(|&v| self.int(v));
        self.0.push(b't');
    }

    fn state_dict(specs: &[Spec]) -> Vec<u8> {
        let mut w = Writer(b"\x80\x02ccollections\nOrderedDict\n)R(".to_vec());
        for (name, storage, key, numel, offset, size, stride) in specs {
            w.str(name);
            w.0.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
            w.str("storage");
            w.0.extend(format!("ctorch\n{storage}\n").as_bytes());
            w.str(key);
            w.str("cpu");
            w.int(*numel);
            w.0.extend(b"tQ");
            w.int(*offset);
            w.ints(size);
            w.ints(stride);
            w.0.extend(b"\x89ccollections\nOrderedDict\n)RtR");
        }
        w.0.extend(b"u.");
        w.0
    }
}

/// The stand-in's own declarations, to re-pickle with one of them changed.
fn standin_specs() -> Vec<TensorRecord> {
    TorchFile::open(standin()).unwrap().tensors().to_vec()
}

fn specs_of(records: &[TensorRecord]) -> Vec<Spec<'_>> {
    records
        .iter()
        .map(|t| {
            let ints = |v: &[usize]| v.iter().map(|&x| x as i64).collect();
            (
                t.name.as_str(),
                t.dtype.storage_name(),
                t.storage_key.as_str(),
                t.storage_numel as i64,
                t.storage_offset as i64,
                ints(&t.shape),
                ints(&t.stride),
            )
        })
        .collect()
}

#[test]
fn hand_pickled_equals_the_standin() {
    let dir = tempfile::tempdir().unwrap();
    let records = standin_specs();
    let path = with_pickle(
        dir.path(),
        "hand.pt",
        Writer::state_dict(&specs_of(&records)),
    );
    let file = TorchFile::open(&path).unwrap();
    assert_matches_golden(&file, &golden(&fixture("standin-tensors.json")));
}

/// The stand-in re-pickled with the declaration of `name` changed by `edit`.
fn edited_declaration(dir: &Path, file: &str, name: &str, edit: impl FnOnce(&mut Spec)) -> PathBuf {
    let records = standin_specs();
    let mut specs = specs_of(&records);
    edit(specs.iter_mut().find(|s| s.0 == name).unwrap());
    with_pickle(dir, file, Writer::state_dict(&specs))
}

#[test]
fn bad_tensor_declarations_are_refused_by_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let c_attn = "transformer.h.0.attn.c_attn.weight";
    let path = edited_declaration(dir.path(), "strided.pt", c_attn, |s| s.6 = vec![1, 16]);
    assert_refused(&path, &[c_attn, "not contiguous", "stride [1, 16]"]);
    let path = edited_declaration(dir.path(), "offset.pt", c_attn, |s| s.4 = 1);
    assert_refused(&path, &[c_attn, "from offset 1 does not fit in storage"]);
    let path = edited_declaration(dir.path(), "numel.pt", c_attn, |s| s.3 += 1);
    assert_refused(&path, &[c_attn, "declares 769 f32 elements (3076 bytes)"]);
    let path = edited_declaration(dir.path(), "short.pt", c_attn, |s| s.3 -= 1);
    assert_refused(
        &path,
        &[c_attn, "does not fit in storage 4, which declares 767"],
    );
    let path = edited_declaration(dir.path(), "key.pt", c_attn, |s| s.2 = "99");
    assert_refused(&path, &[c_attn, "record standin/data/99 is missing"]);
    let path = edited_declaration(dir.path(), "dtype.pt", c_attn, |s| s.1 = "HalfStorage");
    assert_refused(&path, &[c_attn, "768 f16 elements (1536 bytes)"]);
    let path = edited_declaration(dir.path(), "negative.pt", c_attn, |s| s.5 = vec![-16, 48]);
    assert_refused(&path, &["data.pkl", "negative or non-integer size"]);
    let path = edited_declaration(dir.path(), "dims.pt", c_attn, |s| {
        (s.5, s.6) = (vec![1; 9], vec![1; 9])
    });
    assert_refused(&path, &["limit of 8 dimensions"]);
    let path = edited_declaration(dir.path(), "escape.pt", c_attn, |s| s.2 = "../0");
    assert_refused(&path, &["storage key that is not a plain name"]);
    let path = edited_declaration(dir.path(), "two-dtypes.pt", HEAD, |s| s.1 = "HalfStorage");
    assert_refused(&path, &["storage 0 declared as both f32 and f16"]);
    let path = edited_declaration(dir.path(), "class.pt", c_attn, |s| s.1 = "LongStorage");
    assert_refused(&path, &["asks for global torch.LongStorage"]);
}

#[test]
fn transposed_weights_are_read_with_their_declared_shape() {
    // wrong-shapes: a valid tensor, [48, 16]; refusing it is the importer's job (it knows the
    // expected shape), so the reader must report the shape faithfully.
    let dir = tempfile::tempdir().unwrap();
    let c_attn = "transformer.h.0.attn.c_attn.weight";
    let path = edited_declaration(dir.path(), "t.pt", c_attn, |s| {
        (s.5, s.6) = (vec![48, 16], vec![16, 1])
    });
    assert_eq!(
        TorchFile::open(&path)
            .unwrap()
            .tensor(c_attn)
            .unwrap()
            .shape,
        [48, 16]
    );
}

#[test]
fn every_dtype_reads_as_f32() {
    let dir = tempfile::tempdir().unwrap();
    let f16: Vec<u8> = [1.5f32, -2.0, 65504.0]
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = [1.5f32, -2.0, 3.0e38]
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let specs: Vec<Spec> = vec![
        ("h", "HalfStorage", "0", 3, 0, vec![3], vec![1]),
        ("b", "BFloat16Storage", "1", 3, 0, vec![3], vec![1]),
        (
            "m",
            "BoolStorage",
            "2",
            4,
            0,
            vec![1, 1, 2, 2],
            vec![4, 4, 2, 1],
        ),
        ("u", "ByteStorage", "3", 2, 1, vec![1], vec![1]),
        ("s", "FloatStorage", "4", 1, 0, vec![], vec![]),
        ("e", "FloatStorage", "4", 1, 1, vec![0, 5], vec![5, 1]),
    ];
    let entries = vec![
        ("x/data.pkl".to_string(), Writer::state_dict(&specs)),
        ("x/data/0".to_string(), f16),
        ("x/data/1".to_string(), bf16),
        ("x/data/2".to_string(), vec![1, 0, 1, 1]),
        ("x/data/3".to_string(), vec![7, 200]),
        ("x/data/4".to_string(), (-1e4f32).to_le_bytes().to_vec()),
    ];
    let file = TorchFile::open(write_archive(dir.path(), "dtypes.pt", &entries)).unwrap();
    let dtype = |n: &str| file.tensor(n).unwrap().dtype;
    assert_eq!(
        [dtype("h"), dtype("b"), dtype("m"), dtype("u")],
        [DType::F16, DType::BF16, DType::Bool, DType::U8]
    );
    assert_eq!(file.read_f32("h").unwrap(), [1.5, -2.0, 65504.0]);
    assert_eq!(
        file.read_f32("b").unwrap(),
        [1.5, -2.0, half::bf16::from_f32(3.0e38).to_f32()]
    );
    assert_eq!(file.read_f32("m").unwrap(), [1.0, 0.0, 1.0, 1.0]);
    assert_eq!(file.read_f32("u").unwrap(), [200.0]);
    assert_eq!(file.read_f32("s").unwrap(), [-1e4]);
    assert!(file.read_f32("e").unwrap().is_empty());
    assert_eq!(file.shared_storages().len(), 1);
}

#[test]
fn archive_level_problems_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = standin_edited(dir.path(), "big-endian.pt", |e| {
        e.iter_mut()
            .find(|(n, _)| n.ends_with("/byteorder"))
            .unwrap()
            .1 = b"big".to_vec();
    });
    assert_refused(&path, &["standin/byteorder", "byte order \"big\""]);
    let path = standin_edited(dir.path(), "no-pickle.pt", |e| {
        e.retain(|(n, _)| !n.ends_with("/data.pkl"))
    });
    assert_refused(&path, &["no <folder>/data.pkl"]);
    let path = standin_edited(dir.path(), "two-pickles.pt", |e| {
        e.push(("other/data.pkl".into(), vec![]))
    });
    assert_refused(&path, &["more than one data.pkl"]);
    let path = dir.path().join("legacy.pt");
    std::fs::write(&path, b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
    assert_refused(&path, &["before torch 1.6"]);
    let limits = Limits {
        max_pickle_bytes: 1000,
        ..Limits::default()
    };
    let message = refusal(&standin(), &limits);
    assert!(message.contains("standin/data.pkl: 4064 bytes, more than the limit of 1000"));
    assert_refused(Path::new("/nonexistent/x.pt"), &["cannot read it"]);
    assert_refused(Path::new("/tmp"), &["a folder, not a regular file"]);
}

#[test]
fn a_corrupted_record_fails_its_crc_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = standin_edited(dir.path(), "crc.pt", |e| {
        e.iter_mut().find(|(n, _)| n == "standin/data/5").unwrap().1[7] ^= 1;
    });
    // Rewriting the archive recomputes CRCs: flip the byte in the written file instead.
    let mut bytes = std::fs::read(&path).unwrap();
    let good = standin_entries()
        .into_iter()
        .find(|(n, _)| n == "standin/data/5")
        .unwrap()
        .1;
    let mut archive = ZipArchive::new(File::open(&path).unwrap()).unwrap();
    let start = archive
        .by_name("standin/data/5")
        .unwrap()
        .data_start()
        .unwrap() as usize;
    bytes[start + 7] = good[7];
    std::fs::write(&path, bytes).unwrap();
    let file = TorchFile::open(&path).unwrap();
    let name = "transformer.h.0.attn.c_attn.bias";
    assert_eq!(file.tensor(name).unwrap().storage_key, "5");
    let err = file.read_f32(name).unwrap_err().to_string();
    assert!(err.contains(name) && err.contains("checksum"), "{err}");
}

fn parse(bytes: &[u8]) -> Result<Vec<TensorRecord>, PickleError> {
    parse_state_dict(bytes, &Limits::default())
}

#[test]
fn pickles_outside_a_plain_state_dict_are_refused() {
    let cases: [(&[u8], &str); 12] = [
        (b"\x80\x02}q\x00h\x00.", "a dict shared through the memo"),
        (b"\x80\x02]q\x00h\x00.", "a list shared through the memo"),
        (b"\x80\x02(cos\nsystem\ni.", "asks for global os.system"),
        (b"\x80\x02(X\x01\x00\x00\x00ai.", "opcode INST (0x69)"),
        (
            b"\x80\x02K\x01K\x02\x93.",
            "STACK_GLOBAL of values that are not strings",
        ),
        (
            b"\x80\x04\x8c\x02nt\x94\x8c\x06system\x94\x93.",
            "asks for global nt.system",
        ),
        (
            b"\x80\x02}X\x01\x00\x00\x00aK\x01s.",
            "entry \"a\" is an int, not a tensor",
        ),
        (b"\x80\x02X\x05\x00\x00\x00ab", "ends at byte 2"),
        (b"\x80\x02K\x01.", "holds an int"),
        (b"\x80\x02}..", "bytes after STOP"),
        (b"\x80\x02K\x01K\x02.", "2 values on the stack"),
        (b"\x80\x06}.", "PROTO 6"),
    ];
    for (bytes, needle) in cases {
        let message = parse(bytes).unwrap_err().to_string();
        assert!(
            message.contains(needle),
            "{bytes:?}: {message:?} lacks {needle:?}"
        );
    }
    // BUILD may only give the root its _metadata.
    let build = b"\x80\x02ccollections\nOrderedDict\n)R}X\x03\x00\x00\x00fooK\x01sb.";
    let message = parse(build).unwrap_err().to_string();
    assert!(message.contains("other than _metadata"), "{message}");
    let duplicate = [
        &b"\x80\x02}("[..],
        &tensor_entry("a"),
        &tensor_entry("a"),
        b"u.",
    ]
    .concat();
    assert!(parse(&duplicate)
        .unwrap_err()
        .to_string()
        .contains("\"a\" appears twice"));
}

fn tensor_entry(name: &str) -> Vec<u8> {
    let mut one = Writer::state_dict(&[(name, "FloatStorage", "0", 1, 0, vec![1], vec![1])]);
    let start = b"\x80\x02ccollections\nOrderedDict\n)R(".len();
    one.truncate(one.len() - 2);
    one.split_off(start)
}

#[test]
fn nesting_and_sizes_are_bounded() {
    // A million nested 1-tuples: refused at the nesting limit, never a deep recursion.
    let mut deep = b"\x80\x02K\x00".to_vec();
    deep.extend(std::iter::repeat_n(0x85u8, 1_000_000));
    deep.push(b'.');
    assert!(parse(&deep)
        .unwrap_err()
        .to_string()
        .contains("levels of nesting"));
    let marks = [&b"\x80\x02"[..], &[b'('; 100], b"."].concat();
    assert!(parse(&marks)
        .unwrap_err()
        .to_string()
        .contains("nested MARKs"));
    let wide = [&b"\x80\x02"[..], &b"N".repeat(70_000), b"."].concat();
    assert!(parse(&wide)
        .unwrap_err()
        .to_string()
        .contains("values on the stack"));
    let long = b"\x80\x02X\xff\xff\xff\xff.";
    assert!(parse(long)
        .unwrap_err()
        .to_string()
        .contains("bytes in one string"));
    let memo = [
        &b"\x80\x02N"[..],
        &(0..300_000u32).flat_map(memo_put).collect::<Vec<_>>(),
        b".",
    ]
    .concat();
    assert!(parse(&memo)
        .unwrap_err()
        .to_string()
        .contains("memo entries"));
    let int = b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.";
    assert!(parse(int)
        .unwrap_err()
        .to_string()
        .contains("bytes in one integer"));
}

fn memo_put(i: u32) -> Vec<u8> {
    let mut op = vec![b'r'];
    op.extend(i.to_le_bytes());
    op
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
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
        let _ = parse(&[&b"\x80\x02"[..], &bytes].concat());
    }

    #[test]
    fn mutated_standin_pickles_never_panic(
        edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..6)
    ) {
        let mut pickle = standin_pickle();
        for (kind, at, byte) in edits {
            mutate(&mut pickle, kind, at, byte);
        }
        if let Ok(records) = parse(&pickle) {
            prop_assert!(records.len() <= Limits::default().max_tensors);
            for r in &records {
                prop_assert_eq!(r.shape.len(), r.stride.len());
                let _ = check_tensor(r, &Limits::default());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Mutated pickles, and mutated zip headers and directory, through the whole reader: a
    /// refusal or a file whose every tensor reads; never a panic.
    #[test]
    fn mutated_files_never_panic(
        pickle_edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..4),
        file_edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        at_end in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut pickle = standin_pickle();
        for (kind, at, byte) in pickle_edits {
            mutate(&mut pickle, kind, at, byte);
        }
        let path = with_pickle(dir.path(), "m.pt", pickle);
        let mut bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        for (at, byte) in file_edits {
            // The zip's own structures: the first entries' headers or the central directory.
            let at = if at_end { len - 1 - at % 4096.min(len) } else { at % 8192.min(len) };
            bytes[at] = byte;
        }
        std::fs::write(&path, bytes).unwrap();
        if let Ok(file) = TorchFile::open(&path) {
            for t in file.tensors() {
                if let Ok(values) = file.read_f32(&t.name) {
                    prop_assert_eq!(values.len(), t.numel());
                }
            }
        }
    }
}

/// The Python variants (docs/seed-format.md section 11), made with
/// `.venv-bench/bin/python scripts/seed_standin.py --variant all --out DIR/x.pt`, and for the
/// accepted ones `scripts/pt_dump.py DIR/<v>.pt --out DIR/<v>.json`. Every `.pt` in DIR not in
/// the refused table must be accepted and, where a `.json` sits beside it, equal torch's load
/// (so other torch.save files can be checked by dropping them in). Prints what happened to each.
#[test]
#[ignore = "needs TORCH_VARIANTS_DIR with the Python-made variants"]
fn python_variants() {
    let dir = PathBuf::from(std::env::var("TORCH_VARIANTS_DIR").expect("TORCH_VARIANTS_DIR"));
    let refused = [
        ("foreign-global", "asks for global posix.system"),
        ("truncated", "not a torch.save archive"),
        ("absurd-shape", "does not fit in storage 0"),
        ("absurd-storage", "declares 1099511627776 f32 elements"),
    ];
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pt"))
        .collect();
    files.sort();
    let stem = |p: &Path| p.file_stem().unwrap().to_string_lossy().into_owned();
    let stems: Vec<String> = files.iter().map(|p| stem(p)).collect();
    for v in [
        "standin",
        "legacy-buffers",
        "untied-equal",
        "untied-head",
        "wrong-shapes",
    ]
    .into_iter()
    .chain(["bf16", "hand-pickled"])
    .chain(refused.iter().map(|r| r.0))
    {
        assert!(
            stems.iter().any(|s| s == v),
            "{v}.pt missing in {}",
            dir.display()
        );
    }
    for path in &files {
        let v = stem(path);
        if let Some((_, needle)) = refused.iter().find(|r| r.0 == v) {
            let message = refusal(path, &Limits::default());
            eprintln!("{v}: refused: {message}");
            assert!(message.contains(needle), "{message}");
            continue;
        }
        let file = TorchFile::open(path).unwrap();
        let tie = file
            .tensor(WTE)
            .unwrap()
            .same_view(file.tensor(HEAD).unwrap());
        let c_attn = &file
            .tensor("transformer.h.0.attn.c_attn.weight")
            .unwrap()
            .shape;
        let json = path.with_extension("json");
        if json.exists() {
            assert_matches_golden(&file, &golden(&json));
        }
        eprintln!(
            "{v}: accepted, {} tensors, {} first, head tied {tie}, c_attn {c_attn:?}{}",
            file.tensors().len(),
            file.tensors()[0].dtype,
            if json.exists() {
                ", values equal torch's"
            } else {
                ""
            }
        );
    }
}
