//! The WGSL engine: kernels and host code that run the model on WebGPU / Vulkan / GL.
//!
//! Not implemented yet (issue: "The WGSL engine"). Until it exists, every caller uses
//! [`coconut_core::reference`], which is also the browser's CPU fallback.
