//! Stage weight files: safetensors with GPT-2's tensor names and layouts, in f32, f16 or int8.
//!
//! One tensor per place of the model's tree ([`crate::skeleton`]), under its GPT-2 name.
//! LayerNorm parameters and biases are always f32.
//! Matmul and embedding weights may be f16, or int8 symmetric per output row with one f16 scale
//! per row in `{name}.scale`: `w = q * scale`, `scale = max|row| / 127`. The output row of an
//! embedding is a table row; of a Conv1D weight, a column.

use crate::config::ModelConfig;
use crate::skeleton::{tensor_specs, Role, Skeleton, TensorSpec};
use half::f16;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// How the matmul and embedding weights of a file are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    F32,
    F16,
    Int8,
}

impl std::str::FromStr for WeightDtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(WeightDtype::F32),
            "f16" => Ok(WeightDtype::F16),
            "int8" => Ok(WeightDtype::Int8),
            _ => Err(format!("unknown dtype '{s}': expected f32, f16 or int8")),
        }
    }
}

/// The stored values of one tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    /// Row-major int8 values and one scale per output row (see [`Role`]).
    Int8 {
        q: Vec<i8>,
        scales: Vec<f16>,
    },
}

/// One named tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub role: Role,
    pub data: TensorData,
}

impl Tensor {
    /// `values` (f32, row-major in `shape`) stored as `dtype`: vectors stay f32, matrices
    /// become f16 or int8 with per-output-row scales ([`quantize_int8`]).
    pub fn stored_as(
        values: Vec<f32>,
        shape: Vec<usize>,
        role: Role,
        dtype: WeightDtype,
    ) -> Tensor {
        let data = match (role, dtype) {
            (Role::Vector, _) | (_, WeightDtype::F32) => TensorData::F32(values),
            (_, WeightDtype::F16) => {
                TensorData::F16(values.iter().map(|&x| f16::from_f32(x)).collect())
            }
            (role, WeightDtype::Int8) => {
                let (q, scales) = quantize_int8(&values, shape[0], shape[1], role);
                TensorData::Int8 { q, scales }
            }
        };
        Tensor { shape, role, data }
    }

    /// The values in f32, dequantized if stored as int8.
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            TensorData::F32(v) => v.clone(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            TensorData::Int8 { q, scales } => {
                let cols = *self.shape.last().unwrap_or(&1);
                q.iter()
                    .enumerate()
                    .map(|(i, &x)| {
                        let row = match self.role {
                            Role::Conv1d => i % cols,
                            _ => i / cols,
                        };
                        x as f32 * scales[row].to_f32()
                    })
                    .collect()
            }
        }
    }
}

/// Quantizes a row-major matrix `[rows, cols]` to int8 with one f16 scale per output row:
/// per row of the table for [`Role::Embedding`], per column for [`Role::Conv1d`].
/// The scale is rounded to f16 first and the values quantized with the rounded scale, so that
/// `|w - q * scale| <= scale / 2` holds for the stored scale.
pub fn quantize_int8(values: &[f32], rows: usize, cols: usize, role: Role) -> (Vec<i8>, Vec<f16>) {
    assert_eq!(values.len(), rows * cols, "matrix size");
    let out_of = |i: usize| {
        if role == Role::Conv1d {
            i % cols
        } else {
            i / cols
        }
    };
    let n_out = if role == Role::Conv1d { cols } else { rows };
    let mut max_abs = vec![0f32; n_out];
    for (i, &x) in values.iter().enumerate() {
        let r = out_of(i);
        max_abs[r] = max_abs[r].max(x.abs());
    }
    let scales: Vec<f16> = max_abs
        .iter()
        .map(|&m| {
            let mut s = f16::from_f32(m / 127.0);
            // Among f16's subnormals (scales under 6.1e-5) rounding can lose so much that the
            // largest value would sit past 127.5 steps: the next f16 up keeps it within half a
            // step of 127 (normal f16 loses at most 0.06 of a step, and never comes here).
            while s.to_f32() > 0.0 && s.to_f32() * 127.5 < m {
                s = f16::from_bits(s.to_bits() + 1);
            }
            // An all-zero row (or one too small for f16) keeps a harmless unit scale.
            if s.to_f32() > 0.0 {
                s
            } else {
                f16::ONE
            }
        })
        .collect();
    let q = values
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            (x / scales[out_of(i)].to_f32())
                .round()
                .clamp(-127.0, 127.0) as i8
        })
        .collect();
    (q, scales)
}

/// Why a weight file was refused. Every variant names the file and, where there is one, the tensor.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{file}: not a valid safetensors file (truncated or corrupt?): {reason}")]
    Corrupt { file: String, reason: String },
    #[error("{file}: {bytes} bytes, the manifest says {expected}: truncated or replaced")]
    Size {
        file: String,
        bytes: u64,
        expected: u64,
    },
    #[error("{file}: sha256 is {actual}, the manifest says {expected}: the file is corrupt or was replaced")]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{file}: tensor {tensor} is missing")]
    Missing { file: String, tensor: String },
    #[error("{file}: tensor {tensor} is not part of this model")]
    Unexpected { file: String, tensor: String },
    #[error("{file}: tensor {tensor} has shape {actual:?}, expected {expected:?}")]
    Shape {
        file: String,
        tensor: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("{file}: tensor {tensor} is stored as {actual}, expected {expected}")]
    Dtype {
        file: String,
        tensor: String,
        expected: String,
        actual: String,
    },
    #[error("{file}: tensor {tensor} holds a non-finite value (NaN or infinity)")]
    NonFinite { file: String, tensor: String },
    #[error("{file}: model config in the file differs from the expected one: {reason}")]
    Config { file: String, reason: String },
}

/// All tensors of one model, validated against its config.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelWeights {
    pub config: ModelConfig,
    pub tensors: BTreeMap<String, Tensor>,
}

const CONFIG_KEY: &str = "coconut.config";

impl ModelWeights {
    /// Wraps f32 values (in [`tensor_specs`] order and shapes) as a model; used by the trainer
    /// and by tests.
    pub fn from_f32(
        config: ModelConfig,
        mut values: impl FnMut(&TensorSpec) -> Vec<f32>,
    ) -> ModelWeights {
        let tensors = tensor_specs(&config)
            .into_iter()
            .map(|spec| {
                let v = values(&spec);
                assert_eq!(
                    v.len(),
                    spec.shape.iter().product::<usize>(),
                    "{}",
                    spec.name
                );
                let t = Tensor {
                    shape: spec.shape.clone(),
                    role: spec.role,
                    data: TensorData::F32(v),
                };
                (spec.name, t)
            })
            .collect();
        ModelWeights { config, tensors }
    }

    /// The tensors as the model's tree, for an engine to map into its own storage; refused if a
    /// tensor is missing or has another shape or role than the tree says (possible only for
    /// weights built by hand: [`ModelWeights::from_safetensors`] checks the same).
    pub fn tree(&self) -> Result<Skeleton<&Tensor>, WeightsError> {
        let file = || "in-memory weights".to_string();
        Skeleton::specs(&self.config).try_map(|spec| {
            let t = self
                .tensors
                .get(&spec.name)
                .ok_or_else(|| WeightsError::Missing {
                    file: file(),
                    tensor: spec.name.clone(),
                })?;
            if t.shape != spec.shape || t.role != spec.role {
                return Err(WeightsError::Shape {
                    file: file(),
                    tensor: spec.name.clone(),
                    expected: spec.shape.clone(),
                    actual: t.shape.clone(),
                });
            }
            Ok(t)
        })
    }

    /// The f32 values of a tensor (dequantized), by name.
    pub fn f32(&self, name: &str) -> Vec<f32> {
        self.tensors[name].to_f32()
    }

    /// The same model with its matmul and embedding weights stored as `dtype`.
    pub fn convert(&self, dtype: WeightDtype) -> ModelWeights {
        let tensors = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let tensor = Tensor::stored_as(t.to_f32(), t.shape.clone(), t.role, dtype);
                (name.clone(), tensor)
            })
            .collect();
        ModelWeights {
            config: self.config.clone(),
            tensors,
        }
    }

    /// The dtype of the matmul weights.
    pub fn dtype(&self) -> WeightDtype {
        match self.tensors.get("wte.weight").map(|t| &t.data) {
            Some(TensorData::F16(_)) => WeightDtype::F16,
            Some(TensorData::Int8 { .. }) => WeightDtype::Int8,
            _ => WeightDtype::F32,
        }
    }

    /// Serializes to safetensors bytes, with the model config in the header's metadata.
    pub fn to_safetensors(&self) -> Vec<u8> {
        // Views borrow the tensors' own bytes: the file is the only copy made (an imported
        // GPT-2-large in f32 is 3.1 GB).
        fn view(
            name: String,
            dtype: Dtype,
            shape: Vec<usize>,
            bytes: &[u8],
        ) -> (String, TensorView<'_>) {
            let view = TensorView::new(dtype, shape, bytes)
                .expect("shape and byte count agree by construction");
            (name, view)
        }
        let mut views: Vec<(String, TensorView)> = Vec::new();
        for (name, t) in &self.tensors {
            match &t.data {
                TensorData::F32(v) => views.push(view(
                    name.clone(),
                    Dtype::F32,
                    t.shape.clone(),
                    bytemuck::cast_slice(v),
                )),
                TensorData::F16(v) => views.push(view(
                    name.clone(),
                    Dtype::F16,
                    t.shape.clone(),
                    bytemuck::cast_slice(v),
                )),
                TensorData::Int8 { q, scales } => {
                    views.push(view(
                        name.clone(),
                        Dtype::I8,
                        t.shape.clone(),
                        bytemuck::cast_slice(q),
                    ));
                    views.push(view(
                        format!("{name}.scale"),
                        Dtype::F16,
                        vec![scales.len()],
                        bytemuck::cast_slice(scales),
                    ));
                }
            }
        }
        let metadata = HashMap::from([
            (
                CONFIG_KEY.to_string(),
                serde_json::to_string(&self.config).expect("config serializes"),
            ),
            ("format".to_string(), "pt".to_string()),
        ]);
        let bytes = safetensors::tensor::serialize(views, Some(metadata))
            .expect("serializing in-memory tensors cannot fail");
        canonical_header(bytes)
    }

    /// Parses and validates safetensors bytes. `file` names the source in errors. If `expected`
    /// is given, the config stored in the file must equal it.
    pub fn from_safetensors(
        bytes: &[u8],
        file: &str,
        expected: Option<&ModelConfig>,
    ) -> Result<ModelWeights, WeightsError> {
        let corrupt = |reason: String| WeightsError::Corrupt {
            file: file.to_string(),
            reason,
        };
        let (st, stored) = with_json_metadata::<ModelConfig>(bytes, CONFIG_KEY).map_err(corrupt)?;
        let config = match (stored, expected) {
            (Some(s), Some(e)) if &s != e => {
                return Err(WeightsError::Config {
                    file: file.to_string(),
                    reason: format!("file has {s:?}, expected {e:?}"),
                })
            }
            (Some(s), _) => s,
            (None, Some(e)) => e.clone(),
            (None, None) => return Err(corrupt(format!("no {CONFIG_KEY} metadata"))),
        };
        config.validate().map_err(|e| WeightsError::Config {
            file: file.to_string(),
            reason: e.to_string(),
        })?;
        let specs = tensor_specs(&config);
        let mut known: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        known.extend(
            specs
                .iter()
                .filter(|s| s.role != Role::Vector)
                .map(|s| format!("{}.scale", s.name)),
        );
        for name in st.names() {
            if !known.iter().any(|k| k == name) {
                return Err(WeightsError::Unexpected {
                    file: file.to_string(),
                    tensor: name.to_string(),
                });
            }
        }
        let mut tensors = BTreeMap::new();
        for spec in &specs {
            let tensor = read_tensor(&st, spec, file)?;
            tensors.insert(spec.name.clone(), tensor);
        }
        Ok(ModelWeights { config, tensors })
    }
}

/// The same file with its JSON header's keys sorted. safetensors writes the metadata from a
/// `HashMap`, whose order changes from run to run; sorted, the same weights always give the same
/// bytes, hence the same sha256 in the manifest. Reordering keys keeps the header's length, and the
/// data offsets inside it stay valid.
fn canonical_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8-byte length")) as usize;
    let header = &bytes[8..8 + n];
    let text = std::str::from_utf8(header).expect("safetensors writes UTF-8 JSON");
    let value: serde_json::Value =
        serde_json::from_str(text.trim_end()).expect("safetensors writes valid JSON");
    // serde_json's map is ordered by key (no preserve_order feature).
    let sorted = serde_json::to_string(&value).expect("JSON values serialize");
    assert_eq!(
        sorted.len(),
        text.trim_end().len(),
        "reordering keeps the length"
    );
    bytes[8..8 + sorted.len()].copy_from_slice(sorted.as_bytes());
    bytes
}

fn read_tensor(st: &SafeTensors, spec: &TensorSpec, file: &str) -> Result<Tensor, WeightsError> {
    let missing = |tensor: &str| WeightsError::Missing {
        file: file.to_string(),
        tensor: tensor.to_string(),
    };
    let view = st.tensor(&spec.name).map_err(|_| missing(&spec.name))?;
    if view.shape() != spec.shape.as_slice() {
        return Err(WeightsError::Shape {
            file: file.to_string(),
            tensor: spec.name.clone(),
            expected: spec.shape.clone(),
            actual: view.shape().to_vec(),
        });
    }
    let wrong_dtype = |tensor: &str, expected: &str, actual: Dtype| WeightsError::Dtype {
        file: file.to_string(),
        tensor: tensor.to_string(),
        expected: expected.to_string(),
        actual: format!("{actual:?}"),
    };
    let allowed = if spec.role == Role::Vector {
        "F32"
    } else {
        "F32, F16 or I8"
    };
    let data = match (view.dtype(), spec.role) {
        (Dtype::F32, _) => TensorData::F32(le_f32(view.data())),
        (Dtype::F16, Role::Embedding | Role::Conv1d) => TensorData::F16(le_f16(view.data())),
        (Dtype::I8, Role::Embedding | Role::Conv1d) => {
            let scale_name = format!("{}.scale", spec.name);
            let scale = st.tensor(&scale_name).map_err(|_| missing(&scale_name))?;
            let rows = if spec.role == Role::Conv1d {
                spec.shape[1]
            } else {
                spec.shape[0]
            };
            if scale.shape() != [rows] {
                return Err(WeightsError::Shape {
                    file: file.to_string(),
                    tensor: scale_name,
                    expected: vec![rows],
                    actual: scale.shape().to_vec(),
                });
            }
            if scale.dtype() != Dtype::F16 {
                return Err(wrong_dtype(&scale_name, "F16", scale.dtype()));
            }
            let scales = le_f16(scale.data());
            if scales.iter().any(|s| !s.is_finite() || s.to_f32() <= 0.0) {
                return Err(WeightsError::NonFinite {
                    file: file.to_string(),
                    tensor: scale_name,
                });
            }
            let q = view.data().iter().map(|&b| b as i8).collect();
            TensorData::Int8 { q, scales }
        }
        (other, _) => return Err(wrong_dtype(&spec.name, allowed, other)),
    };
    let tensor = Tensor {
        shape: spec.shape.clone(),
        role: spec.role,
        data,
    };
    let finite = match &tensor.data {
        TensorData::F32(v) => v.iter().all(|x| x.is_finite()),
        TensorData::F16(v) => v.iter().all(|x| x.is_finite()),
        TensorData::Int8 { .. } => true,
    };
    if !finite {
        return Err(WeightsError::NonFinite {
            file: file.to_string(),
            tensor: spec.name.clone(),
        });
    }
    Ok(tensor)
}

/// Little-endian f32 values, as safetensors stores them (the bytes need not be aligned).
pub fn le_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn le_f16(bytes: &[u8]) -> Vec<f16> {
    bytes
        .chunks_exact(2)
        .map(|b| f16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Deterministic pseudo-random weights of GPT-2's initial scale, for tests and benchmarks.
pub fn random_weights(config: &ModelConfig, seed: u64) -> ModelWeights {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    ModelWeights::from_f32(config.clone(), |spec| {
        let n: usize = spec.shape.iter().product();
        let is_gain = spec.name.ends_with("ln_1.weight")
            || spec.name.ends_with("ln_2.weight")
            || spec.name == "ln_f.weight";
        (0..n)
            .map(|_| {
                let noise: f32 = rng.random_range(-1.0..1.0);
                match (spec.role, is_gain) {
                    (Role::Vector, true) => 1.0 + 0.1 * noise,
                    (Role::Vector, false) => 0.02 * noise,
                    _ => 0.1 * noise,
                }
            })
            .collect()
    })
}

/// [`random_weights`] whose `<eos>` embedding leans towards the final LayerNorm's bias by
/// `strength` (in units of the bias's norm), so the tied LM head says `<eos>` at some positions
/// and not at others: decodings of trained-like lengths, for tests and benchmarks.
pub fn eos_biased_weights(config: &ModelConfig, seed: u64, strength: f32) -> ModelWeights {
    biased_weights(config, seed, &[(crate::tokenizer::EOS, strength)])
}

/// [`random_weights`] whose embedding of each `(token, strength)` leans towards the final
/// LayerNorm's bias as [`eos_biased_weights`]'s `<eos>` does (e.g. `<latent>` too, so that
/// last-steps stages start their thoughts).
pub fn biased_weights(config: &ModelConfig, seed: u64, tokens: &[(u32, f32)]) -> ModelWeights {
    let mut w = random_weights(config, seed);
    let c = config.n_embd;
    let bias = w.f32("ln_f.bias");
    let norm = bias.iter().map(|b| b * b).sum::<f32>().sqrt();
    let mut wte = w.f32("wte.weight");
    for &(token, strength) in tokens {
        for (i, b) in bias.iter().enumerate() {
            wte[token as usize * c + i] += strength * b / norm;
        }
    }
    w.tensors
        .get_mut("wte.weight")
        .expect("every model has wte")
        .data = TensorData::F32(wte);
    w
}

/// Parses safetensors `bytes` and the JSON value under metadata `key` (None when absent): what
/// every file of ours with facts in its header (weights, probes) reads first.
pub(crate) fn with_json_metadata<'a, T: serde::de::DeserializeOwned>(
    bytes: &'a [u8],
    key: &str,
) -> Result<(SafeTensors<'a>, Option<T>), String> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let value = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(key))
        .map(|json| serde_json::from_str(json))
        .transpose()
        .map_err(|e| format!("{key} metadata: {e}"))?;
    Ok((tensors, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tiny() -> ModelConfig {
        ModelConfig {
            vocab_size: 22,
            n_positions: 16,
            n_embd: 8,
            n_layer: 2,
            n_head: 2,
            layer_norm_epsilon: 1e-5,
        }
    }

    #[test]
    fn round_trips_every_dtype() {
        let w = random_weights(&tiny(), 1);
        for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Int8] {
            let converted = w.convert(dtype);
            let bytes = converted.to_safetensors();
            let back = ModelWeights::from_safetensors(&bytes, "x", Some(&tiny())).unwrap();
            assert_eq!(back, converted, "{dtype:?}");
            assert_eq!(back.dtype(), dtype);
            // LayerNorm and biases stay exact in every dtype.
            assert_eq!(back.f32("h.1.ln_2.bias"), w.f32("h.1.ln_2.bias"));
        }
    }

    #[test]
    fn the_same_weights_always_give_the_same_bytes() {
        // Each serialization builds a new HashMap with its own random order.
        let w = random_weights(&tiny(), 6).convert(WeightDtype::Int8);
        let first = w.to_safetensors();
        for _ in 0..20 {
            assert_eq!(w.to_safetensors(), first);
        }
        assert_eq!(
            ModelWeights::from_safetensors(&first, "x", None).unwrap(),
            w
        );
    }

    #[test]
    fn int8_scales_follow_output_rows() {
        // Conv1D [in=2, out=3]: column 2 is large, so only its scale is large.
        let v = [0.1, 0.2, 10.0, -0.1, 0.05, -20.0];
        let (q, s) = quantize_int8(&v, 2, 3, Role::Conv1d);
        assert_eq!(s.len(), 3);
        assert!(s[2].to_f32() > 0.15 && s[0].to_f32() < 0.001);
        assert_eq!(q[5], -127);
        let (_, s) = quantize_int8(&v, 2, 3, Role::Embedding);
        assert_eq!(s.len(), 2);
        let (q, s) = quantize_int8(&[0.0; 4], 2, 2, Role::Embedding);
        assert_eq!((q, s[0]), (vec![0; 4], f16::ONE));
    }

    proptest! {
        #[test]
        fn int8_error_is_at_most_half_a_step(
            rows in 1usize..6, cols in 1usize..6, conv in any::<bool>(),
            seed in any::<u64>(), magnitude in 0.01f32..100.0
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let v: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-magnitude..magnitude)).collect();
            let role = if conv { Role::Conv1d } else { Role::Embedding };
            let (q, scales) = quantize_int8(&v, rows, cols, role);
            let t = Tensor { shape: vec![rows, cols], role, data: TensorData::Int8 { q, scales: scales.clone() } };
            for (i, (x, y)) in v.iter().zip(t.to_f32()).enumerate() {
                let row = if conv { i % cols } else { i / cols };
                let step = scales[row].to_f32();
                prop_assert!((x - y).abs() <= step * 0.5 + 1e-6 * x.abs(), "{x} vs {y}, step {step}");
                // And the step is about max|row| / 127 (f16 rounding aside).
                let max = (0..rows * cols).filter(|&j| if conv { j % cols == row } else { j / cols == row })
                    .map(|j| v[j].abs()).fold(0f32, f32::max);
                prop_assert!(step <= max / 127.0 * 1.001 + 1e-7);
            }
        }
    }

    fn refusal(bytes: &[u8]) -> String {
        ModelWeights::from_safetensors(bytes, "stage3.safetensors", Some(&tiny()))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn refuses_truncated_files() {
        let bytes = random_weights(&tiny(), 2)
            .convert(WeightDtype::Int8)
            .to_safetensors();
        for cut in [0, 7, 20, bytes.len() / 2, bytes.len() - 1] {
            let e = refusal(&bytes[..cut]);
            assert!(
                e.starts_with("stage3.safetensors: not a valid safetensors"),
                "{cut}: {e}"
            );
        }
    }

    #[test]
    fn refuses_a_corrupt_header() {
        let mut bytes = random_weights(&tiny(), 2).to_safetensors();
        bytes[12] ^= 0x40; // inside the JSON header
        assert!(refusal(&bytes).contains("not a valid safetensors"));
    }

    #[test]
    fn refuses_nan_weights() {
        let mut w = random_weights(&tiny(), 3);
        if let TensorData::F32(v) = &mut w.tensors.get_mut("h.0.mlp.c_fc.weight").unwrap().data {
            v[3] = f32::NAN;
        }
        let e = refusal(&w.to_safetensors());
        assert!(
            e.contains("h.0.mlp.c_fc.weight") && e.contains("non-finite"),
            "{e}"
        );
    }

    #[test]
    fn refuses_wrong_shape_dtype_missing_and_extra_tensors() {
        let base = random_weights(&tiny(), 4);

        let mut w = base.clone();
        w.tensors.get_mut("h.1.attn.c_proj.weight").unwrap().shape = vec![4, 16];
        let e = refusal(&w.to_safetensors());
        assert!(
            e.contains("h.1.attn.c_proj.weight has shape [4, 16], expected [8, 8]"),
            "{e}"
        );

        let mut w = base.clone();
        let t = w.tensors.get_mut("h.0.ln_1.bias").unwrap();
        t.data = TensorData::F16(vec![f16::ZERO; 8]);
        let e = refusal(&w.to_safetensors());
        assert!(
            e.contains("h.0.ln_1.bias is stored as F16, expected F32"),
            "{e}"
        );

        let mut w = base.clone();
        w.tensors.remove("ln_f.bias");
        assert!(refusal(&w.to_safetensors()).contains("tensor ln_f.bias is missing"));

        let mut w = base.clone();
        let extra = w.tensors["ln_f.bias"].clone();
        w.tensors.insert("h.9.ln_1.bias".into(), extra);
        assert!(refusal(&w.to_safetensors()).contains("h.9.ln_1.bias is not part of this model"));
    }

    #[test]
    fn refuses_a_file_for_another_model() {
        let other = ModelConfig {
            n_layer: 3,
            ..tiny()
        };
        let bytes = random_weights(&other, 5).to_safetensors();
        assert!(refusal(&bytes).contains("model config in the file differs"));
    }
}
