//! Helpers shared by the integration tests.

use coconut_core::weights::ModelWeights;
use coconut_trainer::train::RunDir;
use std::path::Path;

/// A stage's saved weights as bit patterns, tensor by tensor: exact equality, independent of
/// the order of the files' metadata (which may vary between writes).
pub fn weight_bits(run_dir: &Path, stage: &str) -> Vec<(String, Vec<u32>)> {
    let bytes = std::fs::read(RunDir(run_dir.to_path_buf()).stage_weights(stage)).unwrap();
    let w = ModelWeights::from_safetensors(&bytes, stage, None).unwrap();
    w.tensors
        .keys()
        .map(|name| {
            (
                name.clone(),
                w.f32(name).iter().map(|v| v.to_bits()).collect(),
            )
        })
        .collect()
}
