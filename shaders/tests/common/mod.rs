//! Helpers shared by the GPU tests: one device per test binary, buffers, poison, read-back.
#![allow(dead_code)]

use coconut_shaders::Gpu;
use rand::{Rng, SeedableRng};
#[cfg(not(target_arch = "wasm32"))]
use std::sync::{Arc, OnceLock};
use wgpu::util::DeviceExt;

/// The test device: lavapipe in CI. Set `COCONUT_GPU_TESTS=skip` to skip when no adapter exists.
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu() -> Option<Arc<Gpu>> {
    static GPU: OnceLock<Option<Arc<Gpu>>> = OnceLock::new();
    GPU.get_or_init(
        || match Gpu::new_blocking(&coconut_shaders::GpuOptions::default()) {
            Ok(g) => {
                eprintln!("GPU tests on {}", g.adapter);
                Some(Arc::new(g))
            }
            Err(e) if std::env::var("COCONUT_GPU_TESTS").as_deref() == Ok("skip") => {
                eprintln!("skipping GPU tests: {e}");
                None
            }
            Err(e) => panic!("GPU tests need an adapter (or COCONUT_GPU_TESTS=skip): {e}"),
        },
    )
    .clone()
}

pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

pub fn random(rng: &mut impl Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

pub fn storage(gpu: &Gpu, bytes: &[u8]) -> wgpu::Buffer {
    let mut contents = bytes.to_vec();
    contents.resize(bytes.len().max(16), 0);
    gpu.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("test"),
            contents: &contents,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        })
}

pub fn f32s(gpu: &Gpu, v: &[f32]) -> wgpu::Buffer {
    storage(gpu, bytemuck::cast_slice(v))
}

pub fn u32s(gpu: &Gpu, v: &[u32]) -> wgpu::Buffer {
    storage(gpu, bytemuck::cast_slice(v))
}

/// A buffer of `n` NaNs: outputs are poisoned before every run, so stale or unwritten values fail.
pub fn poisoned(gpu: &Gpu, n: usize) -> wgpu::Buffer {
    f32s(gpu, &vec![f32::NAN; n])
}

pub async fn read_f32(gpu: &Gpu, b: &wgpu::Buffer, n: usize) -> Vec<f32> {
    let bytes = gpu.read_buffer(b, (n * 4) as u64).await.expect("read back");
    bytemuck::pod_collect_to_vec(&bytes)
}

pub async fn read_u32(gpu: &Gpu, b: &wgpu::Buffer, n: usize) -> Vec<u32> {
    let bytes = gpu.read_buffer(b, (n * 4) as u64).await.expect("read back");
    bytemuck::pod_collect_to_vec(&bytes)
}

/// Records one compute pass, submits it and checks for wgpu errors.
pub fn run(gpu: &Gpu, f: impl FnOnce(&mut wgpu::ComputePass<'_>)) {
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        f(&mut pass);
    }
    gpu.queue.submit([enc.finish()]);
    gpu.check().expect("no wgpu error");
}

pub use coconut_core::compare::relative_error as rel_err;

pub const TOL: f64 = 1e-5;

/// Logs ‖out − reference‖ / ‖reference‖ for `what` and asserts it is below [`TOL`].
pub fn assert_close(out: &[f32], reference: &[f64], what: &str) {
    let e = rel_err(out, reference);
    eprintln!("{what}: {e:.2e}");
    assert!(e < TOL, "{what}: relative error {e} (tolerance {TOL})");
}
