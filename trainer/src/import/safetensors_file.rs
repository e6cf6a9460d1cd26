//! A safetensors file read tensor by tensor: the header first (bounded), then each tensor's
//! bytes from its own offset, so importing a 3 GB checkpoint never holds more than one tensor.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The largest header read (a GPT-2-large header is about 40 KB).
const MAX_HEADER: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("{file}: {reason}")]
    Format { file: String, reason: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
}

/// One tensor's place in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Byte range within the data section (after the header).
    pub start: u64,
    pub end: u64,
}

#[derive(serde::Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// An open safetensors file.
pub struct SafetensorsFile {
    path: PathBuf,
    file: File,
    data_start: u64,
    pub entries: BTreeMap<String, Entry>,
}

impl SafetensorsFile {
    /// Reads and checks the header: every tensor's range inside the file, its size its dtype
    /// times its shape, no two ranges overlapping.
    pub fn open(path: &Path) -> Result<SafetensorsFile, SafetensorsError> {
        let name = path.display().to_string();
        let format = |reason: String| SafetensorsError::Format {
            file: name.clone(),
            reason,
        };
        let io = |source| SafetensorsError::Io {
            file: name.clone(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut word = [0u8; 8];
        file.read_exact(&mut word)
            .map_err(|_| format("shorter than a safetensors header".into()))?;
        let header_len = u64::from_le_bytes(word);
        if header_len > MAX_HEADER || 8 + header_len > len {
            return Err(format(format!(
                "declares a {header_len}-byte header in a {len}-byte file"
            )));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(io)?;
        let raw: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
            .map_err(|e| format(format!("header is not JSON: {e}")))?;
        let data_start = 8 + header_len;
        let mut entries = BTreeMap::new();
        for (key, value) in raw {
            if key == "__metadata__" {
                continue;
            }
            let e: RawEntry =
                serde_json::from_value(value).map_err(|e| format(format!("tensor {key}: {e}")))?;
            let [start, end] = e.data_offsets;
            let elements = e
                .shape
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(d as u64));
            let bytes = elements.and_then(|n| n.checked_mul(dtype_size(&e.dtype)?));
            if bytes != end.checked_sub(start) || data_start + end > len {
                return Err(format(format!(
                    "tensor {key} ({} {:?}) does not fit its range {start}..{end} of a \
                     {}-byte data section",
                    e.dtype,
                    e.shape,
                    len - data_start
                )));
            }
            let entry = Entry {
                dtype: e.dtype,
                shape: e.shape,
                start,
                end,
            };
            entries.insert(key, entry);
        }
        let mut ranges: Vec<(u64, u64, &String)> =
            entries.iter().map(|(k, e)| (e.start, e.end, k)).collect();
        ranges.sort();
        if let Some(w) = ranges.windows(2).find(|w| w[1].0 < w[0].1) {
            return Err(format(format!("tensors {} and {} overlap", w[0].2, w[1].2)));
        }
        Ok(SafetensorsFile {
            path: path.to_path_buf(),
            file,
            data_start,
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor `name` in f32 (F32, F16 and BF16 stored values; other dtypes refused by name).
    pub fn read_f32(&mut self, name: &str) -> Result<Vec<f32>, SafetensorsError> {
        let file = self.path.display().to_string();
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| SafetensorsError::Format {
                file: file.clone(),
                reason: format!("has no tensor {name}"),
            })?
            .clone();
        let mut bytes = vec![0u8; (entry.end - entry.start) as usize];
        self.file
            .seek(SeekFrom::Start(self.data_start + entry.start))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|source| SafetensorsError::Io {
                file: file.clone(),
                source,
            })?;
        let halves = |f: fn(u16) -> f32| {
            bytes
                .chunks_exact(2)
                .map(|b| f(u16::from_le_bytes([b[0], b[1]])))
                .collect()
        };
        Ok(match entry.dtype.as_str() {
            "F32" => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            "F16" => halves(|h| half::f16::from_bits(h).to_f32()),
            "BF16" => halves(|h| half::bf16::from_bits(h).to_f32()),
            other => {
                return Err(SafetensorsError::Format {
                    file,
                    reason: format!("tensor {name} is stored as {other}, not a float type"),
                })
            }
        })
    }
}

/// Bytes per element of a safetensors dtype name.
fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, header: &str, data: &[u8]) -> PathBuf {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_each_tensor_from_its_range_and_refuses_what_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let values = [1.5f32, -2.0, 0.25];
        let mut data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        data.extend_from_slice(&half::f16::from_f32(3.0).to_bits().to_le_bytes());
        let header = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F16","shape":[1],"data_offsets":[12,14]}}"#;
        let path = write(dir.path(), "ok.safetensors", header, &data);
        let mut file = SafetensorsFile::open(&path).unwrap();
        assert_eq!(file.read_f32("a").unwrap(), values);
        assert_eq!(file.read_f32("b").unwrap(), [3.0]);
        let missing = file.read_f32("c").unwrap_err().to_string();
        assert!(missing.contains("ok.safetensors") && missing.contains("no tensor c"));
        for (header, why) in [
            (
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}"#,
                "does not fit",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                "overlap",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,12]}}"#,
                "does not fit",
            ),
            (r#"not json"#, "not JSON"),
        ] {
            let path = write(dir.path(), "bad.safetensors", header, &data);
            let err = SafetensorsFile::open(&path).err().expect(why).to_string();
            assert!(
                err.contains("bad.safetensors") && err.contains(why),
                "{err}"
            );
        }
        let path = dir.path().join("huge.safetensors");
        std::fs::write(&path, u64::MAX.to_le_bytes()).unwrap();
        let err = SafetensorsFile::open(&path).err().unwrap().to_string();
        assert!(err.contains("-byte header in a 8-byte file"), "{err}");
    }
}
