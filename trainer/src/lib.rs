//! The native Coconut trainer on candle: the GPT-2 model with thought feedback, the curriculum's
//! training loop, checkpoints and evaluation. The `coconut` command (`cli/`) is built on it;
//! this library has no GPU dependency of its own (no wgpu).
//!
//! - [`model`]: GPT-2 in candle, inputs given as embeddings, a KV cache, conversion to and from
//!   core's weights;
//! - [`batch`]: padded batches of stage layouts and the exact, differentiable thought feedback;
//! - [`cpu`]: the CPU training engine (hand-written forward and backward over flat buffers,
//!   thoughts through cached keys and values, both cores);
//! - [`learner`]: one optimizer step on either engine (the CPU engine or the candle model);
//! - [`objective`]: how a batch's loss is formed (token mean, or the seed's per-example mean and
//!   thought-norm term);
//! - [`ops`]: fused CPU GELU and softmax with backward passes;
//! - [`optim`]: AdamW with visible moments, gradient clipping, warmup + cosine schedule;
//! - [`config`]: the run's settings (`config.json`);
//! - [`checkpoint`]: atomic checkpoints of weights, moments and progress;
//! - [`run_dir`]: the run directory's files (config, checkpoint, metrics, stage weights, run.json,
//!   lock): their names and how they are written;
//! - [`run_lock`]: one writer per run directory;
//! - [`train`]: the curriculum driver, the training loop over the stages;
//! - [`draws`]: each step's batch: the data order, mixing and augmentation draws;
//! - [`branch`]: a new run from another's stage boundary (new plans for the later stages);
//! - [`eval`]: greedy and teacher-forced accuracy by digit count, and single-problem solving;
//! - [`finetune`]: an imported GPT-2 fine-tuned with the seed's recipe (`train --init`);
//! - [`import`]: reading models made elsewhere; [`import::torch_file`] reads `torch.save` state
//!   dicts without running their pickle;
//! - [`seed`]: the seed's imported checkpoints on the reference, candle and CPU engines.

pub mod average;
pub mod batch;
pub mod branch;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod draws;
pub mod eval;
pub mod export;
pub mod finetune;
pub mod folder;
pub mod golden;
pub mod import;
pub mod learner;
pub mod model;
pub mod objective;
pub mod ops;
pub mod optim;
pub mod patching;
pub mod plot;
pub mod probe;
pub mod provenance;
pub mod recompute;
pub mod run_dir;
pub mod run_lock;
pub mod seed;
#[cfg(test)]
mod test_support;
pub mod train;

pub use config::{Engine, StagePlan, TrainConfig};
pub use model::{Gpt, KvCache};
