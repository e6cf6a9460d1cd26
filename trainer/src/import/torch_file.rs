//! A safe, bounded reader of `torch.save(state_dict)` files (`.pt`), for importing checkpoints
//! that nobody here produced (issue 31; the format is docs/seed-format.md section 10).
//!
//! # The format
//! Since torch 1.6 a `.pt` file is a zip archive whose entries sit in one folder named after the
//! file's stem at save time: `<stem>/data.pkl`, a pickle of the state dict, and one record
//! `<stem>/data/<key>` per storage holding its raw little-endian elements; small records
//! (`byteorder`, `version`, ...) vary with the torch version. In the pickle, each tensor is a call
//! of `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`
//! whose storage is a persistent id `("storage", torch.FloatStorage, key, location, numel)`;
//! tensors that share memory (a tied LM head) name the same key.
//!
//! # The safety rules
//! A `.pt` is untrusted input. Loading one in Python runs whatever its pickle asks for; here:
//! - no pickle is ever executed: [`parse_state_dict`] interprets only the opcodes a plain state dict
//!   uses and only its globals (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, and
//!   the storage types of the dtypes in [`DType`]); anything else is refused by its name;
//! - everything the input declares is bounded ([`Limits`]) and checked before memory is taken: the
//!   size of `data.pkl` (from the zip directory, then while reading), the unpickler's stack, memo,
//!   nesting and value count, every tensor's dimensions, contiguity and extent inside its storage,
//!   every storage's byte size against its record (equal, exactly), and a tensor's element count
//!   against [`Limits::max_tensor_elements`];
//! - tensors are streamed from their records one at a time, so memory stays at one tensor (or one
//!   chunk of it with [`TorchFile::read_f32_chunks`]), never the file; each read goes to the end of
//!   the record so that the zip reader checks the record's CRC;
//! - only stored (uncompressed) entries are read, as torch writes them: no decompressor runs;
//! - every error names the file, and the tensor or entry where there is one.

mod unpickle;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;

use zip::{CompressionMethod, ZipArchive};

pub use unpickle::{parse_state_dict, PickleError};

/// The element types a state dict of a GPT-2 may hold (weights in f32, f16 or bf16; the causal
/// mask buffers older transformers saved as bool or u8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    Bool,
    U8,
}

impl DType {
    /// Bytes per element in a storage record.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Bool | DType::U8 => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::Bool => "bool",
            DType::U8 => "u8",
        }
    }

    /// The `torch.<name>` storage type that declares this dtype in the pickle.
    pub fn storage_name(self) -> &'static str {
        match self {
            DType::F32 => "FloatStorage",
            DType::F16 => "HalfStorage",
            DType::BF16 => "BFloat16Storage",
            DType::Bool => "BoolStorage",
            DType::U8 => "ByteStorage",
        }
    }

    fn from_storage_name(name: &str) -> Option<DType> {
        [DType::F32, DType::F16, DType::BF16, DType::Bool, DType::U8]
            .into_iter()
            .find(|d| d.storage_name() == name)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Bounds on what a file may declare. The defaults fit any GPT-2 (GPT-2-xl's largest tensor is
/// 80M elements; GPT-2-large's pickle is about 50 KB) with a wide margin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Size of `data.pkl`.
    pub max_pickle_bytes: u64,
    /// Entries of the state dict.
    pub max_tensors: usize,
    /// Dimensions of one tensor.
    pub max_dims: usize,
    /// Elements of one tensor: what [`TorchFile::read_f32`] may allocate (times 4 bytes).
    pub max_tensor_elements: usize,
    /// Values on the unpickler's stack at once.
    pub max_stack: usize,
    /// Open MARKs at once.
    pub max_marks: usize,
    /// Memo entries.
    pub max_memo: usize,
    /// Values the unpickler builds in all (each costs a few dozen bytes).
    pub max_values: usize,
    /// Levels of containers inside containers (at most 255).
    pub max_nesting: usize,
    /// Bytes of one string (a tensor name, a storage key).
    pub max_string_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_pickle_bytes: 16 << 20,
            max_tensors: 65_536,
            max_dims: 8,
            max_tensor_elements: 1 << 30,
            max_stack: 1 << 16,
            max_marks: 64,
            max_memo: 1 << 18,
            max_values: 1 << 21,
            max_nesting: 16,
            max_string_bytes: 1 << 12,
        }
    }
}

/// One entry of the state dict, as declared and checked at [`TorchFile::open`]: contiguous,
/// inside its storage, its storage the exact size of its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRecord {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// In elements, as torch writes it.
    pub stride: Vec<usize>,
    /// The storage's key: its bytes are the record `<archive>/data/<key>`.
    pub storage_key: String,
    /// In elements of `dtype`.
    pub storage_offset: usize,
    /// Elements the storage declares (its record holds exactly this many).
    pub storage_numel: usize,
    /// The device it was saved from (`cpu`, `cuda:0`); informative only.
    pub location: String,
}

impl TensorRecord {
    /// Elements of the tensor (checked not to overflow when the file was opened).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when both are the same memory: one storage, offset, shape, stride and dtype (the
    /// tied head: `lm_head.weight` and `transformer.wte.weight`).
    pub fn same_view(&self, other: &TensorRecord) -> bool {
        self.storage_key == other.storage_key
            && self.storage_offset == other.storage_offset
            && self.shape == other.shape
            && self.stride == other.stride
            && self.dtype == other.dtype
    }
}

/// Why a `.pt` file was refused or could not be read. Every message starts with the file.
#[derive(Debug, thiserror::Error)]
pub enum TorchFileError {
    #[error("{file}: cannot read it: {reason}")]
    Io { file: String, reason: String },
    #[error("{file}: not a torch.save archive (truncated, or not a .pt file?): {reason}")]
    NotArchive { file: String, reason: String },
    #[error("{file}: {reason}")]
    Format { file: String, reason: String },
    #[error("{file}: data.pkl {reason}")]
    Pickle { file: String, reason: PickleError },
    #[error("{file}: entry {entry}: {reason}")]
    Entry {
        file: String,
        entry: String,
        reason: String,
    },
    #[error("{file}: tensor {name:?}: {reason}")]
    Tensor {
        file: String,
        name: String,
        reason: String,
    },
    #[error("{file}: no tensor named {name:?}")]
    NoSuchTensor { file: String, name: String },
}

/// An opened, checked `.pt` file: its tensors are known and valid; their values are read on
/// demand, one at a time.
pub struct TorchFile {
    file: String,
    /// The reads seek in one file handle; a lock lets them take `&self`.
    archive: Mutex<ZipArchive<BufReader<File>>>,
    tensors: Vec<TensorRecord>,
    by_name: HashMap<String, usize>,
    /// Storage key -> index of its record in the archive.
    records: HashMap<String, usize>,
}

/// How many elements a chunked read converts at once by default.
const CHUNK_ELEMENTS: usize = 1 << 16;

impl TorchFile {
    /// Opens and checks `path` with the default [`Limits`].
    pub fn open(path: impl AsRef<Path>) -> Result<TorchFile, TorchFileError> {
        TorchFile::open_with_limits(path, &Limits::default())
    }

    /// Opens `path`, parses its `data.pkl` and checks every tensor and storage declaration
    /// against the archive and `limits`; no tensor data is read.
    pub fn open_with_limits(
        path: impl AsRef<Path>,
        limits: &Limits,
    ) -> Result<TorchFile, TorchFileError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let (mut archive, file_len) = open_archive(path, &file)?;
        let (prefix, pickle_index) = find_pickle(&archive, &file)?;
        check_byteorder(&mut archive, &prefix, &file, file_len)?;
        let pickle = read_small(
            &mut archive,
            pickle_index,
            limits.max_pickle_bytes,
            file_len,
            &file,
        )?;
        let tensors =
            parse_state_dict(&pickle, limits).map_err(|reason| TorchFileError::Pickle {
                file: file.clone(),
                reason,
            })?;
        drop(pickle);
        for tensor in &tensors {
            check_tensor(tensor, limits).map_err(|reason| TorchFileError::Tensor {
                file: file.clone(),
                name: tensor.name.clone(),
                reason,
            })?;
        }
        let records = locate_storages(&archive, &prefix, &tensors, file_len, &file)?;
        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(TorchFile {
            file,
            archive: Mutex::new(archive),
            tensors,
            by_name,
            records,
        })
    }

    /// The file's path as the error messages write it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Every tensor, in the file's order.
    pub fn tensors(&self) -> &[TensorRecord] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorRecord, TorchFileError> {
        self.by_name
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| TorchFileError::NoSuchTensor {
                file: self.file.clone(),
                name: name.to_string(),
            })
    }

    /// The groups of tensors that share a storage (two or more names each), in the file's order.
    /// Sharing a storage is not yet a tie: compare the views with [`TensorRecord::same_view`].
    pub fn shared_storages(&self) -> Vec<Vec<&TensorRecord>> {
        let mut groups: Vec<Vec<&TensorRecord>> = Vec::new();
        let mut group_of: HashMap<&str, usize> = HashMap::new();
        for tensor in &self.tensors {
            match group_of.get(tensor.storage_key.as_str()) {
                Some(&g) => groups[g].push(tensor),
                None => {
                    group_of.insert(&tensor.storage_key, groups.len());
                    groups.push(vec![tensor]);
                }
            }
        }
        groups.retain(|g| g.len() > 1);
        groups
    }

    /// The tensor's values as f32, in row-major order. f16 and bf16 are widened (exactly: every
    /// f16 and bf16 value is an f32), bool reads as 0.0 / 1.0 and u8 as its value; callers that
    /// must refuse a dtype check [`TensorRecord::dtype`] first. Allocates the tensor once
    /// (at most [`Limits::max_tensor_elements`] elements, checked at open).
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, TorchFileError> {
        let mut out = vec![0f32; self.tensor(name)?.numel()];
        self.read_f32_into(name, &mut out)?;
        Ok(out)
    }

    /// [`TorchFile::read_f32`] into a caller's buffer of exactly the tensor's element count.
    pub fn read_f32_into(&self, name: &str, out: &mut [f32]) -> Result<(), TorchFileError> {
        let numel = self.tensor(name)?.numel();
        if out.len() != numel {
            return Err(self.tensor_error(
                name,
                format!("a buffer of {} elements for {numel}", out.len()),
            ));
        }
        let mut filled = 0;
        self.read_f32_chunks(name, CHUNK_ELEMENTS, |chunk| {
            out[filled..filled + chunk.len()].copy_from_slice(chunk);
            filled += chunk.len();
        })
    }

    /// Streams the tensor's values as f32 (converted as [`TorchFile::read_f32`] does) in chunks
    /// of at most `chunk_elements`, in order: memory stays at one chunk whatever the tensor.
    pub fn read_f32_chunks(
        &self,
        name: &str,
        chunk_elements: usize,
        mut each: impl FnMut(&[f32]),
    ) -> Result<(), TorchFileError> {
        let tensor = self.tensor(name)?;
        let index = self.records[&tensor.storage_key];
        let element = tensor.dtype.size_bytes();
        let chunk = chunk_elements.clamp(1, CHUNK_ELEMENTS);
        let mut archive = self.archive.lock().unwrap_or_else(|e| e.into_inner());
        let mut entry = archive
            .by_index(index)
            .map_err(|e| self.entry_error(tensor, e.to_string()))?;
        let io = |e: io::Error| self.entry_error(tensor, e.to_string());
        skip(&mut entry, (tensor.storage_offset * element) as u64).map_err(io)?;
        let mut raw = vec![0u8; chunk * element];
        let mut values = Vec::with_capacity(chunk);
        let mut left = tensor.numel();
        while left > 0 {
            let n = left.min(chunk);
            entry.read_exact(&mut raw[..n * element]).map_err(io)?;
            values.clear();
            widen(tensor.dtype, &raw[..n * element], &mut values);
            each(&values);
            left -= n;
        }
        // Reading to the end makes the zip reader compare the record's CRC.
        io::copy(&mut entry, &mut io::sink()).map_err(io)?;
        Ok(())
    }

    fn tensor_error(&self, name: &str, reason: String) -> TorchFileError {
        TorchFileError::Tensor {
            file: self.file.clone(),
            name: name.to_string(),
            reason,
        }
    }

    fn entry_error(&self, tensor: &TensorRecord, reason: String) -> TorchFileError {
        self.tensor_error(
            &tensor.name,
            format!("reading storage {}: {reason}", tensor.storage_key),
        )
    }
}

/// The byte length of a record this reader can stream: stored, not encrypted, no larger than
/// the file that holds it. A macro because the zip crate's entry types share these methods
/// without a trait.
macro_rules! stored_size {
    ($entry:expr, $file_len:expr) => {{
        let entry = &$entry;
        let (size, stored, file_len) = (entry.size(), entry.compressed_size(), $file_len);
        if entry.compression() != CompressionMethod::Stored {
            Err(format!(
                "compressed ({}): torch.save writes stored entries, and no decompressor is \
                 used here",
                entry.compression()
            ))
        } else if entry.encrypted() {
            Err("encrypted".to_string())
        } else if size != stored || size > file_len {
            Err(format!(
                "declares {size} bytes ({stored} stored) in a file of {file_len}"
            ))
        } else {
            Ok(size)
        }
    }};
}

fn skip(reader: &mut impl Read, bytes: u64) -> io::Result<()> {
    let skipped = io::copy(&mut reader.take(bytes), &mut io::sink())?;
    if skipped != bytes {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the record ends before the tensor starts",
        ));
    }
    Ok(())
}

/// Little-endian elements of `dtype` to f32.
fn widen(dtype: DType, raw: &[u8], out: &mut Vec<f32>) {
    match dtype {
        DType::F32 => out.extend(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        DType::F16 => out.extend(
            raw.chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        DType::BF16 => out.extend(
            raw.chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        DType::Bool => out.extend(raw.iter().map(|&b| if b != 0 { 1.0 } else { 0.0 })),
        DType::U8 => out.extend(raw.iter().map(|&b| f32::from(b))),
    }
}

fn open_archive(
    path: &Path,
    file: &str,
) -> Result<(ZipArchive<BufReader<File>>, u64), TorchFileError> {
    let io = |e: io::Error| TorchFileError::Io {
        file: file.to_string(),
        reason: e.to_string(),
    };
    let (mut handle, len) = coconut_core::files::open_regular(path, true).map_err(io)?;
    let mut magic = [0u8; 2];
    let sniffed = handle.read(&mut magic).map_err(io)?;
    if sniffed >= 1 && magic[0] == 0x80 {
        return Err(TorchFileError::Format {
            file: file.to_string(),
            reason: "a bare pickle, the format torch.save wrote before torch 1.6: load it in \
                     torch and save it again"
                .to_string(),
        });
    }
    handle.seek(SeekFrom::Start(0)).map_err(io)?;
    let archive =
        ZipArchive::new(BufReader::new(handle)).map_err(|e| TorchFileError::NotArchive {
            file: file.to_string(),
            reason: e.to_string(),
        })?;
    if archive.has_duplicate_names() {
        return Err(format_error(file, "two zip entries have the same name"));
    }
    Ok((archive, len))
}

/// The one `<folder>/data.pkl` entry; its folder holds every other record.
fn find_pickle<R: Read + Seek>(
    archive: &ZipArchive<R>,
    file: &str,
) -> Result<(String, usize), TorchFileError> {
    let mut found = None;
    for (index, name) in archive.file_names_raw().enumerate() {
        let Some(prefix) = name.strip_suffix(b"/data.pkl") else {
            continue;
        };
        if prefix.is_empty() || prefix.contains(&b'/') {
            continue;
        }
        if found.is_some() {
            return Err(format_error(file, "more than one data.pkl"));
        }
        let prefix = std::str::from_utf8(prefix)
            .map_err(|_| format_error(file, "the archive's folder name is not UTF-8"))?;
        found = Some((prefix.to_string(), index));
    }
    found.ok_or_else(|| {
        format_error(
            file,
            "no <folder>/data.pkl entry: not a torch.save state dict",
        )
    })
}

/// Older archives and hand-written ones have no `byteorder` record: torch then assumes little
/// endian, as this reader does; a big-endian file is refused rather than byte-swapped.
fn check_byteorder(
    archive: &mut ZipArchive<BufReader<File>>,
    prefix: &str,
    file: &str,
    file_len: u64,
) -> Result<(), TorchFileError> {
    let name = format!("{prefix}/byteorder");
    let Some(index) = archive.index_for_name_raw(name.as_bytes()) else {
        return Ok(());
    };
    let order = read_small(archive, index, 16, file_len, file)?;
    if order != b"little" {
        return Err(TorchFileError::Entry {
            file: file.to_string(),
            entry: name,
            reason: format!(
                "byte order {:?}: only little-endian files are read",
                String::from_utf8_lossy(&order)
            ),
        });
    }
    Ok(())
}

/// A whole small record, refused from the zip directory when over `cap`, and read through a
/// `take` in case the directory lies.
fn read_small(
    archive: &mut ZipArchive<BufReader<File>>,
    index: usize,
    cap: u64,
    file_len: u64,
    file: &str,
) -> Result<Vec<u8>, TorchFileError> {
    let entry_error = |entry: String, reason: String| TorchFileError::Entry {
        file: file.to_string(),
        entry,
        reason,
    };
    let mut entry = archive
        .by_index(index)
        .map_err(|e| entry_error(format!("#{index}"), e.to_string()))?;
    let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
    let size = stored_size!(entry, file_len).map_err(|r| entry_error(name.clone(), r))?;
    if size > cap {
        return Err(entry_error(
            name,
            format!("{size} bytes, more than the limit of {cap}"),
        ));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    (&mut entry)
        .take(size)
        .read_to_end(&mut bytes)
        .map_err(|e| entry_error(name.clone(), e.to_string()))?;
    if bytes.len() as u64 != size {
        return Err(entry_error(
            name,
            "shorter than the zip directory says".into(),
        ));
    }
    io::copy(&mut entry, &mut io::sink()).map_err(|e| entry_error(name, e.to_string()))?;
    Ok(bytes)
}

/// Contiguous (torch's rule: dimensions of size 1 may have any stride), no overflow, inside the
/// declared storage, within the element limit; all from declarations, before any read.
fn check_tensor(tensor: &TensorRecord, limits: &Limits) -> Result<(), String> {
    let shape = &tensor.shape;
    let numel = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("size {shape:?}: its element count overflows"))?;
    let end = tensor.storage_offset.checked_add(numel);
    if end.is_none_or(|end| end > tensor.storage_numel) {
        return Err(format!(
            "size {shape:?} from offset {} does not fit in storage {}, which declares {} elements",
            tensor.storage_offset, tensor.storage_key, tensor.storage_numel
        ));
    }
    if numel > limits.max_tensor_elements {
        return Err(format!(
            "{numel} elements, more than the limit of {}",
            limits.max_tensor_elements
        ));
    }
    if numel > 0 {
        let mut expected = 1usize;
        for (&size, &stride) in shape.iter().zip(&tensor.stride).rev() {
            if size != 1 && stride != expected {
                return Err(format!(
                    "not contiguous: size {shape:?} with stride {:?}",
                    tensor.stride
                ));
            }
            expected *= size;
        }
    }
    Ok(())
}

/// Finds each storage's record and checks that it holds exactly the declared elements (so that
/// no declaration is trusted for how much to read). Every tensor's own declaration is checked:
/// a file may declare one storage once per tensor on it.
fn locate_storages<R: Read + Seek>(
    archive: &ZipArchive<R>,
    prefix: &str,
    tensors: &[TensorRecord],
    file_len: u64,
    file: &str,
) -> Result<HashMap<String, usize>, TorchFileError> {
    let mut records = HashMap::new();
    for tensor in tensors {
        let fail = |reason: String| TorchFileError::Tensor {
            file: file.to_string(),
            name: tensor.name.clone(),
            reason,
        };
        let entry = format!("{prefix}/data/{}", tensor.storage_key);
        let index = match records.get(&tensor.storage_key) {
            Some(&index) => index,
            None => archive
                .index_for_name_raw(entry.as_bytes())
                .ok_or_else(|| fail(format!("its storage's record {entry} is missing")))?,
        };
        let data = archive
            .by_index_data(index)
            .map_err(|e| fail(format!("record {entry}: {e}")))?;
        let size =
            stored_size!(data, file_len).map_err(|r| fail(format!("record {entry}: {r}")))?;
        let declared = (tensor.storage_numel as u64).checked_mul(tensor.dtype.size_bytes() as u64);
        if declared != Some(size) {
            return Err(fail(format!(
                "storage {} declares {} {} elements ({} bytes) but its record {entry} holds \
                 {size} bytes",
                tensor.storage_key,
                tensor.storage_numel,
                tensor.dtype,
                declared.map_or("more than 2^64".to_string(), |b| b.to_string()),
            )));
        }
        records.insert(tensor.storage_key.clone(), index);
    }
    Ok(records)
}

fn format_error(file: &str, reason: &str) -> TorchFileError {
    TorchFileError::Format {
        file: file.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests;
