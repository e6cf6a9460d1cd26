//! The WGSL engine: our own compute kernels (`src/kernels/*.wgsl`) and the wgpu host code that
//! runs the Coconut GPT-2 with them, natively (Vulkan or GL, lavapipe included) and in the
//! browser (WebGPU), with the same semantics as [`coconut_core::reference`], the oracle and the
//! CPU fallback.
//!
//! ```no_run
//! # #[cfg(not(target_arch = "wasm32"))] {
//! use coconut_core::{tokenizer::Tokenizer, weights::random_weights, ModelConfig, Problem, Stage};
//! use coconut_shaders::WgpuEngine;
//! let weights = random_weights(&ModelConfig::default(), 1);
//! let mut engine = WgpuEngine::new_blocking(&weights).expect("a GPU, or fall back to the reference");
//! let s = coconut_shaders::block_on(engine.solve(
//!     &Tokenizer::new(), &Problem::new(347, 285), &Stage::latent(5, 1, 5), false,
//! ))
//! .unwrap();
//! println!("{} -> {:?}", s.text, s.answer);
//! # }
//! ```

pub mod engine;
pub mod error;
pub mod gpu;
pub mod kernels;
pub mod pack;
mod resident;
pub mod solver;
mod trace;

pub use engine::{EngineStats, WgpuEngine};
pub use error::GpuError;
pub use gpu::{AdapterSummary, Gpu, GpuOptions};
/// Runs an engine future to completion on native targets (the browser awaits them instead).
#[cfg(not(target_arch = "wasm32"))]
pub use pollster::block_on;
pub use solver::Solver;
