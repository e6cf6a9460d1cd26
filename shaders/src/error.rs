//! Errors of the WGSL engine. Every GPU-side failure says so and can be answered by falling back
//! to [`coconut_core::reference::ReferenceModel`] (see [`GpuError::should_fall_back`]).

use coconut_core::decoding::EngineError;

/// Why the WGSL engine could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter of the requested backends exists (no driver, no WebGPU).
    #[error(
        "no GPU adapter found (backends: {backends}): {reason}. Install a Vulkan or GL driver \
         (lavapipe: `apt-get install mesa-vulkan-drivers libvulkan1`), enable WebGPU in the \
         browser, or use the reference engine"
    )]
    NoAdapter { backends: String, reason: String },
    /// The adapter exists but refused to create a device.
    #[error("the GPU adapter '{adapter}' refused to create a device: {reason}")]
    RequestDevice { adapter: String, reason: String },
    /// The device was lost (driver reset, destroyed, browser tab in the background, …).
    #[error("the GPU device was lost: {reason}; recreate the engine or use the reference engine")]
    DeviceLost { reason: String },
    /// The adapter lacks a limit the model needs.
    #[error("this GPU cannot run the model: {0}")]
    Unsupported(String),
    /// A validation, out-of-memory or internal error reported by wgpu.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// Mapping a buffer to read results back failed.
    #[error("reading results back from the GPU failed: {0}")]
    ReadBack(String),
    /// The weights or the request cannot run on this engine (bad token id, too long, …); the
    /// reference engine would refuse them too.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl GpuError {
    /// Whether the failure is the GPU's, so that the same request can be retried on the
    /// reference engine. Input errors ([`GpuError::Engine`]) fail there too.
    pub fn should_fall_back(&self) -> bool {
        !matches!(self, GpuError::Engine(_))
    }
}
