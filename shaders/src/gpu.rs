//! The device: adapter selection, error capture, device-loss detection and buffer read-back,
//! shared by native (Vulkan, GL, lavapipe) and browser (WebGPU) builds.

use crate::error::GpuError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Which adapters to consider.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// Backends to try. Default: `WGPU_BACKEND` if set, else every compiled-in backend
    /// (Vulkan and GL natively, WebGPU in the browser).
    pub backends: wgpu::Backends,
    pub power_preference: wgpu::PowerPreference,
    /// Only accept a software adapter (lavapipe, SwiftShader).
    pub force_fallback_adapter: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            backends: wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()),
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
        }
    }
}

/// What adapter the engine runs on, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}{})",
            self.name,
            self.backend,
            self.device_type,
            if self.driver.is_empty() {
                String::new()
            } else {
                format!(", {}", self.driver)
            }
        )
    }
}

/// A device and queue with wgpu's errors captured instead of panicking.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    error: Arc<Mutex<Option<String>>>,
    lost: Arc<Mutex<Option<String>>>,
}

impl Gpu {
    /// Finds an adapter and opens a device with the adapter's own limits.
    pub async fn new(options: &GpuOptions) -> Result<Gpu, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = options.backends;
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: options.power_preference,
                force_fallback_adapter: options.force_fallback_adapter,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter {
                backends: format!("{:?}", options.backends),
                reason: e.to_string(),
            })?;
        let info = adapter.get_info();
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
        };
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("coconut"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::RequestDevice {
                adapter: summary.to_string(),
                reason: e.to_string(),
            })?;
        let error = Arc::new(Mutex::new(None));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = lost_sink.lock().unwrap_or_else(|p| p.into_inner());
            *slot = Some(format!("{reason:?}: {message}"));
        });
        Ok(Gpu {
            device,
            queue,
            adapter: summary,
            limits,
            error,
            lost,
        })
    }

    /// Native blocking helper for [`Gpu::new`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking(options: &GpuOptions) -> Result<Gpu, GpuError> {
        pollster::block_on(Gpu::new(options))
    }

    /// Whether the device was lost, and why.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fails with the device loss or the first captured wgpu error since the last check.
    pub fn check(&self) -> Result<(), GpuError> {
        if let Some(reason) = self.lost() {
            return Err(GpuError::DeviceLost { reason });
        }
        if let Some(e) = self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(GpuError::Gpu(e));
        }
        Ok(())
    }

    /// Maps `buffer` (MAP_READ) over `range` bytes, hands the bytes to `read`, and unmaps.
    /// Native: blocks in `device.poll` until submission `after` (default: the latest) is done;
    /// browser: awaits the map promise.
    pub async fn read_mapped<R>(
        &self,
        buffer: &wgpu::Buffer,
        range: std::ops::Range<u64>,
        after: Option<wgpu::SubmissionIndex>,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, GpuError> {
        let slot: Arc<Mutex<Slot>> = Arc::new(Mutex::new(Slot::default()));
        let sink = slot.clone();
        buffer.map_async(wgpu::MapMode::Read, range.clone(), move |r| {
            let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
            s.result = Some(r.map_err(|e| e.to_string()));
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        #[cfg(target_arch = "wasm32")]
        let _ = after;
        #[cfg(not(target_arch = "wasm32"))]
        if let Err(e) = self.device.poll(wgpu::PollType::Wait {
            submission_index: after,
            timeout: None,
        }) {
            self.check()?;
            return Err(GpuError::ReadBack(e.to_string()));
        }
        let mapped = MapFuture { slot }.await;
        if let Err(e) = mapped {
            self.check()?;
            return Err(GpuError::ReadBack(e));
        }
        let value = {
            let view = buffer
                .get_mapped_range(range)
                .map_err(|e| GpuError::ReadBack(e.to_string()))?;
            read(&view)
        };
        buffer.unmap();
        self.check()?;
        Ok(value)
    }

    /// Copies `size` bytes of `src` to a fresh staging buffer and reads them (tests, one-off reads;
    /// the engine keeps its own staging buffers).
    pub async fn read_buffer(&self, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, GpuError> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        self.read_mapped(&staging, 0..size, None, |b| b.to_vec())
            .await
    }
}

#[derive(Default)]
struct Slot {
    result: Option<Result<(), String>>,
    waker: Option<Waker>,
}

struct MapFuture {
    slot: Arc<Mutex<Slot>>,
}

impl Future for MapFuture {
    type Output = Result<(), String>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
