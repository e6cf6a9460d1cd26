//! The browser app (wasm-bindgen, web-sys, wgpu on WebGPU, built with trunk).
//!
//! Not implemented yet (issue: "The browser demo"). The crate exists so the workspace has its final
//! shape and so `coconut-core` is proven to build inside it for `wasm32-unknown-unknown`.
